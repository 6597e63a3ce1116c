"""Step 1: which students, which notebooks, and which chapters were assigned.

``SUBMISSIONS/<student>/<NN_topic>.ipynb``. Every student folder gets one entry per *assigned* notebook, found or not,
so nothing is lost. Students are forgiven the usual slips (``01_Softmax.ipynb``, ``01_softmax (1).ipynb``, a nested
folder) with a note; nothing is followed through a symbolic link.

What was assigned is the instructor's decision (``--chapters`` or ``--assignment FILE``, see :func:`load_assignment`),
never what one student happened to hand in: a stray ``02_losses_draft.ipynb`` in one folder is listed in that
student's notes and in the report, and costs nobody anything. Without either option, a chapter counts as assigned when
more than half of the students handed it in (:func:`majority_chapters`).

Names on disk are bytes: a folder unpacked from a Windows zip is often Latin-1, which Python hands over with lone
surrogates. The real name (``folder``) is used only to open files; everything shown or written uses its safe form
(:func:`course.grading.text.name`, which shows an undecodable byte as ``\\xe9``).
"""
from __future__ import annotations

import os
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import CourseError
from . import text

#: How deep inside a student's folder a misplaced notebook is still found.
MAX_DEPTH = 3
_SKIP_DIRS = {".ipynb_checkpoints", "__MACOSX", ".git"}


@dataclass(frozen=True)
class Submission:
    """One (student, notebook) slot: the file that fills it, or why there is none."""

    student: str        # the folder's name, safe to show and write (see text.name)
    chapter_id: str
    path: Path | None
    problem: str = ""   # "missing" / "unreadable" reason when path is None
    status: str = ""    # "missing" or "unreadable" when path is None
    note: str = ""      # e.g. "graded 'sub/01_Softmax.ipynb' (expected '01_softmax.ipynb')"
    folder: str = ""    # the folder's real name on disk (may hold undecodable bytes as surrogates)


@dataclass(frozen=True)
class Assignment:
    """What the instructor assigned: the chapter ids, optionally the points each notebook is worth in the summary."""

    chapters: list[str]
    points: dict[str, float]
    source: str  # how the chapters were chosen, for the closing paragraph


def students(root: Path) -> list[str]:
    """The student folder names as on disk, sorted; files at the top level are not students."""
    if not root.is_dir():
        raise CourseError(f"{text.name(root)}: no such folder")
    return sorted(entry.name for entry in os.scandir(root)
                  if (entry.is_dir(follow_symlinks=False) or entry.is_symlink()) and not entry.name.startswith("."))


def stray_files(root: Path) -> list[str]:
    """Top-level files that are not student folders (reported, not graded), by their safe names."""
    return sorted(text.name(entry.name) for entry in os.scandir(root)
                  if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."))


def _normal(name: str) -> str:
    """A file name as a forgiving match sees it: NFC, lower case, no copy suffixes, '-'/' ' as '_'."""
    stem = unicodedata.normalize("NFC", name).lower()
    stem = re.sub(r"\.ipynb$", "", stem)
    stem = re.sub(r"(\s*\(\d+\)|[-_ ]copy\d*|-checkpoint)+$", "", stem)
    return re.sub(r"[\s-]+", "_", stem.strip())


def _notebooks_under(folder: Path) -> list[Path]:
    """Every ``.ipynb`` under ``folder`` (not following links), relative paths, sorted for determinism."""
    found = []
    for current, dirs, files in os.walk(folder, followlinks=False):
        depth = len(Path(current).relative_to(folder).parts)
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".") and depth < MAX_DEPTH)
        found += [Path(current, f).relative_to(folder) for f in files if f.lower().endswith(".ipynb")]
    return sorted(found, key=lambda p: (len(p.parts), str(p)))


def _matches(candidates: list[Path], chapter_id: str) -> list[Path]:
    """The candidates for one chapter, best first: the exact name, a forgiven spelling, a name starting with the id."""
    exact = Path(f"{chapter_id}.ipynb")
    return ([p for p in candidates if p == exact] +
            [p for p in candidates if p != exact and _normal(p.name) == chapter_id] +
            [p for p in candidates if _normal(p.name) != chapter_id and _normal(p.name).startswith(chapter_id)])


