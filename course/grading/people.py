"""Who a submission folder is in the LMS, and what lateness costs: what the roster and the LMS imports add to a run.

Both are plain records so that the gradebook, the report and the exports read the same facts. A run of a plain folder
without a roster or a late policy has none of them, and every output looks as it did before; a Canvas or Moodle
download gives each student the LMS id (and name) from its file names even without a roster.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """A student as the LMS knows them (from ``--roster``); every field may be empty."""

    name: str = ""
    login: str = ""       # LMS login, SIS login or e-mail
    section: str = ""
    lms_id: str = ""      # Canvas user id / Moodle participant id
    sis_id: str = ""


@dataclass(frozen=True)
class Lateness:
    """How late one (student, notebook) was handed in, and the fraction of its points that costs."""

    days: float           # whole or part days after the due date (0 when on time)
    penalty: float        # fraction of the raw points taken away, 0..1
    source: str           # where the lateness came from: "canvas _LATE_ mark", "file time", ...
