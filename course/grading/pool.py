"""The grader's side of the workers: start N fork servers, hand out jobs, collect answers as they come.

Workers are started before the grader imports TensorFlow itself (``subprocess`` forks and execs at once, so no
thread state is copied), each with an environment built from an allow-list (never the grader's own: tokens and
paths in it would otherwise sit in the memory every sandbox is forked from) and, as root, a control group of its
own (:mod:`course.grading.cgroups`). No exception in a serving thread escapes: the job it was on is reported as
crashed, the worker is restarted, and every job gets an answer, so the gradebook is always written.
"""
from __future__ import annotations

import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import cgroups, sandbox, wire
from ..notebooks import ROOT

#: How long a worker may take to import the frameworks and say it is ready.
STARTUP_SECONDS = 600
#: The isolation the last started workers reported (for the grader's summary).
ISOLATION: dict[str, str] = {}


@dataclass
class Job:
    """One submission to run: the meta (no student content) and the encoded body (cells, inputs, notebook)."""

    index: int
    meta: dict
    body: bytes
    # Filled by run_jobs (facts of this run, never of the notebook's bytes): from the start of run_jobs until a ready
    # worker took the job (worker start-up included), and from then until its answer was back.
    queued_seconds: float | None = None
    worker_seconds: float | None = None


def worker_environment(home: Path) -> dict[str, str]:
    """A worker's whole environment: numerics, framework quietness and paths, from an allow-list."""
    env = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow",
           "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
           "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home)}
    if os.environ.get(sandbox.REDUCED_ENV):
        env[sandbox.REDUCED_ENV] = os.environ[sandbox.REDUCED_ENV]
    return env


class Worker:
    """One fork-server process, with its slot's control group when one can be had."""

    def __init__(self, slot: int, limits: sandbox.Limits, hidden: list[str], log_dir: Path):
        # ``hidden`` is kept for the caller's sake: the allow-list root shows none of the grader's paths anyway.
        self.slot = slot
        # The worker's own clock ends a submission at ``submission_seconds``; each attempt may add a bounded
        # start and clean-up time.
        self.answer_seconds = limits.submission_seconds + 120 * 4 + 60
        self.group = cgroups.create(slot, limits.memory_mb) if sandbox.privileged() else None
        config = json.dumps({"limits": limits.__dict__, "course_root": str(ROOT),
                             "cgroup": self.group.to_json() if self.group else None})
        self.log = open(log_dir / f"worker-{slot}.log", "ab")
        # -P: the working folder (the log folder) must not land on sys.path, which the allow-list root mirrors.
        self.process = subprocess.Popen([sys.executable, "-P", "-m", "course.grading.worker", str(slot), config],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        env=worker_environment(log_dir), cwd=str(log_dir))
        self.ready: dict | None = None

    def _answer(self, seconds: float) -> tuple[dict, dict]:
        """The worker's next message, or TimeoutError: a worker that hangs is treated like one that died."""
        fd = self.process.stdout.fileno()
        if not select.select([fd], [], [], seconds)[0]:
            raise TimeoutError("the worker did not answer")
        return wire.read_message(fd)

    def wait_ready(self) -> dict:
        if self.ready is None:
            self.ready, _ = self._answer(STARTUP_SECONDS)
            ISOLATION[self.slot] = str(self.ready.get("isolation", ""))
        return self.ready

    def grade(self, job: Job, since: float | None = None) -> tuple[dict, dict]:
        """Run one job; with ``since`` (a perf_counter time) the job's queue and worker times are recorded."""
        self.wait_ready()
        sent = time.perf_counter()
        if since is not None:
            job.queued_seconds = sent - since
        stdin = self.process.stdin
        stdin.write(wire.encode(job.meta))
        stdin.write(job.body)
        stdin.flush()
        header, arrays = self._answer(self.answer_seconds)
        job.worker_seconds = time.perf_counter() - sent
        if not isinstance(header.get("questions"), dict):
            raise wire.WireError("the worker's answer has no questions")
        return header, arrays

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.log.close()
        if self.group:
            self.group.remove()


def start_workers(count: int, limits: sandbox.Limits, hidden: list[str], log_dir: Path) -> list[Worker]:
    """Start ``count`` workers (they import the frameworks in parallel)."""
    ISOLATION.clear()
    return [Worker(slot, limits, hidden, log_dir) for slot in range(count)]


def isolation() -> str:
    """What the sandboxes of this run had, in one phrase (from the workers' own reports)."""
    phrases = sorted(set(ISOLATION.values()) - {""})
    return "; ".join(phrases) if phrases else "no sandbox this run (every result came from the cache)"


def run_jobs(workers: list[Worker], jobs: list[Job], limits: sandbox.Limits, hidden: list[str],
             log_dir: Path) -> Iterator[tuple[Job, dict, dict]]:
    """Grade every job on the workers; yields (job, header, arrays) in completion order."""
    since = time.perf_counter()
    todo: queue.Queue = queue.Queue()
    for job in jobs:
        todo.put(job)
    done: queue.Queue = queue.Queue()

    def restart(slot: int) -> None:
        try:
            workers[slot].process.kill()
            workers[slot].close()
        except Exception:
            pass
        workers[slot] = Worker(slot, limits, hidden, log_dir)

    def serve(slot: int) -> None:
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            try:
                header, arrays = workers[slot].grade(job, since)
            except Exception as exc:  # whatever went wrong, this job is crashed and the worker starts afresh
                header, arrays = {"worker_error": f"the grading worker failed ({type(exc).__name__})"}, {}
                try:
                    restart(slot)
                except Exception:
                    pass  # the next job finds a dead worker and is reported the same way
            done.put((job, header, arrays))

    threads = [threading.Thread(target=serve, args=(slot,), daemon=True) for slot in range(len(workers))]
    for thread in threads:
        thread.start()
    for _ in jobs:
        yield done.get()
    for thread in threads:
        thread.join()
