"""The grader beyond one machine (issue 15): the same class graded locally, on a real Dask cluster, on a Dask
LocalCluster and in two merged shards gives byte-identical CSVs; a killed worker or a killed grader loses nothing.

Cost is kept down by one small class (chapter 01_softmax, cheap notebooks), one local reference run, and one real
cluster (``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, ephemeral ports) for the whole module:
its workers import the frameworks once, at the first run, and every later run finds them warm. The test that kills
a worker runs last. "Half-way" is an event, never a delay: the grader is killed, or a worker is, once the cache
folder holds results of some submissions but not all of them; two students whose notebooks take a few seconds come
last in the class, so the run is still going when that happens.
"""
from __future__ import annotations

import csv
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "grading_fixtures"))
import classroom  # noqa: E402
import hostile  # noqa: E402

PYTHON = sys.executable
DASK = str(Path(sys.executable).parent / "dask")
LIMITS = ["--timeout", "60", "--question-timeout", "10", "--cell-timeout", "20", "--memory", "1024", "--no-progress"]
#: Students whose notebook takes a few seconds (last in the class): the run is still going when a test kills part
#: of it after the first results are in.
SLOW = {"zz slow 1": 3, "zz slow 2": 3}
#: The hostile class's attacks that are run through Dask here (the whole class is graded locally, as root, by
#: test_grading_isolation): frames the sandbox forges, reading the environment, importing the judge side.
HOSTILE = ("honest 1", "npz huge header", "deeply nested frame", "oversized frame", "environment in answers",
           "imports the judge side", "repository in answers")


def grade(submissions: Path, out: Path, seed: Path, *extra: str, **popen):
    command = [PYTHON, "-m", "course", "grade", str(submissions), "--out", str(out), "--seed-file", str(seed),
               *LIMITS, *extra]
    if popen:
        return subprocess.Popen(command, cwd=classroom.ROOT, **popen)
    return subprocess.run(command, cwd=classroom.ROOT, capture_output=True, text=True, timeout=600)


def csvs(out: Path) -> tuple[bytes, bytes]:
    return (out / "grades.csv").read_bytes(), (out / "summary.csv").read_bytes()


def cached(out: Path) -> int:
    return len(list((out / ".cache").glob("*.json")))


