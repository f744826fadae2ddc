"""A new user's first minutes: a fresh clone to a finished first study, timed.

Clones this repository (its committed ``HEAD``) into a temporary folder and runs the README's
first Quick start command there, ``make tune``, which creates ``.venv``, installs the project
(with uv when pip can install it, else pip alone) and runs ``studies/digits.toml``. Reports the
install time (up to the ``touch .venv/.installed`` line of the Makefile), the study time and the
total. ``--cold`` points pip and uv at empty cache folders, as on a machine that never installed
these packages; without it the caches of this machine are used as they are (say which in any
figure you quote).

    .venv/bin/python bench/bench_first_run.py [--cold] [--runs N] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import CpuTimes, steal_percent  # noqa: E402
from tables import format_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def first_run(cold: bool) -> dict[str, float | str]:
    with tempfile.TemporaryDirectory(prefix="first-run-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
        if cold:
            env["PIP_CACHE_DIR"] = str(Path(tmp) / "pip-cache")
            env["UV_CACHE_DIR"] = str(Path(tmp) / "uv-cache")
        load, cpu = os.getloadavg()[0], CpuTimes.now()
        start = time.perf_counter()
        proc = subprocess.Popen(["make", "tune"], cwd=clone, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        installed = None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if installed is None and line.startswith("touch .venv/.installed"):
                installed = time.perf_counter()
        proc.wait()
        end = time.perf_counter()
        if proc.returncode != 0:
            raise SystemExit("make tune failed:\n" + "".join(lines[-30:]))
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                                text=True, check=True).stdout.strip()
        # The line the Makefile's fallback prints, not make's echo of the recipe that contains it.
        used_uv = not any(line.startswith("uv unavailable") for line in lines)
        return {
            "commit": commit, "caches": "empty" if cold else "this machine's", "installer": "uv" if used_uv else "pip",
            "install s": round((installed or end) - start, 1), "study s": round(end - (installed or end), 1),
            "total s": round(end - start, 1), "load 1m": f"{load:.1f}->{os.getloadavg()[0]:.1f}",
            "CPU stolen %": _percent(steal_percent(cpu, CpuTimes.now())),
        }


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="empty pip and uv caches")
    parser.add_argument("--runs", type=int, default=1, help="fresh clones timed one after the other, a row each")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows = [first_run(args.cold) for _ in range(args.runs)]
    print(f"_Python {platform.python_version()}; {os.cpu_count()} CPUs_\n")
    print(format_table(list(rows[0]), [[str(v) for v in row.values()] for row in rows], args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
