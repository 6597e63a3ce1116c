"""The grader's side of the workers: start N fork servers, hand out jobs, collect answers as they come.

Workers are started before the grader imports TensorFlow itself (``subprocess`` forks and execs at once, so no
thread state is copied). A worker that dies is restarted; the submission it was grading is reported as crashed.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import sandbox, wire
from ..notebooks import ROOT


@dataclass
class Job:
    """One submission to run: the meta (no student content) and the encoded body (cells, inputs, notebook)."""

    index: int
    meta: dict
    body: bytes


class Worker:
    """One fork-server process."""

    def __init__(self, slot: int, limits: sandbox.Limits, hidden: list[str], log_dir: Path):
        config = json.dumps({"limits": limits.__dict__, "hidden": hidden})
        env = dict(os.environ, OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
                   TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0", KERAS_BACKEND="tensorflow",
                   PYTHONHASHSEED="0", MPLBACKEND="Agg", PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
        self.log = open(log_dir / f"worker-{slot}.log", "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "course.grading.worker", str(slot), config],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        env=env, cwd=str(log_dir))
        self.ready: dict | None = None

    def wait_ready(self) -> dict:
        if self.ready is None:
            self.ready, _ = wire.read_message(self.process.stdout.fileno())
        return self.ready

    def grade(self, job: Job) -> tuple[dict, dict]:
        self.wait_ready()
        stdin = self.process.stdin
        stdin.write(wire.encode(job.meta))
        stdin.write(job.body)
        stdin.flush()
        return wire.read_message(self.process.stdout.fileno())

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.log.close()


def start_workers(count: int, limits: sandbox.Limits, hidden: list[str], log_dir: Path) -> list[Worker]:
    """Start ``count`` workers (they import the frameworks in parallel)."""
    return [Worker(slot, limits, hidden, log_dir) for slot in range(count)]


def run_jobs(workers: list[Worker], jobs: list[Job], limits: sandbox.Limits, hidden: list[str],
             log_dir: Path) -> Iterator[tuple[Job, dict, dict]]:
    """Grade every job on the workers; yields (job, header, arrays) in completion order."""
    todo: queue.Queue = queue.Queue()
    for job in jobs:
        todo.put(job)
    done: queue.Queue = queue.Queue()

    def serve(slot: int) -> None:
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            try:
                header, arrays = workers[slot].grade(job)
            except (OSError, EOFError, wire.WireError) as exc:
                workers[slot].process.kill()
                workers[slot].close()
                workers[slot] = Worker(slot, limits, hidden, log_dir)
                header, arrays = {"worker_error": f"the grading worker failed ({type(exc).__name__})"}, {}
            done.put((job, header, arrays))

    threads = [threading.Thread(target=serve, args=(slot,), daemon=True) for slot in range(len(workers))]
    for thread in threads:
        thread.start()
    for _ in jobs:
        yield done.get()
    for thread in threads:
        thread.join()
