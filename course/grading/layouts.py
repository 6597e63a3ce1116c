"""Step 0: the folder layouts instructors actually get, turned into the grader's own ``<student>/<NN_topic>.ipynb``.

Three layouts, given as a folder or as a zip file, detected or named with ``--layout``:

``plain``
    ``SUBMISSIONS/<student>/<NN_topic>.ipynb``: the grader's own layout. A folder is graded where it is (nothing is
    copied); a zip holds the same tree (one wrapping folder is allowed).
``canvas``
    Canvas's *Download Submissions* zip: one flat file per student and file,
    ``<name>_<userid>_<submissionid>_<original name>``, e.g. ``smithjohn_12345_67890_01_softmax.ipynb``, with
    ``_LATE_`` after the name for work Canvas marked late (``smithjohn_LATE_12345_67890_01_softmax.ipynb``). Canvas
    appends ``-1``, ``-2`` ... to a file name a student uploaded before (``01_softmax-1.ipynb``): the suffix is
    dropped, and the highest number wins should two copies come in one download.
``moodle``
    Moodle's *Download all submissions*: one folder per participant and submission plugin,
    ``<Full Name>_<participant id>_assignsubmission_file_/`` (``..._onlinetext_/`` holds typed text, ignored), or,
    with "Download submissions in folders" off, flat files
    ``<Full Name>_<participant id>_assignsubmission_file_<name>``.

A Canvas or Moodle submission is copied, notebooks only, into a private temporary folder (mode 700) in the plain
layout, the student folder named ``<name>_<id>`` (``smithjohn_12345``, ``Ada Lovelace_123456``); the LMS id (Canvas
user id, Moodle participant id) is what joins the roster. The temporary folder is removed when grading is done.

Every member of a zip is hostile. The whole zip is refused, with the member's name, when a member's path is absolute,
climbs out with ``..``, or is a symbolic link, when it has more than :data:`MAX_MEMBERS` members or more than
:data:`MAX_TOTAL_BYTES` of notebooks, and when it is not a zip or is damaged. A notebook over the grader's size cap is
that student's ``unreadable`` notebook, not the class's problem. Members are read one by one under their cap (the
sizes a zip declares can lie) and written by this module to paths it builds itself: nothing is extracted by
:mod:`zipfile`, so nothing lands outside the private folder. Files of a folder are read as :mod:`.reading` reads a
notebook (a regular file with one link, never through a symbolic link).

Written here rather than taken from nbgrader's ``zip_collect``: that one extracts whole archives (``extractall``
with no caps) and needs a configured regular expression per LMS.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import CourseError
from . import reading, text

LAYOUTS = ("auto", "plain", "canvas", "moodle")
#: Most members a zip may have (a class of 500 with a dozen files each is far below).
MAX_MEMBERS = 20_000
#: Most bytes of notebooks read from one zip or LMS folder, uncompressed.
MAX_TOTAL_BYTES = 2 * 1024**3
#: Deepest folder read in an LMS folder (Moodle keeps a student's sub-folders).
MAX_DEPTH = 4

CANVAS_FILE = re.compile(r"^(?P<name>[^/]+?)_(?:(?P<late>late)_)?(?P<id>\d+)_(?P<submission>\d+)_(?P<file>[^/]+)$",
                         re.IGNORECASE)
MOODLE_FOLDER = re.compile(r"^(?P<name>.+)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_?$")
MOODLE_FILE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_(?P<file>.+)$")
_RESUBMITTED = re.compile(r"^(?P<stem>.+?)-(?P<number>\d+)(?P<ext>\.ipynb)$", re.IGNORECASE)


@dataclass
class Imported:
    """Submissions in the plain layout, and what the LMS said about them."""

    root: Path                        # the folder to grade (the given one for a plain folder, else a private copy)
    layout: str                       # plain, canvas or moodle
    lms_ids: dict[str, str] = field(default_factory=dict)        # student folder -> Canvas user / Moodle participant
    names: dict[str, str] = field(default_factory=dict)          # student folder -> the name the LMS gave
    late: set[tuple[str, str]] = field(default_factory=set)      # (student folder, file) the LMS marked late
    unreadable: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # folder -> [(file, why)]
    ignored: list[str] = field(default_factory=list)             # members that are no student's notebook
    notes: dict[str, list[str]] = field(default_factory=dict)    # student folder -> remarks on the import

    def note(self, student: str, remark: str) -> None:
        self.notes.setdefault(student, []).append(remark)


@dataclass(frozen=True)
class _Entry:
    """One file of the input: its path (``/``-separated, relative) and how to read its bytes under the cap."""

    path: str
    read: Callable[[], bytes]


@contextmanager
def imported(submissions: Path, layout: str = "auto") -> Iterator[Imported]:
    """The submissions (a folder or a zip) in the plain layout for as long as the ``with`` lasts."""
    if layout not in LAYOUTS:
        raise CourseError(f"unknown layout {text.clean(layout)!r}: use one of {', '.join(LAYOUTS)}")
    path = Path(submissions)
    if path.is_dir():
        if layout == "plain" or (layout == "auto" and detect(_folder_names(path)) == "plain"):
            yield Imported(path, "plain")
            return
        entries = _folder_entries(path)
    elif path.is_file():
        archive = _open_zip(path)
        try:
            yield from _staged(_zip_entries(path, archive), layout)
        finally:
            archive.close()
        return
    else:
        raise CourseError(f"{text.name(path)}: no such folder or zip file of submissions")
    yield from _staged(entries, layout)


def _staged(entries: list[_Entry], layout: str) -> Iterator[Imported]:
    if layout == "auto":
        layout = detect([e.path for e in entries])
    staging = Path(tempfile.mkdtemp(prefix="course-submissions-"))
    os.chmod(staging, 0o700)
    try:
        result = Imported(staging, layout)
        stage = {"plain": _stage_plain, "canvas": _stage_canvas, "moodle": _stage_moodle}[layout]
        stage(entries, result)
        yield result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def detect(paths: list[str]) -> str:
    """The layout that a list of relative paths (``/``-separated) looks like: moodle, canvas or plain."""
    tops = {PurePosixPath(p).parts[0] for p in paths if p}
    if any(MOODLE_FOLDER.match(t) or MOODLE_FILE.match(t) for t in tops):
        return "moodle"
    flat = [p for p in paths if "/" not in p and p.lower().endswith(".ipynb")]
    if flat and sum(bool(CANVAS_FILE.match(p)) for p in flat) * 2 >= len(flat):
        return "canvas"
    return "plain"


# ---------------------------------------------------------------------------------------------- reading the input

def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CourseError(f"{text.name(path)}: not a folder, and not a readable zip file ({text.clean(exc, 200)})") \
            from None
    return archive


def _zip_entries(path: Path, archive: zipfile.ZipFile) -> list[_Entry]:
    """The zip's files, after refusing the whole zip for a member no LMS would write."""
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise CourseError(f"{text.name(path)}: {len(members)} members, more than the {MAX_MEMBERS} a class's zip may "
                          f"have; refused")
    entries = []
    for info in members:
        name = info.filename.replace("\\", "/")
        shown = text.name(info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise CourseError(f"{text.name(path)}: member '{shown}' is a symbolic link; the zip is refused")
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            raise CourseError(f"{text.name(path)}: member '{shown}' has an absolute path; the zip is refused")
        if ".." in PurePosixPath(name).parts:
            raise CourseError(f"{text.name(path)}: member '{shown}' climbs out of its folder ('..'); the zip is "
                              f"refused")
        if info.is_dir() or name.endswith("/"):
            continue
        if kind not in (0, stat.S_IFREG):
            raise CourseError(f"{text.name(path)}: member '{shown}' is not a regular file; the zip is refused")
        parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
        if parts:
            entries.append(_Entry("/".join(parts), _member_reader(path, archive, info)))
    return entries


def _member_reader(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    cap = reading.MAX_NOTEBOOK_BYTES

    def read() -> bytes:
        if info.file_size > cap:
            raise reading.Unreadable(f"{info.file_size / 1e6:.0f} MB, over the {cap / 1e6:.0f} MB limit")
        try:
            with archive.open(info) as handle:
                data = handle.read(cap + 1)  # the declared size may lie: never read more than the cap
        except RuntimeError as exc:  # encrypted
            raise reading.Unreadable(f"cannot be read from the zip ({text.clean(exc, 100)})") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            raise CourseError(f"{text.name(path)}: damaged zip at member '{text.name(info.filename)}' "
                              f"({text.clean(exc, 200)})") from None
        if len(data) > cap:
            raise reading.Unreadable(f"over the {cap / 1e6:.0f} MB limit")
        return data
    return read


def _folder_names(root: Path) -> list[str]:
    """The top-level names of a folder plus the flat notebooks, enough to tell its layout."""
    return sorted(entry.name for entry in os.scandir(root) if not entry.name.startswith("."))


def _folder_entries(root: Path) -> list[_Entry]:
    """The files of an LMS folder (no link followed, depth and count capped), each read as a notebook is."""
    entries: list[_Entry] = []
    for current, dirs, files in os.walk(root, followlinks=False):
        depth = len(Path(current).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX" and depth < MAX_DEPTH)
        for name in sorted(files):
            if name.startswith("."):
                continue
            full = Path(current, name)
            relative = full.relative_to(root).as_posix()
            entries.append(_Entry(relative, lambda full=full: reading.read_bytes(full)))
            if len(entries) > MAX_MEMBERS:
                raise CourseError(f"{text.name(root)}: more than {MAX_MEMBERS} files; refused")
    return entries


# ------------------------------------------------------------------------------------------------------- staging

def _safe_component(raw: str, limit: int = 200) -> str:
    """A name fit to be one folder or file name: no separators, no leading dot, at most ``limit`` bytes."""
    cleaned = re.sub(r"[/\\\x00]", "_", raw).strip().lstrip(".")
    while len(cleaned.encode("utf-8", "surrogateescape")) > limit:
        cleaned = cleaned[:-1]
    return cleaned or "_"


class _Writer:
    """Writes notebooks into the staging folder, counting bytes against :data:`MAX_TOTAL_BYTES`."""

    def __init__(self, result: Imported):
        self.result, self.total = result, 0

    def write(self, student: str, relative: str, entry: _Entry) -> None:
        try:
            data = entry.read()
        except reading.Unreadable as exc:
            self.result.unreadable.setdefault(student, []).append((relative, str(exc)))
            (self.result.root / student).mkdir(exist_ok=True)
            return
        self.total += len(data)
        if self.total > MAX_TOTAL_BYTES:
            raise CourseError(f"more than {MAX_TOTAL_BYTES / 1e9:.0f} GB of notebooks in the submissions; refused")
        target = self.result.root / student / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as handle:  # paths are built here, never taken whole from the input
                handle.write(data)
        except FileExistsError:
            self.result.note(student, f"two files named '{text.name(relative)}'; graded the first")
        except OSError as exc:
            self.result.unreadable.setdefault(student, []).append((relative, f"cannot be copied ({exc.strerror})"))


def _is_notebook(path: str) -> bool:
    return path.lower().endswith(".ipynb")


def _stage_plain(entries: list[_Entry], result: Imported) -> None:
    """A zip of the plain layout (or a folder named plain on purpose): ``<student>/<files>``."""
    tops = {e.path.split("/")[0] for e in entries}
    if len(tops) == 1 and all(e.path.count("/") >= 2 for e in entries if _is_notebook(e.path)):
        entries = [_Entry(e.path.split("/", 1)[1], e.read) for e in entries]  # one wrapping folder
    writer = _Writer(result)
    for entry in entries:
        parts = entry.path.split("/")
        if not 2 <= len(parts) <= MAX_DEPTH + 1 or not _is_notebook(entry.path):
            result.ignored.append(text.name(entry.path))
            continue
        student = _safe_component(parts[0])
        writer.write(student, "/".join(_safe_component(p) for p in parts[1:]), entry)


def _stage_canvas(entries: list[_Entry], result: Imported) -> None:
    """Canvas's flat files: one folder per user id, resubmission suffixes dropped, ``_LATE_`` remembered."""
    chosen: dict[tuple[str, str], tuple[int, _Entry, bool]] = {}
    for entry in entries:
        match = CANVAS_FILE.match(entry.path) if "/" not in entry.path else None
        if not match or not _is_notebook(entry.path):
            result.ignored.append(text.name(entry.path))
            continue
        student = _safe_component(f"{match['name']}_{match['id']}")
        result.lms_ids[student] = match["id"]
        result.names.setdefault(student, match["name"])
        original = _safe_component(match["file"])
        again = _RESUBMITTED.match(original)
        stem, number = (again["stem"] + again["ext"], int(again["number"])) if again else (original, 0)
        key = (student, stem)
        if key in chosen:
            result.note(student, f"Canvas sent more than one '{text.name(stem)}'; graded the latest upload (the "
                                 f"highest -N suffix)")
            if number < chosen[key][0]:
                continue
        chosen[key] = (number, entry, bool(match["late"]))
    writer = _Writer(result)
    for (student, stem), (_, entry, late) in sorted(chosen.items()):
        writer.write(student, stem, entry)
        if late:
            result.late.add((student, stem))


def _stage_moodle(entries: list[_Entry], result: Imported) -> None:
    """Moodle's folders (or flat files) per participant; online text and feedback folders are ignored."""
    writer = _Writer(result)
    for entry in entries:
        parts = entry.path.split("/")
        match = MOODLE_FOLDER.match(parts[0]) if len(parts) > 1 else MOODLE_FILE.match(parts[0])
        if not match or not _is_notebook(entry.path) or match["plugin"] != "file" or len(parts) > MAX_DEPTH + 1:
            result.ignored.append(text.name(entry.path))
            continue
        student = _safe_component(f"{match['name']}_{match['id']}")
        result.lms_ids[student] = match["id"]
        result.names.setdefault(student, match["name"])
        relative = [match["file"]] if len(parts) == 1 else parts[1:]
        writer.write(student, "/".join(_safe_component(p) for p in relative), entry)