def wait_for(condition, what: str, seconds: float = 300) -> None:
    """Poll for an event (an upper bound against a hang, never a delay that decides the outcome)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The class and its reference gradebook from the local executor."""
    base = tmp_path_factory.mktemp("dask-class")
    submissions, seed = base / "submissions", base / "secret" / "seed"
    classroom.write_honest_class(submissions, 6)
    for student, seconds in SLOW.items():
        (submissions / student).mkdir()
        notebook = classroom.correct(f"import time\ntime.sleep({seconds})  # {student}")
        (submissions / student / f"{classroom.CHAPTER}.ipynb").write_text(notebook, encoding="utf-8")
    result = grade(submissions, base / "local", seed, "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return {"base": base, "submissions": submissions, "seed": seed, "local": base / "local",
            "students": len(SLOW) + 6}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real scheduler and two real worker processes (each in its own session, so one can be killed whole)."""
    base = tmp_path_factory.mktemp("dask-cluster")
    scheduler_file = base / "scheduler.json"
    # The workers' own environment holds a token: no sandbox may see it (the hostile "environment" students).
    token = "tok-" + secrets.token_hex(12)
    env = dict(os.environ, GRADER_API_TOKEN=token, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="3")
    common = {"cwd": base, "env": env, "start_new_session": True, "stdout": subprocess.DEVNULL,
              "stderr": open(base / "cluster.log", "ab")}
    processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], **common)]
    wait_for(lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0, "the scheduler", 120)
    for number in range(2):
        processes.append(subprocess.Popen(
            [DASK, "worker", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1", "--nthreads", "1",
             "--nworkers", "1", "--no-dashboard", "--memory-limit", "0", "--name", f"grader-{number}",
             "--local-directory", str(base / f"worker-{number}")], **common))
    from distributed import Client

    with Client(scheduler_file=str(scheduler_file), timeout=120) as client:
        client.wait_for_workers(2, timeout=300)
        address = client.scheduler.address
    yield {"address": address, "workers": processes[1:], "token": token, "log": base / "cluster.log"}
    for process in reversed(processes):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def test_a_dask_cluster_grades_byte_identical_to_the_local_executor(graded, cluster, tmp_path):
    out = tmp_path / "out"
    result = grade(graded["submissions"], out, graded["seed"], "--executor", "dask", "--scheduler",
                   cluster["address"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert csvs(out) == csvs(graded["local"])
    assert f" {graded['students']} submissions ran in sandboxes" in result.stdout, result.stdout
    # What each worker had is said, and it is the full sandbox of a local run (the test runs as root).
    assert "on 2 Dask worker(s)" in result.stdout, result.stdout
    if os.geteuid() == 0:
        assert "full isolation (allow-list root filesystem" in result.stdout


def test_a_killed_grader_resumes_from_its_cache_to_the_same_gradebook(graded, cluster, tmp_path):
    out = tmp_path / "out"
    process = grade(graded["submissions"], out, graded["seed"], "--executor", "dask", "--scheduler",
                    cluster["address"], start_new_session=True, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: cached(out) >= 3 or process.poll() is not None, "the first results")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    done = cached(out)
    assert not (out / "grades.csv").exists() and done < graded["students"], "killed too late to test resuming"
    result = grade(graded["submissions"], out, graded["seed"], "--executor", "dask", "--scheduler",
                   cluster["address"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f" {done} came from the cache" in result.stdout, result.stdout
    assert csvs(out) == csvs(graded["local"])


def test_two_shards_one_on_a_local_cluster_merge_into_the_same_gradebook(graded, cluster, tmp_path):
    first, second, merged = tmp_path / "shard1", tmp_path / "shard2", tmp_path / "merged"
    one = grade(graded["submissions"], first, graded["seed"], "--shard", "1/2", "--executor", "dask-local",
                "--workers", "2")
    two = grade(graded["submissions"], second, graded["seed"], "--shard", "2/2", "--executor", "dask",
                "--scheduler", cluster["address"])
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]
    assert "on 2 Dask worker(s)" in one.stdout, one.stdout
    students = [{row["student"] for row in csv.DictReader(open(shard / "grades.csv", encoding="utf-8"))}
                for shard in (first, second)]
    assert students[0] and students[1] and not students[0] & students[1]  # a real split, each student once
    # The LocalCluster's shard alone: the reference's rows of its students, byte for byte.
    reference = (graded["local"] / "grades.csv").read_text(encoding="utf-8").splitlines()
    own = [line for line in reference[1:] if next(csv.reader([line]))[0] in students[0]]
    assert (first / "grades.csv").read_text(encoding="utf-8").splitlines() == [reference[0], *own]
    result = subprocess.run([PYTHON, "-m", "course", "grade-merge", str(merged), str(second), str(first)],
                            cwd=classroom.ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert csvs(merged) == csvs(graded["local"])
    assert sorted(p.name for p in (merged / "feedback").rglob("*.html")) == \
        sorted(p.name for p in (graded["local"] / "feedback").rglob("*.html"))
    assert (merged / "report.html").is_file()
    incomplete = subprocess.run([PYTHON, "-m", "course", "grade-merge", str(tmp_path / "bad"), str(first)],
                                cwd=classroom.ROOT, capture_output=True, text=True, timeout=300)
    assert incomplete.returncode == 2 and "missing [2]" in incomplete.stderr, incomplete.stderr


def test_hostile_submissions_get_the_same_grades_through_dask(cluster, tmp_path):
    tag = secrets.token_hex(6)
    attacks = hostile.attacks(classroom.ROOT, tag)
    expected = hostile.write(tmp_path / "submissions", {name: attacks[name] for name in HOSTILE})
    out = tmp_path / "out"
    # The module's limits (not the hostile module's): the workers' warm fork servers are kept for them, and none
    # of these attacks depends on the memory limit.
    result = grade(tmp_path / "submissions", out, tmp_path / "seed", "--executor", "dask", "--scheduler",
                   cluster["address"])
    assert result.returncode == 0, result.stderr[-3000:]
    totals: dict[str, float] = {}
    for row in csv.DictReader(open(out / "grades.csv", encoding="utf-8")):
        totals[row["student"]] = totals.get(row["student"], 0.0) + float(row["points"])
    assert totals == pytest.approx(expected)
    everything = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in out.rglob("*") if p.is_file())
    assert cluster["token"] not in everything


def test_a_killed_worker_loses_nothing_and_every_submission_is_graded_once(graded, cluster, tmp_path):
    out = tmp_path / "out"
    process = grade(graded["submissions"], out, graded["seed"], "--executor", "dask", "--scheduler",
                    cluster["address"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: cached(out) >= 3 or process.poll() is not None, "the first results")
    victim = cluster["workers"][0]
    done = cached(out)
    os.killpg(victim.pid, signal.SIGKILL)  # the nanny, the worker, its fork server and sandbox: the machine is gone
    victim.wait()
    assert done < graded["students"], "killed too late: the run had finished"
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert f" {graded['students']} submissions ran in sandboxes" in stdout, stdout
    assert csvs(out) == csvs(graded["local"])
    rows = list(csv.DictReader(open(out / "grades.csv", encoding="utf-8")))
    assert len(rows) == 3 * graded["students"] and len({(r["student"], r["question"]) for r in rows}) == len(rows)
