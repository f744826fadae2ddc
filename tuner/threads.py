"""How many BLAS threads a worker process trains with.

NumPy's OpenBLAS starts one thread per core, and its threads spin while they wait for each other.
When a host has more busy threads than cores (two ``tuner worker`` processes each with every
core's threads, or one worker beside any other busy program), a spinning thread keeps a core that
its partner needs, and a matrix product can take many times as long
(``bench/bench_contention.py``). Training our MLPs on tabular data gains little from a second
BLAS thread and loses everything when threads outnumber cores, so the policy is:

* ``tuner worker`` and every process of ``tuner run --jobs J``: **one thread**. Workers are
  started side by side (by hand, by docker-compose's ``--scale``, by ``--jobs``); none of them
  knows how many others share its host, so each takes one core's worth and the host is filled
  by adding workers, not threads.
* ``tuner run`` in one process: one thread too, for the same reason: it cannot know what else
  the host runs, and a lone process beside one busy program otherwise collapses.
* ``--threads N`` (or ``TUNER_THREADS``) overrides the policy for either command, e.g. for wide
  networks on a host that runs nothing else.

The limit holds only while the study runs (threadpoolctl restores the libraries' own setting on
exit), so a notebook that calls :func:`tuner.runner.run_study` keeps its own thread count after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

#: The policy's thread count for a worker process when the user sets none.
DEFAULT_THREADS = 1


def worker_threads(requested: int | None = None) -> int:
    """The BLAS thread count a worker trains with: ``requested``, else the policy's."""
    return DEFAULT_THREADS if requested is None else requested


@contextmanager
def limit_blas_threads(threads: int) -> Iterator[None]:
    """BLAS libraries use at most ``threads`` threads inside the block, their own setting after."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def current_blas_threads() -> int | None:
    """The largest thread count among the BLAS libraries loaded in this process (None if none)."""
    from threadpoolctl import threadpool_info

    counts = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return max(counts) if counts else None
