"""The grader's jobs as tasks on a Dask cluster: the instructor's side (:class:`DaskExecutor`) and the workers'.

This is a thin layer on Dask's own machinery (scheduling, rescheduling of a task lost with its worker up to the
scheduler's ``distributed.scheduler.allowed-failures``, retries of a task that raised), not a home-made one. Each
Dask worker process keeps one fork server of :mod:`course.grading.worker`, started by a worker plugin when the
worker joins, so TensorFlow and torch are imported once per worker process and never per task; each task runs its
job through that fork server exactly as :class:`course.grading.pool.Worker` does locally (a ``subprocess``, which
works in Dask's daemonic worker processes where ``multiprocessing`` children cannot be started). A task returns
only the fork server's answer, re-encoded in the :mod:`course.grading.wire` format, which the instructor's process
parses under the same caps as any frame. The job itself is the notebook and the hidden cases' inputs: expected
values, reference implementations and the secret never leave the instructor's process.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import struct
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Iterator

from distributed import Client, KilledWorker, LocalCluster, as_completed, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from ..errors import CourseError
from . import pool, sandbox, wire

#: The name of the worker plugins that own each Dask worker's fork server (one per set of limits: ``PLUGIN-<hash>``).
PLUGIN = "course-grader"
#: Fork-server slots of Dask workers start here, so that they never share a control-group name or a sandbox user
#: with a local run's slots (0, 1, ...) on the same machine.
DASK_SLOT_BASE = 100
#: Times a task that *raised* is retried (a worker that could not start its fork server, say). A task lost with its
#: worker is rescheduled by Dask itself, up to the scheduler's ``distributed.scheduler.allowed-failures`` times.
TASK_RETRIES = 2
#: How many tasks wait on the scheduler per worker thread: enough to keep every worker busy, few enough that the
#: scheduler never holds a whole MOOC's notebooks in memory.
QUEUED_PER_THREAD = 2
#: How long a run waits for the first Dask worker to join (a batch system may take minutes to start them); then it
#: stops with a message rather than wait for ever.
WORKERS_SECONDS = 600.0


def _claim_slot() -> tuple[int, object]:
    """A slot number no other Dask worker process on this machine holds (a lock file held for the process's life)."""
    folder = Path(tempfile.gettempdir()) / "course-grader-slots"
    folder.mkdir(mode=0o700, exist_ok=True)
    for slot in range(DASK_SLOT_BASE, DASK_SLOT_BASE + 10_000):
        handle = open(folder / f"{slot}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return slot, handle
    raise RuntimeError("no free grading slot on this machine")


class ForkServer:
    """One Dask worker process's fork server: started once, restarted after a failure like a local slot's."""

    def __init__(self, limits: sandbox.Limits, log_dir: Path):
        self.limits, self.log_dir = limits, log_dir
        self.slot, self._lock_file = _claim_slot()
        self.lock = threading.Lock()  # a worker with several threads still has one fork server: one job at a time
        self.worker: pool.Worker | None = None
        self.start()

    def start(self) -> None:
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.worker = pool.Worker(self.slot, self.limits, [], self.log_dir)

    def grade(self, meta: dict, body: bytes) -> tuple[bytes, str]:
        """The answer to one job (wire-encoded) and the isolation its sandbox had."""
        with self.lock:
            try:
                header, arrays = self.worker.grade(pool.Job(0, meta, body))
            except Exception as exc:  # as locally: this job is crashed and the fork server starts afresh
                header, arrays = {"worker_error": f"the grading worker failed ({type(exc).__name__})"}, {}
                self.close()
                self.start()
            isolation = str((self.worker.ready or {}).get("isolation", ""))
            return wire.encode(header, arrays), isolation

    def close(self) -> None:
        if self.worker is not None:
            try:
                self.worker.process.kill()
                self.worker.close()
            except Exception:
                pass
            self.worker = None

    def release(self) -> None:
        """Give the slot back (the fork server is closed)."""
        self._lock_file.close()


def plugin_name(limits: dict) -> str:
    """The plugin of one set of limits: runs with the same limits share the workers' warm fork servers."""
    return f"{PLUGIN}-{hashlib.sha256(json.dumps(limits, sort_keys=True).encode()).hexdigest()[:12]}"


class ForkServerPlugin(WorkerPlugin):
    """Starts the fork server when a Dask worker joins (each imports the frameworks in parallel with the others)
    and stops it when the worker leaves or the plugin is replaced. Registered by name, it is pickled to the
    scheduler and to every worker, including workers that join later (a restarted one), and it stays after a run:
    the next run with the same limits finds the frameworks imported."""

    idempotent = True  # registering it again (the next run) keeps the workers' running fork servers

    def __init__(self, limits: dict):
        self.limits = limits
        self.server: ForkServer | None = None

    def setup(self, worker) -> None:
        log_dir = Path(worker.local_directory) / "course-grader"
        self.server = ForkServer(sandbox.Limits(**self.limits), log_dir)

    def teardown(self, worker) -> None:
        if self.server is not None:
            self.server.close()
            self.server.release()
            self.server = None


def run_on_worker(meta: dict, body: bytes, limits: dict) -> tuple[bytes, str, str]:
    """The Dask task: run one job in this worker's fork server; (answer frame, isolation, worker address)."""
    worker = get_worker()
    plugin = worker.plugins.get(plugin_name(limits))
    if plugin is None or plugin.server is None or plugin.limits != limits:
        raise RuntimeError("this Dask worker has no grading fork server with this run's limits")
    answer, isolation = plugin.server.grade(meta, body)
    return answer, isolation, worker.address


# --- the instructor's side -------------------------------------------------------------------------------------

class DaskExecutor:
    """Each job a task on a Dask cluster: a scheduler's address, or a LocalCluster of ``workers`` processes."""

    def __init__(self, limits: sandbox.Limits, scheduler: str | None = None, workers: int = 2):
        self.limits = limits.__dict__
        self.cluster = None
        if scheduler is None:
            # One thread per worker process, as one local slot: the fork server runs one sandbox at a time.
            # No memory limit of Dask's own: the sandboxes' limits are the kernel's (cgroups), per fork server. Its
            # HTTP server on any free port of loopback: a fixed one may be taken, and nothing outside needs it.
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        dashboard_address="127.0.0.1:0", memory_limit=0)
            scheduler = self.cluster.scheduler_address
        try:
            self.client = Client(scheduler, timeout=60)
        except OSError as exc:
            self.close()
            raise CourseError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        self._install_plugin()
        self.run_id = uuid.uuid4().hex[:12]

    def _install_plugin(self) -> None:
        """This run's fork servers on every worker, unless they are already there; those of other limits go."""
        name = plugin_name(self.limits)
        present = self.client.run(lambda dask_worker: sorted(dask_worker.plugins))
        for other in sorted({n for names in present.values() for n in names if n.startswith(PLUGIN) and n != name}):
            self.client.unregister_worker_plugin(other)  # one fork server per worker: its memory is the budget
        self.client.register_plugin(ForkServerPlugin(self.limits), name=name)

    def _window(self) -> int:
        threads = sum(self.client.nthreads().values())
        return max(2, QUEUED_PER_THREAD * threads)

    def run(self, jobs: list[pool.Job]) -> Iterator[tuple[pool.Job, dict, dict]]:
        pool.ISOLATION.clear()
        self._wait_for_a_worker()
        todo = list(reversed(jobs))
        by_key: dict[str, pool.Job] = {}

        def submit():
            job = todo.pop()
            future = self.client.submit(run_on_worker, job.meta, job.body, self.limits, pure=False,
                                        key=f"course-grade-{self.run_id}-{job.index}", retries=TASK_RETRIES)
            by_key[future.key] = job
            return future

        pending = as_completed([submit() for _ in range(min(len(todo), self._window()))])
        for future in pending:
            job = by_key.pop(future.key)
            header, arrays = self._answer(future)
            future.release()
            if todo:
                pending.add(submit())
            yield job, header, arrays
        _summarise_isolation()

    def _wait_for_a_worker(self) -> None:
        """Return once the cluster has a worker; say so while waiting, and stop after :data:`WORKERS_SECONDS`."""
        if self.client.nthreads():
            return
        address = self.client.scheduler.address
        print(f"No Dask worker has joined {address} yet; waiting up to {WORKERS_SECONDS:.0f} s (start one with "
              f"`dask worker {address} --nthreads 1`)...", file=sys.stderr, flush=True)
        try:
            self.client.wait_for_workers(1, timeout=WORKERS_SECONDS)
        except TimeoutError:
            raise CourseError(f"no Dask worker joined the scheduler at {address} within {WORKERS_SECONDS:.0f} s: "
                              f"start workers with `dask worker {address} --nthreads 1` (see the grading "
                              f"guide), then run the same command again") from None

    def _answer(self, future) -> tuple[dict, dict]:
        """The job's answer, parsed under the wire's caps; a task that failed is that job's ``crashed`` row."""
        if future.status != "finished":
            exc = future.exception()
            if isinstance(exc, KilledWorker):
                message = (f"the Dask workers running this notebook died {exc.allowed_failures + 1} times; it was "
                           f"not retried again")
            else:
                message = f"the Dask task failed ({type(exc).__name__}: {str(exc)[:200]})"
            return {"worker_error": message, "executor_error": True}, {}
        answer, isolation, address = future.result()
        if isolation:  # empty when the fork server was just restarted: its next answer says
            pool.ISOLATION[address] = isolation
        try:
            return wire.decode_message(answer)
        except (wire.WireError, TypeError, ValueError, struct.error) as exc:
            return {"worker_error": f"the Dask worker's answer was malformed ({exc})"}, {}

    def close(self) -> None:
        """Disconnect (a cluster's fork servers stay warm for the next run); stop a LocalCluster."""
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self.cluster is not None:
            self.cluster.close()


def _summarise_isolation() -> None:
    """What each worker's sandboxes had, grouped: one phrase per kind of worker, with how many and which."""
    by_phrase: dict[str, list[str]] = {}
    for address, phrase in pool.ISOLATION.items():
        by_phrase.setdefault(phrase, []).append(address)
    pool.ISOLATION.clear()
    for phrase, addresses in by_phrase.items():
        shown = ", ".join(sorted(addresses)[:3]) + (", ..." if len(addresses) > 3 else "")
        pool.ISOLATION[phrase] = f"{phrase} on {len(addresses)} Dask worker(s) ({shown})"
