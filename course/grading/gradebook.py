"""grades.csv and summary.csv: canonical (sorted rows, fixed number format, '\\n' endings) and written atomically,
so the same folder graded twice, with any number of workers, gives byte-identical files."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from .cache import write_atomic
from .judging import QuestionGrade

GRADE_COLUMNS = ("student", "notebook", "question", "points", "max_points", "status", "message")


def _points(value: float) -> str:
    return f"{value:.2f}"


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(rows)
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


def summary_csv(grades: list[QuestionGrade]) -> str:
    """One row per student: points per notebook, the total and the maximum."""
    notebooks, per_student, maxima = totals(grades)
    rows = [["student", *notebooks, "total", "max_total"]]
    for student in sorted(per_student):
        scores = [per_student[student].get(nb, 0.0) for nb in notebooks]
        rows.append([student, *map(_points, scores), _points(sum(scores)), str(sum(maxima.values()))])
    return _csv(rows)


def write(out: Path, grades: list[QuestionGrade], question_order: dict[tuple[str, str], int]) -> None:
    """Write both CSV files atomically."""
    write_atomic(out / "grades.csv", grades_csv(grades, question_order))
    write_atomic(out / "summary.csv", summary_csv(grades))
