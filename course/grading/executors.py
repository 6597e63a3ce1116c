"""Where the sandboxed runs happen: this machine's fork servers (``local``) or a Dask cluster's workers (``dask``).

An executor is the one seam between :func:`course.grading.pipeline.collect` and the sandboxes. It is handed jobs
(:class:`course.grading.pool.Job`: the notebook and the inputs of the hidden cases, never an expected value or a
reference implementation) and yields ``(job, header, arrays)`` as answers come, in any order. Judging, the secret,
the cache and the gradebook stay with the caller, so a result is the same whoever ran the sandbox. The Dask
executors live in :mod:`course.grading.dask_executor`, imported only when one is chosen (``course[dask]``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..errors import CourseError
from . import pool, sandbox

EXECUTORS = ("local", "dask", "dask-local")


class LocalExecutor:
    """This machine's fork servers (:mod:`course.grading.pool`), as the grader always had."""

    def __init__(self, workers: int, limits: sandbox.Limits, hidden: list[str], log_dir: Path):
        self.limits, self.hidden, self.log_dir = limits, hidden, log_dir
        self.workers = pool.start_workers(workers, limits, hidden, log_dir)

    def run(self, jobs: list[pool.Job]) -> Iterator[tuple[pool.Job, dict, dict]]:
        yield from pool.run_jobs(self.workers, jobs, self.limits, self.hidden, self.log_dir)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


def check(executor: str, scheduler: str | None) -> None:
    """Refuse a choice that cannot run, before any work (the command line asks this first)."""
    if executor not in EXECUTORS:
        raise CourseError(f"unknown executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
    if scheduler and executor != "dask":
        raise CourseError("--scheduler is for --executor dask")
    if executor == "dask" and not scheduler:
        raise CourseError("--executor dask needs --scheduler tcp://HOST:PORT (or use --executor dask-local)")


def create(executor: str, workers: int, limits: sandbox.Limits, hidden: list[str], log_dir: Path,
           scheduler: str | None = None):
    """The executor a run asked for: ``local``, ``dask`` (a scheduler's address) or ``dask-local``."""
    check(executor, scheduler)
    if executor == "local":
        return LocalExecutor(workers, limits, hidden, log_dir)
    try:
        from .dask_executor import DaskExecutor
    except ImportError:
        raise CourseError("the Dask executors need the course's dask extra: pip install 'course[dask]'") from None
    return DaskExecutor(limits, scheduler=scheduler if executor == "dask" else None, workers=workers)
