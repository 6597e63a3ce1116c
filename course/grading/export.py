"""``python -m course export canvas|moodle OUT --assignment NAME``: a graded run as the LMS's gradebook import file.

It reads what the run wrote: ``OUT/summary.csv`` (each student's total and the maximum), ``OUT/grades.csv`` (the
per-question lines of Moodle's feedback comment) and ``OUT/identities.json`` (who each folder is, written when the run
had a roster or an LMS layout; :mod:`.lms`). ``--roster`` joins the folders again, for a run graded without one.

**Canvas** (Grades → Import): ``Student, ID, SIS User ID, SIS Login ID, Section, <assignment>``, then a
``Points Possible`` line and one line per student. Canvas finds a student by ``ID`` (its user id) or the SIS ids, and
the assignment by the id in the column's parentheses (``Week 1 (4567)``, from ``--assignment-id``); a name alone
matches an assignment of that name, or creates one. Canvas shows every change for confirmation before it saves.

**Moodle** (the assignment's *offline grading worksheet*, Feedback types → Offline grading worksheet; then View all
submissions → Grading action → Upload grading worksheet): ``Identifier`` (``Participant 123456``), ``Full name``,
``Email address``, ``Grade``, ``Maximum Grade``, ``Last modified (grade)`` and ``Feedback comments``. Moodle needs the
identifier, the grade and the last-modified columns; it skips a grade that was changed in Moodle after the time in
the file (the time of the export), unless told to overwrite.

Students with no LMS id (no roster row, or a Moodle roster without identifiers) cannot be imported: they are left
out with a warning naming them.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import CourseError
from . import lms, roster, text
from .cache import write_atomic
from .gradebook import BOM, _csv
from .people import Identity

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_COLUMNS = ("Identifier", "Full name", "Email address", "Grade", "Maximum Grade", "Last modified (grade)",
                  "Feedback comments")


@dataclass
class Written:
    """What an export wrote, and whom it had to leave out."""

    path: Path
    rows: int
    warnings: list[str] = field(default_factory=list)


def _read_csv(path: Path) -> list[dict]:
    if not path.exists():
        raise CourseError(f"{text.name(path)}: missing; export reads the folder a grading run wrote (its --out)")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _unescaped(cell: str) -> str:
    """A student cell as the grader named the student (the CSV writer prefixes a formula-like name with ')."""
    return cell[1:] if cell.startswith("'") and cell[1:2] in ("=", "+", "-", "@", "\t", "\r") else cell


def _identities(out: Path, roster_path: Path | None, students: list[str]) -> dict[str, Identity]:
    known = lms.read_identities(out)
    if roster_path is None:
        return known
    entries = roster.read(roster_path)
    joined = {}
    for student in students:
        found = roster.match(student, known.get(student, Identity()).lms_id, entries)
        if len(found) == 1:
            joined[student] = found[0].identity
    return joined


def _feedback(student: str, rows: list[dict], late: dict[tuple[str, str], dict]) -> str:
    """One line per notebook: points, each question's status, and any late penalty. No expected values."""
    lines = []
    for notebook in sorted({r["notebook"] for r in rows}):
        mine = [r for r in rows if r["notebook"] == notebook]
        raw = sum(float(r.get("raw_points") or r["points"]) for r in mine)
        final = sum(float(r["points"]) for r in mine)
        maximum = sum(float(r["max_points"]) for r in mine)
        questions = ", ".join(f"{r['question']} {r['status']}" for r in mine)
        line = f"{notebook}: {raw:.2f}/{maximum:g} ({questions})"
        entry = late.get((student, notebook))
        if entry and entry.get("penalty"):
            line += f"; late {entry['days']:g} day(s): -{entry['penalty'] * 100:g}%, {final:.2f}/{maximum:g}"
        lines.append(line)
    return "\n".join(lines)


def _lateness(out: Path) -> dict[tuple[str, str], dict]:
    path = out / lms.IDENTITIES_FILE
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {(e["student"], e["notebook"]): e for e in data.get("lateness", [])}


def _slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "-", name, flags=re.UNICODE).strip("-.")[:80] or "assignment"


def export(kind: str, out: Path, assignment: str, *, assignment_id: str | None = None, roster_path: Path | None = None,
           target: Path | None = None, bom: bool = False, now: datetime | None = None) -> Written:
    """Write the gradebook import file of ``kind`` (canvas or moodle) for the run in ``out``."""
    if kind not in ("canvas", "moodle"):
        raise CourseError(f"unknown LMS {text.clean(kind)!r}: canvas or moodle")
    if not assignment.strip():
        raise CourseError("--assignment needs the assignment's name")
    summary = _read_csv(out / "summary.csv")
    grades = _read_csv(out / "grades.csv") if kind == "moodle" else []
    students = [_unescaped(r["student"]) for r in summary]
    identities = _identities(out, roster_path, students)
    if not identities:
        raise CourseError(f"{text.name(out)}: no student identities (the run had no --roster and no Canvas or Moodle "
                          f"layout); give --roster ROSTER.csv to export")
    target = target or out / f"{kind}-{_slug(assignment)}.csv"
    warnings, rows = [], []
    late = _lateness(out)
    by_student: dict[str, list[dict]] = {}
    for row in grades:
        by_student.setdefault(_unescaped(row["student"]), []).append(row)
    maximum = summary[0]["max_total"] if summary else "0"
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S%z")
    for row, student in zip(summary, students):
        who = identities.get(student)
        if kind == "canvas":
            if who is None or not (who.lms_id or who.sis_id or who.login):
                warnings.append(f"{student}: no Canvas ID, SIS User ID or SIS Login ID; left out")
                continue
            rows.append([who.name or student, who.lms_id, who.sis_id, who.login, who.section, row["total"]])
        else:
            if who is None or not who.lms_id:
                warnings.append(f"{student}: no Moodle participant id; left out")
                continue
            rows.append([f"Participant {who.lms_id}", who.name or student, who.login, row["total"], maximum, stamp,
                         _feedback(student, by_student.get(student, []), late)])
    if kind == "canvas":
        column = f"{assignment} ({assignment_id})" if assignment_id else assignment
        content = _csv([[*CANVAS_COLUMNS, column], ["    Points Possible", "", "", "", "", maximum], *rows])
    else:
        content = _csv([list(MOODLE_COLUMNS), *rows])
    write_atomic(target, (BOM if bom else "") + content)
    return Written(target, len(rows), warnings)


def parse(content: str) -> list[dict]:
    """An export's rows read back (for tests and checks): header names to cells."""
    return list(csv.DictReader(io.StringIO(content.lstrip(BOM), newline="")))
