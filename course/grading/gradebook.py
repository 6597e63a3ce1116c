"""grades.csv and summary.csv: canonical (sorted rows, fixed number format, '\\n' endings) and written atomically,
so the same folder graded twice, with any number of workers, gives byte-identical files.

Every cell goes through :func:`course.grading.text.csv_cell`: a student folder named ``=HYPERLINK(...)`` is shown as
text by a spreadsheet, never run as a formula.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from .cache import write_atomic
from .judging import QuestionGrade
from .text import csv_cell

GRADE_COLUMNS = ("student", "notebook", "question", "points", "max_points", "status", "message")


def _points(value: float) -> str:
    return f"{value:.2f}"


def _csv(rows: list[list[str]]) -> str:
    """The one place where CSV text is made: every cell made safe for a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([[csv_cell(cell) for cell in row] for row in rows])
    return buffer.getvalue()


def grades_csv(grades: list[QuestionGrade], question_order: dict[tuple[str, str], int]) -> str:
    """One row per student, notebook and question (questions in the chapter's order)."""
    ordered = sorted(grades, key=lambda g: (g.student, g.notebook, question_order.get((g.notebook, g.question), 0)))
    rows = [list(GRADE_COLUMNS)] + [
        [g.student, g.notebook, g.question, _points(g.points), str(g.max_points), g.status, g.message]
        for g in ordered]
    return _csv(rows)


def totals(grades: list[QuestionGrade]) -> tuple[list[str], dict[str, dict[str, float]], dict[str, int]]:
    """Notebook names, each student's points per notebook, and each notebook's maximum."""
    notebooks = sorted({g.notebook for g in grades})
    per_student: dict[str, dict[str, float]] = {}
    maxima: dict[str, int] = {}
    for g in grades:
        per_student.setdefault(g.student, {}).setdefault(g.notebook, 0.0)
        per_student[g.student][g.notebook] += g.points
    for notebook in notebooks:
        seen = {}
        for g in grades:
            if g.notebook == notebook:
                seen[g.question] = g.max_points
        maxima[notebook] = sum(seen.values())
    return notebooks, per_student, maxima


def summary_csv(grades: list[QuestionGrade], worth: dict[str, float] | None = None) -> str:
    """One row per student: points per notebook, the total and the maximum.

    ``worth`` (from an assignment file) rescales a notebook's points to what the instructor says it is worth.
    """
    notebooks, per_student, maxima = totals(grades)
    worth = worth or {}
    scale = {nb: (worth[nb] / maxima[nb] if nb in worth and maxima[nb] else 1.0) for nb in notebooks}
    rows = [["student", *notebooks, "total", "max_total"]]
    maximum = sum(maxima[nb] * scale[nb] for nb in notebooks)
    for student in sorted(per_student):
        scores = [per_student[student].get(nb, 0.0) * scale[nb] for nb in notebooks]
        rows.append([student, *map(_points, scores), _points(sum(scores)), f"{maximum:g}"])
    return _csv(rows)


def write(out: Path, grades: list[QuestionGrade], question_order: dict[tuple[str, str], int],
          worth: dict[str, float] | None = None) -> None:
    """Write both CSV files atomically."""
    write_atomic(out / "grades.csv", grades_csv(grades, question_order))
    write_atomic(out / "summary.csv", summary_csv(grades, worth))
