"""``course check`` says per question what the grader says: on the solution, the untouched exercise and a partly
solved notebook of every chapter. One grader run and one check run for the whole module; both with generous
time limits, so that a busy machine cannot make them disagree (the limits themselves are the grader's business).

The grader runs the exercises and the partial notebooks here; its verdict on every solution (all passed) is
already established by tests/test_grading.py, which grades each committed solution, so the solutions, the
slowest notebooks, are not graded twice."""
from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course.chapters import all_chapters
from course.notebooks import BEGIN, ROOT, exercise_path, solution_path, strip_solution

CHAPTERS = [c for c in all_chapters() if solution_path(c).is_file() and exercise_path(c).is_file()]
KINDS = ("solution", "exercise", "partial")
#: Far above what any notebook needs, for both runs.
LIMITS = ["--timeout", "900", "--question-timeout", "300", "--cell-timeout", "300"]
LINE = re.compile(r"^\[(PASS|FAIL|TODO)\] (\w+): ([\w-]+)")


def partial(chapter_id: str) -> str:
    """The solution with only its first solved block kept: one question done, the others still stubs."""
    nb = nbformat.read(solution_path(chapter_id), as_version=4)
    kept = False
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if BEGIN in cell.source:
                if kept:
                    cell.source = strip_solution(cell.source, f"cell {index}")
                kept = True
    return nbformat.writes(nb)


def write_class(root: Path, kinds=KINDS) -> None:
    for kind in kinds:
        folder = root / kind
        folder.mkdir(parents=True)
        for chapter_id in CHAPTERS:
            target = folder / f"{chapter_id}.ipynb"
            if kind == "partial":
                target.write_text(partial(chapter_id), encoding="utf-8")
            else:
                path = solution_path(chapter_id) if kind == "solution" else exercise_path(chapter_id)
                target.write_bytes(path.read_bytes())


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
def both(tmp_path_factory):
    base = tmp_path_factory.mktemp("agreement")
    write_class(base / "submissions", ("exercise", "partial"))
    write_class(base / "solutions", ("solution",))
    renamed = base / "renamed" / "schedules final.ipynb"  # the grader would not find it
    renamed.parent.mkdir()
    renamed.write_bytes(solution_path("04_schedules").read_bytes())
    before = {p: p.read_bytes() for p in base.rglob("*.ipynb")}
    graded = subprocess.run([sys.executable, "-m", "course", "grade", str(base / "submissions"), "--out",
                             str(base / "out"), "--workers", "2", "--no-progress", *LIMITS], cwd=ROOT,
                            capture_output=True, text=True, timeout=1800)
    assert graded.returncode == 0, graded.stderr[-2000:]
    grader: dict = {}
    with open(base / "out" / "grades.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            grader.setdefault((row["student"], row["notebook"]), {})[row["question"]] = row["status"]
    for chapter_id in CHAPTERS:  # as tests/test_grading.py establishes for every committed solution
        grader[("solution", chapter_id)] = {q.name: "passed" for q in all_chapters()[chapter_id].questions}
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
    good = tmp_path / "04_schedules.ipynb"
    good.write_bytes(solution_path("04_schedules").read_bytes())
    result = subprocess.run([sys.executable, "-m", "course", "check", *LIMITS, str(good)], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("Ready to hand in.")
