"""grades.csv and summary.csv: canonical (sorted rows, fixed number format, '\\n' endings) and written atomically,
so the same folder graded twice, with any number of workers, gives byte-identical files.

When the run has a late policy (``lateness``, from :mod:`.lateness`), ``points`` and ``total`` are the points after
the penalty, and columns are added at the end, so a reader that looks columns up by name reads the same file:
grades.csv gets ``raw_points, late_days, late_penalty`` (the fraction taken off), summary.csv ``raw_total,
late_penalty`` (the points taken off). A run without one writes exactly the columns it always did.

``bom`` starts each file with a UTF-8 byte-order mark, which Excel needs to show non-ASCII names.

Every cell goes through :func:`course.grading.text.csv_cell`: a student folder named ``=HYPERLINK(...)`` is shown as
text by a spreadsheet, never run as a formula.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from .cache import write_atomic
from .judging import QuestionGrade
from .people import Lateness
from .text import csv_cell

GRADE_COLUMNS = ("student", "notebook", "question", "points", "max_points", "status", "message")
LATE_GRADE_COLUMNS = ("raw_points", "late_days", "late_penalty")
LATE_SUMMARY_COLUMNS = ("raw_total", "late_penalty")
BOM = "\ufeff"


def _points(value: float) -> str:
    return f"{value:.2f}"


def _csv(rows: list[list[str]]) -> str:
    """The one place where CSV text is made: every cell made safe for a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([[csv_cell(cell) for cell in row] for row in rows])
    return buffer.getvalue()


def _penalty(lateness: dict[tuple[str, str], Lateness] | None, student: str, notebook: str) -> float:
    late = (lateness or {}).get((student, notebook))
    return late.penalty if late else 0.0


def grades_csv(grades: list[QuestionGrade], question_order: dict[tuple[str, str], int],
               lateness: dict[tuple[str, str], Lateness] | None = None) -> str:
    """One row per student, notebook and question (questions in the chapter's order)."""
    ordered = sorted(grades, key=lambda g: (g.student, g.notebook, question_order.get((g.notebook, g.question), 0)))
    if not lateness:
        rows = [list(GRADE_COLUMNS)] + [
            [g.student, g.notebook, g.question, _points(g.points), str(g.max_points), g.status, g.message]
            for g in ordered]
        return _csv(rows)
    rows = [[*GRADE_COLUMNS, *LATE_GRADE_COLUMNS]]
    for g in ordered:
        late = lateness.get((g.student, g.notebook))
        penalty = late.penalty if late else 0.0
        rows.append([g.student, g.notebook, g.question, _points(g.points * (1 - penalty)), str(g.max_points),
                     g.status, g.message, _points(g.points), f"{late.days:g}" if late else "", _points(penalty)])
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


def summary_csv(grades: list[QuestionGrade], worth: dict[str, float] | None = None,
                lateness: dict[tuple[str, str], Lateness] | None = None) -> str:
    """One row per student: points per notebook, the total and the maximum (after any late penalty).

    ``worth`` (from an assignment file) rescales a notebook's points to what the instructor says it is worth.
    """
    notebooks, per_student, maxima = totals(grades)
    worth = worth or {}
    scale = {nb: (worth[nb] / maxima[nb] if nb in worth and maxima[nb] else 1.0) for nb in notebooks}
    rows = [["student", *notebooks, "total", "max_total", *(LATE_SUMMARY_COLUMNS if lateness else ())]]
    maximum = sum(maxima[nb] * scale[nb] for nb in notebooks)
    for student in sorted(per_student):
        raw = [per_student[student].get(nb, 0.0) * scale[nb] for nb in notebooks]
        scores = [r * (1 - _penalty(lateness, student, nb)) for r, nb in zip(raw, notebooks)]
        late = [_points(sum(raw)), _points(sum(raw) - sum(scores))] if lateness else []
        rows.append([student, *map(_points, scores), _points(sum(scores)), f"{maximum:g}", *late])
    return _csv(rows)


def write(out: Path, grades: list[QuestionGrade], question_order: dict[tuple[str, str], int],
          worth: dict[str, float] | None = None, lateness: dict[tuple[str, str], Lateness] | None = None,
          bom: bool = False) -> None:
    """Write both CSV files atomically (with a byte-order mark if ``bom``)."""
    start = BOM if bom else ""
    write_atomic(out / "grades.csv", start + grades_csv(grades, question_order, lateness))
    write_atomic(out / "summary.csv", start + summary_csv(grades, worth, lateness))
