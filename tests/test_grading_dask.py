"""The grader beyond one machine (issue 15): the same class graded locally, on a real Dask cluster, on a Dask
LocalCluster and in two merged shards gives byte-identical CSVs; a killed worker or a killed grader loses nothing.

Cost is what shapes this module (every grader process imports the frameworks): one small class of chapter
01_softmax, graded once locally as the reference; honest students, some of the hostile class's attacks (so that
"the same grades as locally" is the same bytes as the local run, and their totals are the ones the isolation tests
demand) and two slow students; one real cluster (``dask scheduler`` and two ``dask worker`` processes on
127.0.0.1, ephemeral ports) for the whole module, whose workers import the frameworks once, at the first run; the
two shards graded at the same time. The test that kills a worker runs last. "Half-way" is an event, never a delay:
the grader, or a worker, is killed once the cache folder holds results of some submissions but not all of them;
the slow students come last in the class, so the run is still going when that happens.
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

from course.grading import cgroups  # noqa: E402

PYTHON = sys.executable
DASK = str(Path(sys.executable).parent / "dask")
LIMITS = ["--timeout", "60", "--question-timeout", "10", "--cell-timeout", "20", "--memory", "1024", "--no-progress"]
#: Students whose notebook takes a few seconds (last in the class): the run is still going when a test kills part
#: of it after the first results are in.
SLOW = {"zz slow 1": 3, "zz slow 2": 3}
#: The hostile class's attacks in this class (the whole hostile class is graded locally by test_grading_isolation):
#: frames the sandbox forges, reading the environment (the workers' holds a token), importing the judge side.
HOSTILE = ("honest 1", "npz huge header", "deeply nested frame", "oversized frame", "environment in answers",
           "imports the judge side", "repository in answers")


def grade(submissions: Path, out: Path, seed: Path, *extra: str, **popen):
    command = [PYTHON, "-m", "course", "grade", str(submissions), "--out", str(out), "--secret-file", str(seed),
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
    attacks = hostile.attacks(classroom.ROOT, secrets.token_hex(6))
    expected = hostile.write(submissions, {name: attacks[name] for name in HOSTILE})
    for student, seconds in SLOW.items():
        (submissions / student).mkdir()
        notebook = classroom.correct(f"import time\ntime.sleep({seconds})  # {student}")
        (submissions / student / f"{classroom.CHAPTER}.ipynb").write_text(notebook, encoding="utf-8")
    result = grade(submissions, base / "local", seed, "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return {"base": base, "submissions": submissions, "seed": seed, "local": base / "local",
            "students": len(SLOW) + 6 + len(HOSTILE), "hostile": expected}


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
    # Workers first, asked to stop (their fork servers close and remove their control groups), then whatever is left.
    for process in reversed(processes):
        for sig, seconds in ((signal.SIGTERM, 60), (signal.SIGKILL, None)):
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=seconds)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
    remove_stale_groups()


def remove_stale_groups() -> None:
    """The control groups of workers killed here (other modules check that no grader leaves one behind)."""
    own = cgroups._own_paths()
    for controller, mount in cgroups._mounts().items():
        cgroups._clean_stale(str(Path(mount) / own.get(controller, "/").lstrip("/")))


def totals(out: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    for row in csv.DictReader(open(out / "grades.csv", encoding="utf-8")):
        found[row["student"]] = found.get(row["student"], 0.0) + float(row["points"])
    return found


def test_the_local_reference_gives_the_hostile_students_their_grades(graded):
    got = totals(graded["local"])
    assert {name: got[name] for name in HOSTILE} == pytest.approx(graded["hostile"])


def test_a_dask_cluster_grading_killed_half_way_resumes_to_the_local_gradebook(graded, cluster, tmp_path):
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
    assert csvs(out) == csvs(graded["local"])  # hostile students included: the same grades as locally
    # What each worker had is said, and it is the full sandbox of a local run (the test runs as root).
    assert "on 2 Dask worker(s)" in result.stdout, result.stdout
    if os.geteuid() == 0:
        assert "full isolation (allow-list root filesystem" in result.stdout
    everything = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in out.rglob("*") if p.is_file())
    assert cluster["token"] not in everything


def test_two_shards_one_on_a_local_cluster_merge_into_the_same_gradebook(graded, cluster, tmp_path):
    first, second, merged = tmp_path / "shard1", tmp_path / "shard2", tmp_path / "merged"
    # At the same time, as two machines of a batch system would. One LocalCluster worker: each costs an import of
    # the frameworks, and one exercises the same path.
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    one = grade(graded["submissions"], first, graded["seed"], "--shard", "1/2", "--executor", "dask-local",
                "--workers", "1", **pipes)
    two = grade(graded["submissions"], second, graded["seed"], "--shard", "2/2", "--executor", "dask",
                "--scheduler", cluster["address"], **pipes)
    (out1, err1), (out2, err2) = one.communicate(timeout=600), two.communicate(timeout=600)
    assert one.returncode == 0 and two.returncode == 0, err1[-2000:] + err2[-2000:]
    assert "on 1 Dask worker(s)" in out1, out1
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


def test_a_killed_worker_loses_nothing_and_every_submission_is_graded_once(graded, cluster, tmp_path):
    out = tmp_path / "out"
    process = grade(graded["submissions"], out, graded["seed"], "--executor", "dask", "--scheduler",
                    cluster["address"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: cached(out) >= 3 or process.poll() is not None, "the first results")
    victim = cluster["workers"][0]
    done = cached(out)
    os.killpg(victim.pid, signal.SIGKILL)  # the nanny, the worker, its fork server and sandbox: the machine is gone
    victim.wait()
    remove_stale_groups()
    assert done < graded["students"], "killed too late: the run had finished"
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert f" {graded['students']} submissions ran in sandboxes" in stdout, stdout
    assert csvs(out) == csvs(graded["local"])
    rows = list(csv.DictReader(open(out / "grades.csv", encoding="utf-8")))
    assert len(rows) == 3 * graded["students"] and len({(r["student"], r["question"]) for r in rows}) == len(rows)


# --- the shard file, without a grader run ------------------------------------------------------------------------

def test_a_run_round_trips_through_the_shard_file_with_every_field(tmp_path):
    from course.chapters import all_chapters
    from course.grading import discover, people, shards
    from course.grading.judging import CaseResult, QuestionGrade
    from course.grading.pipeline import Run, Slot

    chapter = all_chapters()[classroom.CHAPTER]
    grade_row = QuestionGrade("ada", chapter.id, "softmax", 1.5, 3, "failed", "1/2 cases", "hint",
                              [CaseResult("large", False, "NaN"), CaseResult("small", True, "")])
    slot = Slot(discover.Submission("ada", chapter.id, tmp_path / "ada.ipynb", folder="ada\udcff"), chapter,
                grades=[grade_row], run={"seconds": 0.25, "cell_errors": {"3": "boom"}, "flags": []},
                cache_key="k", position=4)
    run = Run(out=tmp_path, root=tmp_path, assignment=discover.Assignment([chapter.id], {chapter.id: 10.0}, "x"),
              slots=[slot], strays=[], stray_files=["README.txt"], graded=1, cached=0,
              identities={"ada": people.Identity(name="Ada", lms_id="7")},
              lateness={("ada", chapter.id): people.Lateness(1.5, 0.1, "file time")}, shard=(2, 3), total_slots=9,
              secret_digest="d")
    shards.save(run, tmp_path / shards.RUN_FILE)
    back = shards.load(tmp_path / shards.RUN_FILE)["run"]
    assert back.slots[0].chapter is chapter and back.slots[0].grades == [grade_row]
    assert back.slots[0].submission == slot.submission and back.slots[0].run == slot.run
    assert (back.identities, back.lateness, back.assignment) == (run.identities, run.lateness, run.assignment)
    assert (back.shard, back.total_slots, back.stray_files) == ((2, 3), 9, ["README.txt"])


def test_a_shard_file_builds_only_the_courses_records(tmp_path):
    from course.errors import CourseError
    from course.grading import shards

    with pytest.raises(CourseError, match="not the course's"):
        shards.from_plain({"__dataclass__": "subprocess:Popen", "fields": {"args": "id"}}, {})
    with pytest.raises(CourseError, match="not a record"):
        shards.from_plain({"__dataclass__": "course.grading.shards:save", "fields": {}}, {})


def test_shards_split_by_a_stable_hash_of_the_folder_name():
    from course.grading import shards

    names = [f"student{n:03d}" for n in range(200)]
    split = [shards.shard_of(name, 4) for name in names]
    assert set(split) == {1, 2, 3, 4} and min(split.count(i) for i in range(1, 5)) > 30
    # the same on every machine and Python (no hash randomisation): a changed split would mix two runs' shards
    assert [shards.shard_of(name, 4) for name in ("student000", "José Ñúñez 李", "ada")] == [1, 2, 3]
    assert shards.parse("3/10") == (3, 10)


def test_a_job_sent_to_a_worker_holds_the_notebook_and_the_case_inputs_only():
    import numpy as np

    from course.chapters import all_chapters
    from course.grading import judging, wire

    chapter = all_chapters()[classroom.CHAPTER]
    cases = judging.hidden_cases(chapter, b"s" * 32)
    meta, body = judging.encode_job(chapter, cases, ["x = 1"], b"{}", f"{classroom.CHAPTER}.ipynb")
    header, arrays = wire.decode_raw(bytearray(body))
    assert set(meta) == {"questions", "case_counts", "cells"}
    assert set(header) == {"chapter", "notebook_name", "cells", "questions", "cases", "skip_cells"}
    assert all(set(spec) == {"label", "inputs"} for specs in header["cases"].values() for spec in specs)
    inputs = {f"{name}/{number}/{key}" for name, question_cases in cases.items()
              for number, case in enumerate(question_cases) for key, value in case.inputs.items()
              if isinstance(value, (np.ndarray, np.generic, list, tuple))}
    assert set(arrays) == {"notebook"} | inputs


def test_a_task_that_keeps_killing_its_worker_ends_crashed_and_the_others_finish():
    """Dask's own bound (allowed-failures), read as the executor reads it; a small LocalCluster without the grader,
    since no sandboxed notebook can kill its worker."""
    import dask
    from distributed import Client, LocalCluster, wait

    from course.grading.dask_executor import DaskExecutor

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address="127.0.0.1:0") as local, Client(local) as client:
        killer = client.submit(os._exit, 1, pure=False)
        wait([killer])
        healthy = client.submit(sum, [1, 2], pure=False)
        executor = DaskExecutor.__new__(DaskExecutor)
        header, arrays = executor._answer(killer)
        assert header["executor_error"] and arrays == {}
        assert "died 2 times" in header["worker_error"], header
        assert healthy.result(timeout=120) == 3


def test_a_cluster_without_workers_stops_with_a_message_instead_of_waiting_for_ever(monkeypatch, capsys):
    """A scheduler no worker joined: the run says it is waiting, then stops with a message naming the command."""
    from distributed import Client, LocalCluster

    from course.errors import CourseError
    from course.grading import dask_executor

    monkeypatch.setattr(dask_executor, "WORKERS_SECONDS", 1.0)
    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0") as empty, \
            Client(empty) as client:
        executor = dask_executor.DaskExecutor.__new__(dask_executor.DaskExecutor)
        executor.client = client
        with pytest.raises(CourseError, match="no Dask worker joined the scheduler at tcp://127.0.0.1:.* within 1 s"):
            next(executor.run([]))
    assert "No Dask worker has joined" in capsys.readouterr().err
