"""Benchmark: the same class through the local pool and through a 2-worker Dask LocalCluster, side by side, and
the figures of the grading guide's scale model.

    .venv/bin/python benchmarks/grade_dask_benchmark.py [--students 40] [--workers 2] [--tasks 2000]
    .venv/bin/python benchmarks/grade_dask_benchmark.py --chapter 05_training_loops --students 12 --tasks 0

``--chapter`` grades copies of that chapter's solution instead of the chapter 01 class: Dask's cost is about the
same per task whatever the notebook, so a heavier chapter shows what it weighs beside a realistic sandbox time.

Each executor grades the class of ``--students`` in a process of its own (a fresh output folder: nothing from the
cache). Besides the run's wall time, the process notes the time and its own CPU time (threads included, children
not: the instructor's share, which reading, judging and writing cost) at each answer, so that the steady state,
from the first answer to the last, leaves out what a run pays once (the frameworks' imports, the LocalCluster's
start): seconds per submission = (last - first) / (n - 1). Then ``--tasks`` empty tasks carrying a job-sized
payload go through a LocalCluster of the same shape without the grader, for the scheduler's own overhead per
task. The last lines are the scale model for 60,000 submissions.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "grading_fixtures"))
import classroom  # noqa: E402

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0", KERAS_BACKEND="tensorflow",
           OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONHASHSEED="0")
#: One grader run in a process of its own, reporting its wall time and its own CPU time (children excluded).
RUN = """
import json, resource, sys, time
from pathlib import Path
from course.grading import executors
from course.grading.pipeline import Options, grade

marks = []
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

class Timed:
    def __init__(self, inner):
        self.inner = inner
    def run(self, jobs):
        for answer in self.inner.run(jobs):
            marks.append((time.perf_counter(), cpu()))  # before the grader judges it: one judging per interval
            yield answer
    def close(self):
        self.inner.close()

create = executors.create
executors.create = lambda *args, **kwargs: Timed(create(*args, **kwargs))
start = time.perf_counter()
outcome = grade(Options(submissions=Path(sys.argv[1]), out=Path(sys.argv[2]), workers=int(sys.argv[3]),
                        executor=sys.argv[4], progress=False))
(t0, c0), (t1, c1) = marks[0], marks[-1]
print(json.dumps({"wall": time.perf_counter() - start, "graded": outcome.graded, "per": (t1 - t0) / (len(marks) - 1),
                  "cpu_per": (c1 - c0) / (len(marks) - 1)}))
"""
SUBMISSIONS = 60_000
MACHINES = (1, 10, 100)
CORES_PER_MACHINE = 16


def run(submissions: Path, out: Path, workers: int, executor: str) -> dict:
    result = subprocess.run([sys.executable, "-c", RUN, str(submissions), str(out), str(workers), executor],
                            cwd=ROOT, env=ENV, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the grader failed ({executor}): {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def scheduler_overhead(workers: int, tasks: int, payload: int) -> float:
    """Seconds per task of an empty task with a job-sized payload, submitted as the Dask executor does."""
    from distributed import Client, LocalCluster, as_completed

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        client.submit(len, b"warm", pure=False).result()
        body = os.urandom(payload)
        window = 2 * workers
        start = time.perf_counter()
        todo = tasks
        futures = [client.submit(len, body, pure=False) for _ in range(min(window, todo))]
        todo -= len(futures)
        pending = as_completed(futures)
        for future in pending:
            future.result()
            future.release()
            if todo:
                todo -= 1
                pending.add(client.submit(len, body, pure=False))
        return (time.perf_counter() - start) / tasks


def write_solution_class(root: Path, chapter: str, size: int) -> None:
    """``size`` copies of ``chapter``'s solution, each with its own last cell (the grader runs identical files once)."""
    import nbformat

    for number in range(size):
        folder = root / f"student{number:03d}"
        folder.mkdir(parents=True)
        nb = nbformat.read(ROOT / "solutions" / f"{chapter}.ipynb", as_version=4)
        nb.cells.append(nbformat.v4.new_markdown_cell(f"Handed in by {folder.name}."))
        nbformat.write(nb, folder / f"{chapter}.ipynb")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=2000, help="empty tasks for the scheduler's overhead (0: skip)")
    parser.add_argument("--chapter", help="grade copies of this chapter's solution instead of the chapter 01 class")
    args = parser.parse_args()
    chapter = args.chapter or classroom.CHAPTER
    n, load_before = args.students, os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory(prefix="grade-dask-benchmark-") as tmp:
        tmp = Path(tmp)
        if args.chapter:
            write_solution_class(tmp / "class", args.chapter, n)
        else:
            classroom.write_honest_class(tmp / "class", n)
        payload = len((tmp / "class" / "student000" / f"{chapter}.ipynb").read_bytes())
        for executor in ("local", "dask-local"):
            results[executor] = run(tmp / "class", tmp / f"{executor}-out", args.workers, executor)
    overhead = scheduler_overhead(args.workers, args.tasks, payload) if args.tasks else 0.0
    load_after = os.getloadavg()
    print(f"class: {n} submissions of {chapter}, {args.workers} workers, "
          f"{os.cpu_count()} cores; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    for executor, r in results.items():
        print(f"{executor:10s}  {r['graded']} submissions in {r['wall']:6.1f} s; steady state {r['per']:.3f} s per "
              f"submission; the instructor's own CPU {r['cpu_per'] * 1000:.0f} ms per submission")
    local, dask = results["local"]["per"], results["dask-local"]["per"]
    print(f"Dask overhead per submission: {100 * (dask - local) / local:+.1f}% ({dask - local:+.3f} s)")
    if args.tasks:
        print(f"scheduler overhead per task (empty task, {payload} B payload, {args.tasks} tasks): "
              f"{overhead * 1000:.2f} ms")
    else:
        print("scheduler overhead per task: not measured (--tasks 0), counted as 0 below")
    core_seconds = dask * args.workers  # the workers were busy all along: seconds of one core per submission
    instructor = max(results["dask-local"]["cpu_per"], 0.0)
    print(f"scale model, {SUBMISSIONS} submissions, {CORES_PER_MACHINE}-core worker machines "
          f"({core_seconds:.2f} core-seconds per submission; the instructor's process judges at "
          f"{instructor * 1000:.0f} ms and the scheduler dispatches at {overhead * 1000:.2f} ms per submission):")
    for machines in MACHINES:
        workers = SUBMISSIONS * core_seconds / (machines * CORES_PER_MACHINE)
        bound = max(workers, SUBMISSIONS * instructor, SUBMISSIONS * overhead)
        print(f"  {machines:3d} machines: workers {workers / 60:7.1f} min, instructor {SUBMISSIONS * instructor / 60:5.1f}"
              f" min, scheduler {SUBMISSIONS * overhead / 60:5.1f} min -> about {bound / 60:.0f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
