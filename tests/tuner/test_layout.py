"""How the code is laid out (issue 13): no import cycles in model/ and tuner/.

Every import statement counts, at module level or inside a function: a function-level import
that closes a loop still ties the two modules together, and only hides the loop from Python.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("model", "tuner")


def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``packages`` under ``root``."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules among ``modules`` that ``name`` imports anywhere in its file."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            submodules = {f"{source}.{alias.name}" for alias in node.names} & set(modules)
            targets.update(submodules)  # from pkg import module: that module
            if len(submodules) < len(node.names):  # names defined in the module (or package) itself
                targets.add(source)
    return {t for t in targets if t in modules and t != name}


def import_graph(root: Path, packages=PACKAGES) -> dict[str, set[str]]:
    modules = module_files(root, packages)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (the first repeated at the end), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_model_and_tuner_have_no_import_cycles():
    graph = import_graph(REPO)
    assert {"model.estimators", "model.serialization", "tuner.cli.app", "tuner.runner"} <= set(graph)
    assert "model.serialization" in graph["model.estimators"]  # the graph sees imports at all
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("def thing():\n    from pkg import c\n")
    (package / "c.py").write_text("def other():\n    from . import a\n")
    assert find_cycle(import_graph(tmp_path, ("pkg",))) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (package / "c.py").write_text("import json\n")
    assert find_cycle(import_graph(tmp_path, ("pkg",))) is None


def test_the_public_api_is_small_and_every_name_resolves():
    import tuner

    assert 5 <= len(tuner.__all__) <= 12
    for name in tuner.__all__:
        assert getattr(tuner, name).__doc__, name
    assert {"run_study", "load_config", "StudyConfig", "export_study", "TunerError"} <= set(tuner.__all__)


def test_importing_tuner_loads_no_heavy_library():
    """``import tuner`` (and so ``tuner --help``) stays instant: the API's names load on first use."""
    import subprocess
    import sys

    code = "import sys, tuner; print(sorted(m for m in ('optuna', 'mlflow', 'numpy', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_model_knows_nothing_of_optuna_mlflow_or_the_tuner():
    graph_sources = [ast.parse(p.read_text()) for p in (REPO / "model").rglob("*.py")]
    imported = set()
    for tree in graph_sources:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                imported.add((node.module or "").split(".")[0])
    assert not imported & {"optuna", "mlflow", "tuner"}


#: The largest module (lines) and function body (lines of code: no blank, comment or docstring
#: line) that the code keeps to.
MAX_MODULE_LINES = 500
MAX_FUNCTION_CODE = 60


def function_code_lines(lines: list[str], node: ast.AST) -> int:
    body = node.body
    first = body[0]
    doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    skipped = set(range(first.lineno, first.end_lineno + 1)) if doc else set()
    return sum(
        1 for number in range(first.lineno, node.end_lineno + 1)
        if number not in skipped and lines[number - 1].strip() and not lines[number - 1].strip().startswith("#")
    )


def test_modules_and_functions_stay_short():
    long_modules, long_functions = [], []
    for path in sorted([*(REPO / "model").rglob("*.py"), *(REPO / "tuner").rglob("*.py")]):
        text = path.read_text()
        lines = text.splitlines()
        if len(lines) > MAX_MODULE_LINES:
            long_modules.append(f"{path.relative_to(REPO)} ({len(lines)})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if (n := function_code_lines(lines, node)) > MAX_FUNCTION_CODE:
                    long_functions.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({n})")
    assert long_modules == []
    assert long_functions == []