def find(root: Path, student: str, chapter_ids: list[str]) -> list[Submission]:
    """The submission slots of one student (``student`` is the folder's name on disk), one per chapter id."""
    folder = root / student
    shown = text.name(student)
    if folder.is_symlink():
        return [Submission(shown, cid, None, "the student folder is a symbolic link; not followed", "unreadable",
                           folder=student) for cid in chapter_ids]
    candidates = _notebooks_under(folder)
    slots = []
    for chapter_id in chapter_ids:
        exact = Path(f"{chapter_id}.ipynb")
        matches = _matches(candidates, chapter_id)
        if not matches:
            slots.append(Submission(shown, chapter_id, None, f"no {exact} in the student's folder", "missing",
                                    folder=student))
            continue
        chosen = matches[0]
        note = "" if chosen == exact else f"graded '{text.name(chosen)}' (expected '{exact}')"
        if len(matches) > 1:
            note += f"; {len(matches) - 1} other candidate(s) ignored"
        path = folder / chosen
        if path.is_symlink():
            slots.append(Submission(shown, chapter_id, None, f"'{text.name(chosen)}' is a symbolic link; not followed",
                                    "unreadable", note, folder=student))
        else:
            slots.append(Submission(shown, chapter_id, path, note=note.strip("; "), folder=student))
    return slots


def stray_notebooks(root: Path, student: str, chapter_ids: list[str]) -> list[str]:
    """The notebooks in a student's folder that belong to no assigned chapter (safe names, relative paths)."""
    folder = root / student
    if folder.is_symlink():
        return []
    return [text.name(p) for p in _notebooks_under(folder)
            if not any(_normal(p.name).startswith(cid) for cid in chapter_ids)]


def majority_chapters(root: Path, known: list[str]) -> list[str]:
    """The chapters that more than half of the students handed in (the default when no assignment is given).

    One student's extra notebook never makes a chapter "assigned" for the whole class; a chapter most of the class
    handed in is graded for everyone, so the few who did not hand it in are told it is missing.
    """
    folders = [s for s in students(root) if not (root / s).is_symlink()]
    handed_in = {cid: 0 for cid in known}
    for student in folders:
        names = {_normal(p.name) for p in _notebooks_under(root / student)}
        for cid in known:
            handed_in[cid] += any(name.startswith(cid) for name in names)
    return [cid for cid in known if handed_in[cid] * 2 > len(folders)]


def load_assignment(path: Path, known: list[str]) -> Assignment:
    """Read an assignment file (TOML): the chapters every student must hand in, and optionally their points.

    ::

        # assignment.toml
        chapters = ["01_softmax", "03_optimizers"]

        [points]            # optional: what each notebook is worth in summary.csv (default: its questions' points)
        01_softmax = 20
        03_optimizers = 30
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CourseError(f"{text.name(path)}: cannot read the assignment file ({exc.strerror})") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CourseError(f"{text.name(path)}: not a TOML assignment file ({text.clean(exc)})") from None
    chapters = data.get("chapters")
    if not isinstance(chapters, list) or not chapters or not all(isinstance(c, str) for c in chapters):
        raise CourseError(f"{text.name(path)}: needs `chapters = [\"01_softmax\", ...]` (a list of chapter ids)")
    points = data.get("points", {})
    if not isinstance(points, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                               for v in points.values()):
        raise CourseError(f"{text.name(path)}: [points] must map chapter ids to positive numbers")
    extra = sorted(set(points) - set(chapters))
    if extra:
        raise CourseError(f"{text.name(path)}: points given for chapters not assigned: {', '.join(extra)}")
    check_known(chapters, known)
    return Assignment(list(dict.fromkeys(chapters)), {k: float(v) for k, v in points.items()},
                      f"assignment file {text.name(path.name)}")


def check_known(chapters: list[str], known: list[str]) -> None:
    """Refuse chapter ids the course does not have, naming the ones it has."""
    unknown = [c for c in chapters if c not in known]
    if unknown:
        raise CourseError(f"unknown chapter(s) {', '.join(map(text.clean, unknown))}; "
                          f"the chapters are: {', '.join(known)}")
