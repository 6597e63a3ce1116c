"""``course check`` says per question what the grader says: on the solution, the untouched exercise and a partly
solved notebook of every chapter. The grader's verdicts come from the session's one grader run of these notebooks
(tests/every_chapter.py, shared with tests/test_grading.py); the check runs once for the whole module. Both with
the same generous time limits, so that a busy machine cannot make them disagree (the limits themselves are the
grader's business)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from every_chapter import CHAPTERS, KINDS, LIMITS, write_class
from course.notebooks import ROOT, solution_path

LINE = re.compile(r"^\[(PASS|FAIL|TODO)\] (\w+): ([\w-]+)")


def parse_check(stdout: str) -> dict[tuple[str, str], dict[str, str]]:
    """{(kind, chapter): {question: grader status}} from the check's report."""
    found, current = {}, None
    for line in stdout.splitlines():
        if " · chapter " in line:
            path = Path(line.split(" · ")[0])
            current = found.setdefault((path.parent.name, path.stem), {})
        elif (match := LINE.match(line)) and current is not None:
            tag, question, word = match.groups()
            current[question] = {"PASS": "passed", "TODO": "not-attempted"}.get(tag, word)
    return found


@pytest.fixture(scope="module")
def both(tmp_path_factory, every_chapter_graded):
    assert every_chapter_graded.returncode == 0, every_chapter_graded.stderr[-2000:]
    grader = every_chapter_graded.statuses()
    base = tmp_path_factory.mktemp("agreement")
    write_class(base / "notebooks")
    renamed = base / "renamed" / "schedules final.ipynb"  # the grader would not find it
    renamed.parent.mkdir()
    renamed.write_bytes(solution_path("04_schedules").read_bytes())
    before = {p: p.read_bytes() for p in base.rglob("*.ipynb")}
    checked = subprocess.run([sys.executable, "-m", "course", "check", "--workers", "2", *LIMITS,
                              *map(str, sorted(before))], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    found = parse_check(checked.stdout)
    found.pop(("renamed", "schedules final"), None)
    return {"grader": grader, "check": found, "stdout": checked.stdout,
            "returncode": checked.returncode, "stderr": checked.stderr, "before": before}


def test_check_agrees_with_the_grader_on_every_question(both):
    assert both["check"].keys() == both["grader"].keys(), both["stdout"][-3000:] + both["stderr"][-2000:]
    disagree = {key: (both["check"][key], both["grader"][key]) for key in both["grader"]
                if both["check"][key] != both["grader"][key]}
    assert disagree == {}


@pytest.mark.parametrize("chapter_id", CHAPTERS)
def test_the_three_notebooks_get_what_they_deserve(both, chapter_id):
    """So that agreement cannot come from both saying nothing: the solution passes, the exercise is not
    attempted, the partial solution has its first question passed and another not attempted."""
    statuses = {kind: both["check"][(kind, chapter_id)] for kind in KINDS}
    assert set(statuses["solution"].values()) == {"passed"}
    assert set(statuses["exercise"].values()) == {"not-attempted"}
    first, *rest = statuses["partial"].values()
    assert first == "passed" and "not-attempted" in rest


def test_check_exits_1_until_everything_passes_and_never_touches_the_notebooks(both):
    assert both["returncode"] == 1  # the exercises and partial notebooks do not pass
    assert both["stdout"].count("Ready to hand in.") == len(CHAPTERS)  # the solutions, not the renamed one
    assert all(path.read_bytes() == data for path, data in both["before"].items())


def test_a_wrong_file_name_is_a_problem_that_costs_every_point(both):
    assert "PROBLEM: wrong file name: the grader looks for 04_schedules.ipynb" in both["stdout"]


def test_a_passing_notebook_exits_0(tmp_path):
    # the quickest solution to run: this is about the exit code (every solution's verdict is checked above)
    good = tmp_path / "01_softmax.ipynb"
    good.write_bytes(solution_path("01_softmax").read_bytes())
    result = subprocess.run([sys.executable, "-m", "course", "check", *LIMITS, str(good)], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("Ready to hand in.")
