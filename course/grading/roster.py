"""``--roster FILE``: who the students are in the LMS, and which submission folder is whose.

A roster is a CSV file (UTF-8, with or without a byte-order mark) with a header row. Its columns are found by name,
case and spaces ignored, so a Canvas gradebook export or a Moodle grading worksheet can be given as it is:

============  =========================================================================================
field         header names accepted
============  =========================================================================================
name          ``name``, ``student``, ``student name``, ``full name``
login         ``login``, ``email``, ``email address``, ``e-mail``, ``username``, ``sis login id``, ``login id``
section       ``section``, ``sections``, ``group``
lms_id        ``lms id``, ``id``, ``user id``, ``canvas id``, ``participant id``, ``identifier`` (Moodle's
              ``Participant 123456`` is read as ``123456``)
sis_id        ``sis id``, ``sis user id``, ``student id``, ``student number``, ``id number``
folder        ``folder``, ``submission folder``: the student's folder in a plain layout
============  =========================================================================================

Other columns are ignored, as are blank rows and Canvas's ``Points Possible`` row. At least one of name, login,
lms_id and folder is needed. A row with more cells than the header, a row with none of those fields, and two rows
with the same LMS id are refused with the line's number.

:func:`match` joins a submission folder to a roster entry: by LMS id when the layout gave one (Canvas user id,
Moodle participant id), else by the ``folder`` column, the login (or the part of an e-mail before ``@``), the
LMS or SIS id, and last the name, each compared without case. A roster without LMS ids is matched to a download on
the name the LMS wrote.
"""
from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import CourseError
from . import text
from .people import Identity

#: Largest roster read (a roster of 10 000 students is well below a megabyte).
MAX_ROSTER_BYTES = 16 * 1024 * 1024

ALIASES = {
    "name": ("name", "student", "student name", "full name"),
    "login": ("login", "email", "email address", "e-mail", "e-mail address", "username", "sis login id", "login id"),
    "section": ("section", "sections", "group"),
    "lms_id": ("lms id", "id", "user id", "canvas id", "canvas user id", "participant id", "identifier"),
    "sis_id": ("sis id", "sis user id", "student id", "student number", "id number"),
    "folder": ("folder", "submission folder"),
}


@dataclass(frozen=True)
class Entry:
    """One roster row: the LMS identity and, optionally, the plain layout's folder name."""

    identity: Identity
    folder: str = ""
    line: int = 0

    @property
    def key(self) -> str:
        """The name a student with no submission is listed under."""
        i = self.identity
        return self.folder or i.name or i.login or i.lms_id or i.sis_id


def _header_key(cell: str) -> str:
    return " ".join(cell.replace("_", " ").strip().lower().split())


def _fold(value: str) -> str:
    return unicodedata.normalize("NFC", value).casefold().strip()


def read(path: Path) -> list[Entry]:
    """The roster's entries, in the file's order."""
    return parse(read_csv_text(path, "roster"), text.name(path))


def read_csv_text(path: Path, what: str) -> str:
    """The text of a CSV file the instructor gives (a roster, submission times): at most
    :data:`MAX_ROSTER_BYTES`, UTF-8 with or without a byte-order mark, or a CourseError naming the file and line."""
    shown = text.name(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_ROSTER_BYTES + 1)
    except OSError as exc:
        raise CourseError(f"{shown}: cannot read the {what} ({exc.strerror})") from None
    if len(raw) > MAX_ROSTER_BYTES:
        raise CourseError(f"{shown}: over {MAX_ROSTER_BYTES // 1024**2} MB, not a {what}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CourseError(f"{shown}, line {line}: not UTF-8 text; save the {what} as CSV UTF-8") from None


def parse(content: str, shown: str = "roster") -> list[Entry]:
    """Entries from the roster's text (see the module's docstring for the columns)."""
    content = content[1:] if content.startswith("\ufeff") else content
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CourseError(f"{shown}, line 1: not CSV ({exc})") from None
    if not header:
        raise CourseError(f"{shown}: empty roster (the first line must name the columns)")
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        key = _header_key(cell)
        for field_name, names in ALIASES.items():
            if key in names and field_name not in columns:
                columns[field_name] = index
    if not {"name", "login", "lms_id", "folder"} & set(columns):
        raise CourseError(f"{shown}, line 1: no column names a student; give at least one of name, login (or email), "
                          f"lms id (or id) or folder")
    entries: list[Entry] = []
    seen_ids: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                raise CourseError(f"{shown}, line {line}: {len(row)} cells, but the header names {len(header)} "
                                  f"columns (a comma in a name needs quotes)")
            values = {f: text.clean(row[i]).strip() if i < len(row) else "" for f, i in columns.items()}
            if values.get("name", "").strip().lower() == "points possible":
                continue  # Canvas's export carries the assignments' maxima on its second line
            lms_id = values.get("lms_id", "")
            if lms_id.lower().startswith("participant"):
                lms_id = lms_id[len("participant"):].strip()
            identity = Identity(name=values.get("name", ""), login=values.get("login", ""),
                                section=values.get("section", ""), lms_id=lms_id, sis_id=values.get("sis_id", ""))
            entry = Entry(identity, values.get("folder", ""), line)
            if not entry.key or not (identity.name or identity.login or lms_id or entry.folder):
                raise CourseError(f"{shown}, line {line}: no name, login, id or folder for this student")
            if lms_id:
                if lms_id in seen_ids:
                    raise CourseError(f"{shown}, line {line}: LMS id {lms_id} is already on line {seen_ids[lms_id]}")
                seen_ids[lms_id] = line
            entries.append(entry)
    except csv.Error as exc:
        raise CourseError(f"{shown}, line {reader.line_num}: not CSV ({exc})") from None
    return entries


def _compact(value: str) -> str:
    """A name as Canvas writes it in a file name: letters and digits only, lower case (``Smith, John`` → smithjohn)."""
    return "".join(c for c in _fold(value) if c.isalnum())


def match(folder: str, lms_id: str, entries: list[Entry], lms_name: str = "") -> list[Entry]:
    """The roster entries a submission folder could be, best rule first; one entry means a clear match.

    ``lms_id`` and ``lms_name`` come from a Canvas or Moodle download. When the roster has LMS ids, the id decides;
    a roster without any is matched on the name the LMS wrote (``smithjohn`` is ``Smith, John``).
    """
    if lms_id:
        found = [e for e in entries if e.identity.lms_id == lms_id]
        if found or any(e.identity.lms_id for e in entries):
            return found
        wanted = _compact(lms_name)
        return [e for e in entries if wanted and e.identity.name and _compact(e.identity.name) == wanted]
    wanted = _fold(folder)
    rules = (
        lambda e: e.folder and _fold(e.folder) == wanted,
        lambda e: e.identity.login and (_fold(e.identity.login) == wanted or
                                        _fold(e.identity.login.split("@")[0]) == wanted),
        lambda e: e.identity.lms_id and _fold(e.identity.lms_id) == wanted,
        lambda e: e.identity.sis_id and _fold(e.identity.sis_id) == wanted,
        lambda e: e.identity.name and _fold(e.identity.name) == wanted,
    )
    for rule in rules:
        found = [e for e in entries if rule(e)]
        if found:
            return found
    return []
