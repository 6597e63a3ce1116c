"""Every chapter's solution, untouched exercise and a partly solved notebook, graded ONCE per test session.

Two modules need the grader's verdict on these notebooks (tests/test_grading.py: every solution passes and every
exercise gets nothing; tests/test_student_check.py: ``course check`` says what the grader says). One run of the
real command serves both: a grader run costs every worker's TensorFlow + PyTorch import plus the notebooks' own
run, about a minute of a 2-core machine, and the exercises would otherwise be graded twice. Use the session
fixture ``every_chapter_graded`` (tests/conftest.py) rather than grading these notebooks again.

Under pytest-xdist the modules run in different worker processes, so the run is shared the way pytest-xdist
documents: a folder under the session's common temporary directory, made by whichever worker comes first while it
holds a file lock; the others wait for the lock and read the result.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from filelock import FileLock

from course.chapters import all_chapters
from course.notebooks import BEGIN, ROOT, exercise_path, solution_path, strip_solution

#: Chapters with both notebooks committed (a chapter being written may have neither yet).
CHAPTERS = [c for c in all_chapters() if solution_path(c).is_file() and exercise_path(c).is_file()]
#: One student folder per kind of notebook.
KINDS = ("solution", "exercise", "partial")
#: Time limits far above what any of these notebooks needs, so that a busy machine cannot turn a verdict into a
#: timeout (the limits themselves are tested on purpose-made submissions, tests/test_grading.py).
LIMITS = ["--timeout", "900", "--question-timeout", "300", "--cell-timeout", "300"]
GRADE_OPTIONS = ["--workers", "2", "--no-progress", *LIMITS]


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
    """``root/<kind>/<chapter>.ipynb`` for every kind and chapter."""
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


@dataclass
class Graded:
    """The shared run: the command's exit code and output, and grades.csv as rows."""

    returncode: int
    stdout: str
    stderr: str
    rows: list[dict]
    out: Path

    def statuses(self) -> dict[tuple[str, str], dict[str, str]]:
        """{(kind, chapter): {question: status}}."""
        found: dict = {}
        for row in self.rows:
            found.setdefault((row["student"], row["notebook"]), {})[row["question"]] = row["status"]
        return found


def _grade(folder: Path) -> dict:
    write_class(folder / "submissions")
    result = subprocess.run([sys.executable, "-m", "course", "grade", str(folder / "submissions"), "--out",
                             str(folder / "out"), "--seed-file", str(folder / "seed"), *GRADE_OPTIONS],
                            cwd=ROOT, capture_output=True, text=True, timeout=1800)
    grades = folder / "out" / "grades.csv"
    rows = []
    if grades.is_file():
        with open(grades, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    return {"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr, "rows": rows}


def graded_once(tmp_path_factory) -> Graded:
    """The session's one run, made here if no other xdist worker has made it yet."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # common to this session's workers (each has its own basetemp below it)
    folder = base / "every-chapter-graded"
    done = folder / "result.json"
    with FileLock(str(folder) + ".lock"):
        if not done.is_file():
            if folder.exists():  # a worker that died half-way left it: start again
                shutil.rmtree(folder)
            folder.mkdir()
            result = _grade(folder)
            done.write_text(json.dumps(result), encoding="utf-8")
        result = json.loads(done.read_text(encoding="utf-8"))
    return Graded(out=folder / "out", **result)
