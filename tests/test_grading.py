"""The grader end to end: a generated class of honest students and attackers, graded by the real command.

One class is graded once (module fixture), with the instructor's own secret (found through XDG_CONFIG_HOME), and
every attack is checked against the score it must get; then the same class is graded again into a fresh folder with
one worker, killed half-way and resumed, and must give byte-identical CSVs and feedback pages.
"""
from __future__ import annotations

import csv
import html
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

sys.path.insert(0, str(Path(__file__).parent / "grading_fixtures"))
import classroom  # noqa: E402

from course.grading import sandbox  # noqa: E402
from course.grading.judging import STATUSES  # noqa: E402

PYTHON = sys.executable
LIMITS = ["--timeout", "60", "--question-timeout", "3", "--cell-timeout", "3", "--memory", "1024", "--no-progress"]
QUESTIONS = ("softmax", "log_softmax", "cross_entropy_from_logits")


def grade(submissions: Path, out: Path, secret: Path | None, workers: int, limits: list[str] = LIMITS,
          config: Path | None = None, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    """The grade command; ``secret`` names the secret's file, ``config`` the configuration folder holding the default
    one (``XDG_CONFIG_HOME``)."""
    command = [PYTHON, "-m", "course", "grade", str(submissions), "--out", str(out), "--workers", str(workers),
               *(["--secret-file", str(secret)] if secret else []), *limits]
    env = dict(os.environ, XDG_CONFIG_HOME=str(config)) if config else None
    if popen:
        return subprocess.Popen(command, cwd=classroom.ROOT, env=env, **popen)
    return subprocess.run(command, cwd=classroom.ROOT, env=env, capture_output=True, text=True, timeout=400)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("class")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    submissions, out, config = base / "submissions", base / "out", base / "config"
    seed = config / "course" / "grading-secret"  # the instructor's own secret, where the grader creates it
    paths = {"seed": str(seed), "out": str(out), "port": listener.getsockname()[1],
             "other": str(submissions / "correct" / f"{classroom.CHAPTER}.ipynb")}
    expected = classroom.write_class(submissions, paths)
    result = grade(submissions, out, None, workers=2, config=config)
    listener.close()
    rows = read_csv(out / "grades.csv")
    totals = {}
    for row in rows:
        totals[row["student"]] = totals.get(row["student"], 0.0) + float(row["points"])
    return {"base": base, "submissions": submissions, "out": out, "seed": seed, "config": config, "result": result,
            "rows": rows,
            "expected": expected, "totals": totals,
            "by": {(r["student"], r["question"]): r for r in rows}}


def test_the_run_finishes_with_exit_0_and_a_summary(graded):
    result = graded["result"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"Graded \d+ students on 01_softmax", result.stdout)
    for name in ("grades.csv", "summary.csv", "report.html"):
        assert (graded["out"] / name).is_file()


def test_every_student_gets_a_row_per_question_and_a_known_status(graded):
    students = set(graded["expected"])
    assert {r["student"] for r in graded["rows"]} == students
    for student in students:
        assert [r["question"] for r in graded["rows"] if r["student"] == student] == list(QUESTIONS)
    assert {r["status"] for r in graded["rows"]} <= set(STATUSES)
    assert all(r["message"] and "\n" not in r["message"] for r in graded["rows"])
    summary = read_csv(graded["out"] / "summary.csv")
    assert [r["student"] for r in summary] == sorted(students)


@pytest.mark.parametrize("student", [name for name, (_, points) in classroom.attacks(
    {"seed": "s", "out": "o", "other": "x", "port": 1}).items() if points is not None] + [
    "empty file", "truncated", "not json", "json list", "no cells", "enormous notebook", "misnamed and nested",
    "José Ñúñez 李", "nothing handed in", "linked notebook", "linked folder"])
def test_each_submission_gets_exactly_its_score(graded, student):
    assert graded["totals"][student] == pytest.approx(graded["expected"][student]), \
        [(r["question"], r["status"], r["message"]) for r in graded["rows"] if r["student"] == student]


@pytest.mark.parametrize("student, question, status, words", [
    ("stub", "softmax", "not-attempted", "NotImplementedError"),
    ("no cells", "softmax", "not-attempted", "not defined"),
    ("infinite loop in function", "softmax", "timeout", "timed out after 3 s"),
    ("os exit in function", "softmax", "crashed", "ended"),
    ("memory bomb in function", "softmax", "memory", "memory"),
    ("enormous output", "softmax", "error", "too large"),
    ("always equal object", "softmax", "failed", "shape"),
    ("read hidden things", "softmax", "error", "AssertionError"),
    ("empty file", "softmax", "unreadable", "empty"),
    ("truncated", "log_softmax", "unreadable", "JSON"),
    ("enormous notebook", "softmax", "unreadable", "limit"),
    ("json list", "softmax", "unreadable", "not a notebook"),
    ("nothing handed in", "softmax", "missing", "no 01_softmax.ipynb"),
    ("linked notebook", "softmax", "unreadable", "symbolic link"),
    ("linked folder", "softmax", "unreadable", "symbolic link"),
    ("wrong softmax", "softmax", "failed", "subtract each row's maximum"),
])
def test_status_and_message_say_what_happened(graded, student, question, status, words):
    row = graded["by"][(student, question)]
    assert row["status"] == status and words.lower() in row["message"].lower(), row


def test_partial_work_gets_partial_credit(graded):
    by = graded["by"]
    assert float(by[("partial", "softmax")]["points"]) == 3
    assert 0 < float(by[("partial", "log_softmax")]["points"]) < 3
    assert by[("partial", "log_softmax")]["status"] == "failed"
    assert by[("partial", "cross_entropy_from_logits")]["status"] == "not-attempted"
    assert 7 < graded["totals"]["wrong softmax"] < 10


def test_a_hang_or_crash_in_one_cell_costs_only_that_cell(graded):
    for student in ("infinite loop cell", "os exit cell", "sys exit cell", "memory bomb cell"):
        assert all(graded["by"][(student, q)]["status"] == "passed" for q in QUESTIONS), student
    text = (graded["out"] / "feedback" / "infinite loop cell" / "01_softmax.html").read_text()
    assert "timed out" in text and "re-run without it" in text


def test_nothing_outside_the_sandbox_was_written(graded):
    out = graded["out"]
    assert not (out / "pwned.txt").exists()
    assert "pwned" not in (out / "grades.csv").read_text()
    for path in ["/etc/pwned", "/root/pwned", "/tmp/grader-test-pwned", str(classroom.ROOT / "course" / "pwned.py"),
                 str(graded["submissions"] / "correct" / "01_softmax.ipynb.pwned")]:
        assert not os.path.exists(path), path


def sandbox_processes() -> list[str]:
    """Grading workers, zygotes, helpers and sandboxes of this module's runs still alive.

    A sandbox is a fork of its worker, so its command line is the worker's, which names the checkout and the limits.
    Other test modules grade on the same machine at the same time (pytest-xdist), as root and as another user, with
    sandbox user ids from the same range: only the command line tells this module's processes from theirs, and the
    limits in it are this module's own (no other module grades with 3 s cells and questions).
    """
    ours = (f'"course_root": "{classroom.ROOT}"', '"cell_seconds": 3.0, "question_seconds": 3.0')
    listing = subprocess.run(["ps", "-ww", "-eo", "uid=,pid=,args="], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if "course.grading.worker" in line and all(m in line for m in ours)]


def test_no_sandbox_process_outlives_the_run(graded):
    assert sandbox_processes() == []


def test_isolation_is_full_when_running_as_root(graded):
    if os.geteuid() != 0:
        pytest.skip("not root: namespaces and another user are unavailable (the grader says so in its summary)")
    assert "full isolation" in graded["result"].stdout


def test_feedback_has_hints_and_no_expected_values(graded):
    text = (graded["out"] / "feedback" / "wrong softmax" / "01_softmax.html").read_text()
    assert "Hint:" in text and "subtract each row" in text
    assert not re.search(r"expected\s+[-+]?\d", text)
    assert "BEGIN SOLUTION" not in text and "def " not in text
    unicode_page = graded["out"] / "feedback" / "José Ñúñez 李" / "01_softmax.html"
    assert "10.00 / 10" in unicode_page.read_text()


def test_a_bug_inherited_from_an_earlier_function_is_named_once(graded):
    """'inherits a bug': a right cross-entropy calling a wrong log_softmax. Its feedback says to fix log_softmax,
    not "use log_softmax" (the diagnosis of a cross-entropy that is itself wrong)."""
    by = graded["by"]
    own, inherited = by[("inherits a bug", "log_softmax")], by[("inherits a bug", "cross_entropy_from_logits")]
    assert own["status"] == "failed" and "calls your" not in own["message"], own
    assert inherited["status"] in ("failed", "error"), inherited
    assert inherited["message"].startswith("calls your `log_softmax`, which fails its own check: fix `log_softmax` "
                                           "first"), inherited
    page = (graded["out"] / "feedback" / "inherits a bug" / "01_softmax.html").read_text()
    assert "Hint: This question calls your `log_softmax`" in page and "use log_softmax" not in page
    # a question that calls a passing function ('partial': log_softmax calls its softmax), or none, as usual
    for student, question in [("partial", "log_softmax"), ("wrong softmax", "softmax"),
                              ("wrong softmax", "cross_entropy_from_logits")]:
        assert "calls your" not in by[(student, question)]["message"], (student, question)


def test_an_untouched_question_says_not_attempted_once(graded):
    """Once per question on the page, not once per hidden case."""
    stub = (graded["out"] / "feedback" / "stub" / "01_softmax.html").read_text()
    assert stub.count("not attempted") == len(QUESTIONS)
    partial = (graded["out"] / "feedback" / "partial" / "01_softmax.html").read_text()
    assert partial.count("not attempted") == 1
    assert graded["by"][("stub", "softmax")]["message"].count("not attempted") == 1


def test_report_has_the_plots_and_the_lists(graded):
    text = (graded["out"] / "report.html").read_text()
    assert text.count("data:image/png;base64,") == 2  # the notebook's scores; time and memory
    for heading in ("Crashed", "Timed out or out of memory", "Unreadable or missing", "Flagged for a look"):
        assert heading in text
    assert "README.txt" in text and "misnamed and nested" in text
    links = re.findall(r"href='(feedback/[^']*)'", text)
    assert len({link for link in links}) == len(graded["expected"])  # one notebook: one page per student
    assert [link for link in links if not (graded["out"] / unquote(html.unescape(link))).is_file()] == []


def test_the_grader_says_what_it_found_before_the_workers_start(graded):
    students = len(graded["expected"])
    lines = graded["result"].stderr.splitlines()
    assert lines[0] == f"Found {students} students, 1 notebook: {students} submissions.", lines[:3]
    assert re.match(r"\d+ submissions to run(, [^.]+)?\. Starting 2 sandbox workers", lines[1]), lines[:3]
    assert sum(map(int, re.findall(r"(\d+) (?:submissions to run|identical|missing)", lines[1]))) == students
    assert graded["result"].stdout.startswith("Graded ")  # stdout: the closing paragraph only


def test_a_rerun_comes_from_the_cache_and_regrades_only_what_changed(graded, tmp_path):
    first = (graded["out"] / "grades.csv").read_bytes(), (graded["out"] / "summary.csv").read_bytes()
    # the secret named with --secret-file is the one the first run found by default: everything comes from the cache
    again = grade(graded["submissions"], graded["out"], graded["seed"], workers=2)
    assert again.returncode == 0 and " 0 submissions ran in sandboxes" in again.stdout, again.stdout
    assert ((graded["out"] / "grades.csv").read_bytes(), (graded["out"] / "summary.csv").read_bytes()) == first
    changed = tmp_path / "submissions"
    classroom.copy_class(graded["submissions"], changed)
    (changed / "stub" / "01_softmax.ipynb").write_text(classroom.correct(), encoding="utf-8")
    out = tmp_path / "out"
    classroom.copy_class(graded["out"], out)
    result = grade(changed, out, graded["seed"], workers=2)
    assert " 1 submissions ran in sandboxes" in result.stdout, result.stdout
    assert sum(float(r["points"]) for r in read_csv(out / "grades.csv") if r["student"] == "stub") == 10


def feedback_pages(out: Path) -> dict[str, bytes]:
    return {str(path.relative_to(out)): path.read_bytes() for path in sorted((out / "feedback").rglob("*.html"))}


def test_killed_run_resumes_to_the_same_gradebook_with_another_worker_count(graded, tmp_path):
    """A fresh folder, the same secret (the instructor's, found the same way), one worker instead of two, killed
    half-way and resumed from its cache: the same bytes in grades.csv, summary.csv and every feedback page."""
    out = tmp_path / "out"
    process = grade(graded["submissions"], out, None, workers=1, config=graded["config"], start_new_session=True,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and len(list((out / ".cache").glob("*.json"))) < 8:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "grades.csv").exists(), "killed too late to test resuming"
    time.sleep(1)  # the sandboxes of a killed grader die with it (parent-death signals, PID namespaces)
    assert sandbox_processes() == []
    result = grade(graded["submissions"], out, None, workers=1, config=graded["config"])
    assert result.returncode == 0
    assert (out / "grades.csv").read_bytes() == (graded["out"] / "grades.csv").read_bytes()
    assert (out / "summary.csv").read_bytes() == (graded["out"] / "summary.csv").read_bytes()
    assert feedback_pages(out) == feedback_pages(graded["out"])
    assert not (out / ".grading-seed").exists() and graded["seed"].stat().st_mode & 0o777 == 0o600


def test_identical_files_run_once_and_each_student_keeps_their_own_notes(graded):
    """'misnamed and nested' handed in the same bytes as 'correct' under another name: one job, two notes."""
    out = graded["out"]
    assert "ran in sandboxes" in graded["result"].stdout
    report = (out / "report.html").read_text()
    assert "misnamed and nested · 01_softmax: graded" in report
    assert "correct · 01_softmax: graded" not in report


def test_reduced_isolation_still_grades_and_says_so(tmp_path):
    """The path used when the grader is not root (forced here): limits, timeouts and recovery still work."""
    submissions = tmp_path / "submissions"
    for student, text in [("correct", classroom.correct()),
                          ("exits", classroom.correct(softmax="def softmax(logits, axis=-1):\n    import os\n"
                                                              "    os._exit(1)")),
                          ("loops", classroom.correct(before=("while True:\n    pass",)))]:
        (submissions / student).mkdir(parents=True)
        (submissions / student / "01_softmax.ipynb").write_text(text, encoding="utf-8")
    env = dict(os.environ, **{sandbox.REDUCED_ENV: "1"})
    result = subprocess.run([PYTHON, "-m", "course", "grade", str(submissions), "--out", str(tmp_path / "out"),
                             *LIMITS], cwd=classroom.ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0 and "REDUCED isolation" in result.stdout
    summary = {r["student"]: float(r["total"]) for r in read_csv(tmp_path / "out" / "summary.csv")}
    assert summary == {"correct": 10, "exits": 7, "loops": 10}
    assert sandbox_processes() == []


def test_every_chapter_solution_gets_full_marks_and_every_exercise_none(every_chapter_graded):
    """Whatever a chapter's questions are (functions, classes, training loops), the grader runs them: the committed
    solution earns every point and the untouched exercise none (a lazy import the sandbox cannot reach, or a
    probe that needs something the sandbox lacks, shows up here). The run is the session's shared one
    (tests/every_chapter.py), with generous limits: some probes train a small Keras model several times, and on a
    loaded machine a solution must not lose points to a timeout."""
    from every_chapter import CHAPTERS

    result = every_chapter_graded
    assert result.returncode == 0, result.stderr[-2000:]
    expected = {"solution": "passed", "exercise": "not-attempted"}
    rows = [r for r in result.rows if r["student"] in expected]
    wrong = [(r["notebook"], r["question"], r["status"], r["message"]) for r in rows
             if r["status"] != expected[r["student"]]]
    assert wrong == []
    assert {(r["student"], r["notebook"]) for r in rows} == {(s, c) for s in expected for c in CHAPTERS}
