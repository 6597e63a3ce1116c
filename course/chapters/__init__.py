"""The chapters' graded questions, found by scanning this package.

Each module here defines ``CHAPTER`` (a :class:`course.questions.Chapter`). Modules must import TensorFlow and torch
lazily (inside functions): listing the chapters must stay cheap for the command line and the grader.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from ..errors import CourseError
from ..questions import Chapter


@cache
def all_chapters() -> dict[str, Chapter]:
    """Every chapter, keyed and sorted by id (``01_softmax``, ``02_losses`` ...)."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        chapter = getattr(module, "CHAPTER", None)
        if isinstance(chapter, Chapter):
            found[chapter.id] = chapter
    return dict(sorted(found.items()))


def get_chapter(chapter_id: str) -> Chapter:
    """The chapter with this id, or a one-line error that lists the ones that exist."""
    chapters = all_chapters()
    if chapter_id not in chapters:
        raise CourseError(f"no chapter {chapter_id!r}; the chapters are: {', '.join(chapters) or 'none'}")
    return chapters[chapter_id]
