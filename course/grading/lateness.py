"""Late work: how late each notebook came in, and what the course's late policy takes off for it.

Where lateness comes from, best first:

1. ``--submitted-at FILE``: a CSV with ``student``, ``submitted_at`` (ISO 8601) and optionally ``notebook``;
   compared with ``--due``. The only source of real times.
2. Canvas's ``_LATE_`` mark in a file name. Canvas judged it against its own due date, but the name carries no time,
   so a marked notebook counts as **one started day late**.
3. Nothing else. Moodle's download carries no times, and the times of files in a folder are those of the unzip or
   the copy, not of the submission: they are never used.

The policy: ``--late-penalty 10%`` takes 10 % of a notebook's points per *started* day (a minute late is one day,
a day and a minute two), up to ``--late-cap`` (default 100 %). Without ``--late-penalty`` lateness is shown, and costs
nothing.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import CourseError
from . import text
from .people import Lateness
from .roster import read_csv_text

CANVAS_MARK = "Canvas _LATE_ mark (no time in the name: counted as one day)"


@dataclass(frozen=True)
class Policy:
    """The instructor's late policy (all optional)."""

    due: datetime | None = None
    per_day: float = 0.0          # fraction of the points per started day
    cap: float = 1.0              # largest fraction taken
    submitted_at: Path | None = None

    @property
    def active(self) -> bool:
        return self.due is not None or self.per_day > 0 or self.submitted_at is not None

    def lateness(self, days: float, source: str) -> Lateness:
        """What being ``days`` late costs under this policy."""
        started = math.ceil(days - 1e-9) if days > 0 else 0
        return Lateness(days=round(days, 4), penalty=min(self.cap, self.per_day * started), source=source)


def parse_fraction(value: str) -> float:
    """``"10%"`` or ``"10"`` (percent) as 0.10; refuses what is not a percentage from 0 to 100."""
    cleaned = value.strip().rstrip("%").strip()
    try:
        number = float(cleaned)
    except ValueError:
        raise ValueError(f"{value!r} is not a percentage such as 10%") from None
    if not 0 <= number <= 100 or math.isnan(number):
        raise ValueError(f"{value!r} must be between 0% and 100%")
    return number / 100


def parse_time(value: str) -> datetime:
    """An ISO 8601 date and time (``2026-12-01T23:59``, ``...+01:00``, ``...Z``); a bare date means its end."""
    cleaned = value.strip()
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"{value!r} is not a date and time such as 2026-12-01T23:59+01:00") from None
    if len(cleaned) == 10:  # a bare date: due at the end of that day
        moment = moment.replace(hour=23, minute=59, second=59)
    return moment


def _comparable(moment: datetime) -> datetime:
    """Times without an offset are taken as UTC when compared with times that have one."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def days_late(submitted: datetime, due: datetime) -> float:
    """Days (with fractions) after the due date; 0 when on time."""
    if (submitted.tzinfo is None) != (due.tzinfo is None):
        submitted, due = _comparable(submitted), _comparable(due)
    return max(0.0, (submitted - due).total_seconds() / 86400)


def read_submitted_at(path: Path) -> list[tuple[str, str, datetime, int]]:
    """The rows of a ``--submitted-at`` file: (student, notebook or "", time, line)."""
    shown = text.name(path)
    content = read_csv_text(path, "file of submission times")
    reader = csv.DictReader(io.StringIO(content, newline=""))
    fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
    if "student" not in fields or "submitted_at" not in fields:
        raise CourseError(f"{shown}, line 1: needs the columns student and submitted_at (and optionally notebook)")
    rows = []
    try:
        for row in reader:
            student = (row.get(fields["student"]) or "").strip()
            if not student:
                continue
            try:
                moment = parse_time(row.get(fields["submitted_at"]) or "")
            except ValueError as exc:
                raise CourseError(f"{shown}, line {reader.line_num}: {exc}") from None
            notebook = (row.get(fields["notebook"]) or "").strip() if "notebook" in fields else ""
            rows.append((student, notebook, moment, reader.line_num))
    except csv.Error as exc:
        raise CourseError(f"{shown}, line {reader.line_num}: not CSV ({exc})") from None
    return rows
