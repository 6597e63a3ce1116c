"""Benchmark: the grader against the baseline nbgrader's autograde cannot beat (one ``nbconvert --execute`` per
submission), on the same generated class of one chapter.

    .venv/bin/python benchmarks/grade_benchmark.py [--students 40] [--workers 2] [--baseline-jobs 1] [--grader-only]

Prints both wall times, both throughputs (submissions per second) and their ratio. The grader runs with every
guarantee on (as root: the allow-list root filesystem, namespaces, per-slot cgroups for memory, CPU and
processes, a zygote per worker, capped frame parsing; hidden cases, judging outside the sandbox, cache written)
and a fresh output folder, so nothing comes from its cache; its summary line, printed first, names the isolation
it had. The baseline only executes each notebook (its self-checks included): it does not
even grade, so it is a lower bound on nbgrader's time. ``--baseline-jobs 2`` runs two nbconverts at once, which
nbgrader does not do (its autograde is serial), to show the grader also beats a parallel baseline.
``--grader-only`` skips the baseline (to compare two versions of the grader: run this script from each checkout).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "grading_fixtures"))
import classroom  # noqa: E402

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0", KERAS_BACKEND="tensorflow",
           OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
BIN = Path(sys.executable).parent


def time_grader(submissions: Path, out: Path, workers: int) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "course", "grade", str(submissions), "--out", str(out),
                             "--workers", str(workers), "--no-progress",
                             # a secret of the benchmark's own, never the user's (~/.config/course)
                             "--secret-file", str(out.parent / "grading-secret")], cwd=ROOT, env=ENV,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"the grader failed: {result.stderr.strip().splitlines()[-1:]}")
    print("grader:", result.stdout.strip())
    return seconds


def _sandbox_seconds(out: Path) -> list[float]:
    """Each submission's time in its worker (all attempts), from the cache entries: every version writes them."""
    import json

    entries = [json.loads(path.read_text()) for path in (out / ".cache").glob("*.json")]
    return [entry["run"]["seconds"] for entry in entries if entry.get("run", {}).get("seconds") is not None]


def execute_one(notebook: Path, output_dir: Path) -> bool:
    result = subprocess.run([str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
                             "--ExecutePreprocessor.timeout=120", "--ExecutePreprocessor.allow_errors=True",
                             "--output-dir", str(output_dir), str(notebook)], env=ENV, capture_output=True)
    return result.returncode == 0


def time_baseline(submissions: Path, scratch: Path, jobs: int) -> float:
    notebooks = sorted(submissions.glob("*/*.ipynb"))
    start = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda nb: execute_one(nb, scratch / nb.parent.name), notebooks))
    seconds = time.perf_counter() - start
    if not all(results):
        raise SystemExit(f"the baseline failed on {results.count(False)} notebooks")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-jobs", type=int, default=1)
    parser.add_argument("--grader-only", action="store_true", help="time the grader only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="grade-benchmark-") as tmp:
        tmp = Path(tmp)
        classroom.write_honest_class(tmp / "submissions", args.students)
        grader = time_grader(tmp / "submissions", tmp / "out", args.workers)
        sandbox_seconds = _sandbox_seconds(tmp / "out")
        baseline = None if args.grader_only else time_baseline(tmp / "submissions", tmp / "baseline",
                                                               args.baseline_jobs)
    n = args.students
    print(f"class: {n} submissions of {classroom.CHAPTER}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print(f"grader   ({args.workers} workers, sandboxed, hidden cases, judged outside): {grader:7.1f} s  "
          f"{n / grader:.3f} submissions/s")
    if sandbox_seconds:
        print(f"         time in the worker per submission (all attempts, from the cache entries): "
              f"{sum(sandbox_seconds) / len(sandbox_seconds):.2f} s")
    if baseline is None:
        return 0
    print(f"baseline (nbconvert --execute, {args.baseline_jobs} at a time):            {baseline:7.1f} s  "
          f"{n / baseline:.3f} submissions/s")
    print(f"throughput ratio grader/baseline: {baseline / grader:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
