"""The student's work folder: the exercise notebooks copied out, never overwritten.

The exercises come from the installed package (a wheel or ``pip install`` of the repository carries them as package
data in ``course/exercises/``) or, in a checkout, from the repository's ``exercises/`` folder. A student's folder is
theirs: a notebook already there is kept as it is, and only the notebooks of chapters it lacks are added.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import CourseError
from .notebooks import EXERCISES

#: Where a built package keeps the exercise notebooks (copied there by setup.py's build step).
PACKAGED = Path(__file__).resolve().parent / "exercises"


def exercise_folder() -> Path:
    """The folder holding the exercise notebooks: the packaged copy if there is one, else the checkout's."""
    for folder in (PACKAGED, EXERCISES):
        if any(folder.glob("[0-9][0-9]_*.ipynb")):
            return folder
    raise CourseError("no exercise notebooks found: this installation of the course is incomplete "
                      "(reinstall it with pip from the repository or its wheel)")


def exercises() -> dict[str, Path]:
    """Every exercise notebook, keyed by chapter id, in chapter order."""
    return {path.stem: path for path in sorted(exercise_folder().glob("[0-9][0-9]_*.ipynb"))}


@dataclass
class StartResult:
    """What :func:`start` did: the notebooks it copied and the ones it left alone."""

    folder: Path
    copied: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def start(folder: str | Path, chapters: list[str] | None = None) -> StartResult:
    """Copy the exercise notebooks into ``folder`` (created if its parent exists); never overwrite a file."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CourseError(f"{folder}: exists and is not a folder")
    if not folder.exists():
        if not folder.parent.is_dir():
            raise CourseError(f"{folder.parent}: no such folder (create it first)")
        folder.mkdir()
    available = exercises()
    unknown = [c for c in chapters or [] if c not in available]
    if unknown:
        raise CourseError(f"no chapter {', '.join(unknown)}; the chapters are: {', '.join(available)}")
    result = StartResult(folder)
    for chapter_id in chapters or list(available):
        target = folder / f"{chapter_id}.ipynb"
        if target.exists() or target.is_symlink():
            result.kept.append(target.name)
            continue
        try:  # "x": exclusive creation fails rather than replace a file saved a moment ago
            with open(target, "xb") as handle:
                handle.write(available[chapter_id].read_bytes())
        except FileExistsError:
            result.kept.append(target.name)
            continue
        result.copied.append(target.name)
    return result
