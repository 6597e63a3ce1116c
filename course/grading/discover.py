"""Step 1: which students and which notebooks.

``SUBMISSIONS/<student>/<NN_topic>.ipynb``. Every student folder gets one entry per expected notebook, found or not,
so nothing is lost. Students are forgiven the usual slips (``01_Softmax.ipynb``, ``01_softmax (1).ipynb``, a nested
folder) with a note; nothing is followed through a symbolic link.
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import CourseError

#: How deep inside a student's folder a misplaced notebook is still found.
MAX_DEPTH = 3
_SKIP_DIRS = {".ipynb_checkpoints", "__MACOSX", ".git"}


@dataclass(frozen=True)
class Submission:
    """One (student, notebook) slot: the file that fills it, or why there is none."""

    student: str
    chapter_id: str
    path: Path | None
    problem: str = ""  # "missing" / "unreadable" reason when path is None
    status: str = ""   # "missing" or "unreadable" when path is None
    note: str = ""     # e.g. "graded 'sub/01_Softmax.ipynb' (expected '01_softmax.ipynb')"


def students(root: Path) -> list[str]:
    """The student folder names, sorted; files at the top level are not students."""
    if not root.is_dir():
        raise CourseError(f"{root}: no such folder")
    return sorted(entry.name for entry in os.scandir(root)
                  if (entry.is_dir(follow_symlinks=False) or entry.is_symlink()) and not entry.name.startswith("."))


def stray_files(root: Path) -> list[str]:
    """Top-level files that are not student folders (reported, not graded)."""
    return sorted(entry.name for entry in os.scandir(root)
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


def find(root: Path, student: str, chapter_ids: list[str]) -> list[Submission]:
    """The submission slots of one student, one per chapter id."""
    folder = root / student
    if folder.is_symlink():
        return [Submission(student, cid, None, "the student folder is a symbolic link; not followed", "unreadable")
                for cid in chapter_ids]
    candidates = _notebooks_under(folder)
    slots = []
    for chapter_id in chapter_ids:
        exact = Path(f"{chapter_id}.ipynb")
        # Best first: the exact name, then a forgiven spelling, then a name that merely starts with the id.
        matches = ([p for p in candidates if p == exact] +
                   [p for p in candidates if p != exact and _normal(p.name) == chapter_id] +
                   [p for p in candidates if _normal(p.name) != chapter_id and _normal(p.name).startswith(chapter_id)])
        if not matches:
            slots.append(Submission(student, chapter_id, None, f"no {exact} in the student's folder", "missing"))
            continue
        chosen = matches[0]
        note = "" if chosen == exact else f"graded '{chosen}' (expected '{exact}')"
        if len(matches) > 1:
            note += f"; {len(matches) - 1} other candidate(s) ignored"
        path = folder / chosen
        if path.is_symlink():
            slots.append(Submission(student, chapter_id, None, f"'{chosen}' is a symbolic link; not followed",
                                    "unreadable", note))
        else:
            slots.append(Submission(student, chapter_id, path, note=note.strip("; ")))
    return slots


def expected_chapters(root: Path, known: list[str]) -> list[str]:
    """The chapters any student submitted (so a class grading one assignment is not told the others are missing)."""
    names = set()
    for student in students(root):
        folder = root / student
        if not folder.is_symlink():
            names |= {_normal(p.name) for p in _notebooks_under(folder)}
    return [cid for cid in known if any(name.startswith(cid) for name in names)]
