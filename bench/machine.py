"""What the machine itself allowed while a benchmark ran: CPU time stolen by the hypervisor, and
how two processes of pure computation scale on its cores at that moment.

This shared machine's speed varies by 10-30% within hours. A benchmark that reports these two
readings beside its own figures lets a slow run be told apart from a slow program: a two-worker
speed-up of 1.5x means something else when two copies of a loop that shares nothing scale by
1.5x too than when they scale by 2x.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

#: A computation that shares nothing between processes: small float32 products and a ReLU,
#: with one BLAS thread, like one worker's training step on a small network.
_LOOP = """
import os, time
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy as np
a = np.random.rand(64, 64).astype(np.float32); b = np.random.rand(64, 128).astype(np.float32)
start = time.perf_counter()
for _ in range({steps}):
    np.maximum(a @ b, 0)
print(time.perf_counter() - start)
"""


@dataclass(frozen=True)
class CpuTimes:
    """The ``cpu`` line of ``/proc/stat``: busy, idle and stolen ticks, summed over every core."""

    busy: int
    idle: int
    steal: int

    @classmethod
    def now(cls) -> CpuTimes | None:
        """None where ``/proc/stat`` is not there (not Linux)."""
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return cls(busy=user + nice + system + irq + softirq, idle=idle + iowait, steal=steal)


def steal_percent(before: CpuTimes | None, after: CpuTimes | None) -> float | None:
    """The share of the cores' time the hypervisor gave to other machines between two readings."""
    if before is None or after is None:
        return None
    total = (after.busy - before.busy) + (after.idle - before.idle) + (after.steal - before.steal)
    return 100.0 * (after.steal - before.steal) / total if total > 0 else 0.0


def _loop_seconds(copies: int, steps: int) -> float:
    """Wall time of ``copies`` processes of the loop started together (the slowest one's)."""
    code = _LOOP.format(steps=steps)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(copies)]
    return max(float(p.communicate()[0]) for p in procs)


def core_scaling(copies: int = 2, steps: int = 40_000, repeats: int = 3) -> float:
    """How many times the work of one process ``copies`` processes do in the same time: one
    copy's loop time x copies / the time ``copies`` take together (the best of ``repeats``
    each). ``copies`` on as many free cores gives about ``copies``; a host whose cores are
    busy elsewhere (or are hyperthreads of one) gives less."""
    one = min(_loop_seconds(1, steps) for _ in range(repeats))
    together = min(_loop_seconds(copies, steps) for _ in range(repeats))
    return copies * one / together


if __name__ == "__main__":
    before = CpuTimes.now()
    started = time.perf_counter()
    scaling = core_scaling()
    steal = steal_percent(before, CpuTimes.now())
    print(f"two processes of pure computation scaled {scaling:.2f}x on {os.cpu_count()} CPUs"
          + (f"; CPU time stolen by the hypervisor {steal:.1f}%" if steal is not None else "")
          + f" ({time.perf_counter() - started:.1f} s)")
