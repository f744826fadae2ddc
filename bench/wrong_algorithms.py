"""Do the tests catch whole wrong algorithms? Each one applied to a scratch copy, the tests run.

Single-operator mutants (bench/mutation.py) miss what a plausible but wrong implementation does:
Nesterov written as plain momentum, Adam without its bias correction, and so on (issue 16).
Each entry of :data:`WRONG` replaces exact text of one file with the wrong version of the
algorithm; this command applies one at a time to a fresh copy of model/, tuner/ and tests/ in a
scratch folder (the repository is untouched), runs the test files named for it there and
reports whether they failed, and which tests did. A wrong algorithm that passes is a gap in the
tests.

    .venv/bin/python bench/wrong_algorithms.py              # all of them
    .venv/bin/python bench/wrong_algorithms.py --only adam_no_bias_correction

Exit status 1 if any wrong algorithm passed its tests, or if a replacement no longer matches the
code (the script then needs updating with the code).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from mutation import MODEL_TESTS  # noqa: E402 - the model's test files, shared with mutmut's run

BUDGET_TESTS = ["tests/tuner/test_budget_contention.py"]


@dataclass(frozen=True)
class Wrong:
    """``old`` replaced by ``new`` in ``path``; ``tests`` are expected to fail."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...] = tuple(MODEL_TESTS)


WRONG = [
    Wrong("nesterov_as_plain_momentum", "model/optimizers.py",
          """        np.multiply(grads, learning_rate, out=self._buffer)
        self.velocity *= self.momentum
        self.velocity -= self._buffer
        self.params -= self._buffer
        np.multiply(self.velocity, self.momentum, out=self._buffer)
        self.params += self._buffer""",
          "        Momentum.step(self, grads, learning_rate)"),
    Wrong("adam_no_bias_correction", "model/optimizers.py",
          """        rate = float(learning_rate) * math.sqrt(1.0 - b2**self.t) * (1.0 - b1)
        rate /= (1.0 - b1**self.t) * scale""",
          """        rate = float(learning_rate) * (1.0 - b1)
        rate /= scale"""),
    Wrong("adamw_without_decoupled_decay", "model/optimizers.py",
          """        if self.weight_decay:
            np.multiply(self.params, self.decay_mask, out=self._buffer)""",
          """        if False:
            np.multiply(self.params, self.decay_mask, out=self._buffer)"""),
    Wrong("adamw_decay_in_the_gradient", "model/optimizers.py",
          """        if self.weight_decay:
            np.multiply(self.params, self.decay_mask, out=self._buffer)
            self._buffer *= -learning_rate * self.weight_decay
            self.params += self._buffer
        super().step(grads, learning_rate)""",
          """        grads = grads + self.weight_decay * self.decay_mask * self.params
        super().step(grads, learning_rate)"""),
    Wrong("dropout_mask_not_in_backward", "model/network.py",
          """        if mask is not None:
            grad *= mask
""", ""),
    Wrong("inverted_dropout_without_1_over_keep", "model/network.py",
          "            mask *= 1.0 / keep\n", ""),
    Wrong("sigmoid_half_beyond_100", "model/activations.py",
          """    def forward(self, z, scratch=None):
        z *= 0.5
        np.tanh(z, out=z)
        z += 1.0
        z *= 0.5
        return z""",
          """    def forward(self, z, scratch=None):
        far = np.abs(z) > 100
        z *= 0.5
        np.tanh(z, out=z)
        z += 1.0
        z *= 0.5
        z[far] = 0.5
        return z"""),
    # The output layer's sigmoid (binary cross-entropy) is the Sigmoid activation itself since
    # d9d5509 (model/losses.py calls it), so sigmoid_half_beyond_100 covers the output too: its
    # run fails tests/model/test_extremes.py's binary cross-entropy tests.
    Wrong("budget_lock_a_no_op", "tuner/storage/locks.py",
          """    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)""",
          """    yield""", tuple(BUDGET_TESTS)),
    Wrong("budget_advisory_lock_a_no_op", "tuner/storage/locks.py",
          """        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})""",
          """        pass""", tuple(BUDGET_TESTS)),
]


def scratch_copy(folder: Path) -> None:
    """model/, tuner/, tests/ and the root conftest.py into ``folder`` (no caches)."""
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache")
    for name in ("model", "tuner", "tests"):
        shutil.copytree(ROOT / name, folder / name, ignore=ignore)
    shutil.copy2(ROOT / "conftest.py", folder / "conftest.py")
    (folder / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    slow: slow tests\n    postgres: needs PostgreSQL\n")


def apply(wrong: Wrong, folder: Path) -> None:
    path = folder / wrong.path
    text = path.read_text()
    if text.count(wrong.old) != 1:
        raise SystemExit(f"{wrong.name}: the text to replace is not (once) in {wrong.path}; update this script")
    path.write_text(text.replace(wrong.old, wrong.new))


def run_tests(wrong: Wrong, folder: Path) -> tuple[int, list[str]]:
    """pytest's exit code on the scratch copy and the ids of the failed tests."""
    env = os.environ | {"PYTHONPATH": str(folder), "PYTHONDONTWRITEBYTECODE": "1"}
    check = subprocess.run([sys.executable, "-c", "import model, tuner; print(model.__file__, tuner.__file__)"],
                           cwd=folder, env=env, capture_output=True, text=True, check=True)
    assert all(p.startswith(str(folder)) for p in check.stdout.split()), check.stdout  # the copy is tested
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", *wrong.tests],
                          cwd=folder, env=env, capture_output=True, text=True)
    failed = re.findall(r"^FAILED (\S+)", done.stdout, re.M)
    return done.returncode, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[w.name for w in WRONG], help="run these only")
    args = parser.parse_args(argv)
    survivors = []
    for wrong in WRONG:
        if args.only and wrong.name not in args.only:
            continue
        with tempfile.TemporaryDirectory(prefix=f"wrong-{wrong.name}-") as tmp:
            folder = Path(tmp)
            scratch_copy(folder)
            apply(wrong, folder)
            code, failed = run_tests(wrong, folder)
        caught = code == 1 and failed
        if not caught:
            survivors.append(wrong.name)
        verdict = f"caught by {len(failed)} failing test(s)" if caught else f"NOT caught (pytest exit {code})"
        print(f"{wrong.name} ({wrong.path}): {verdict}", flush=True)
        for test in failed:
            print(f"    {test}")
    if survivors:
        print(f"\npassed the tests: {', '.join(survivors)}")
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
