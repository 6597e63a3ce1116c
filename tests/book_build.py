"""Where the built editions are, and how to read their files as plain text (shared by the book tests)."""
from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import pytest

from course import notebooks

STUDENT_HTML = notebooks.ROOT / "_build" / "html"
INSTRUCTOR_HTML = notebooks.ROOT / "_build" / "instructor" / "_build" / "html"


def built(path: Path, command: str) -> Path:
    """The build folder, or a failure (not a skip) that says which command makes it."""
    if os.environ.get("COURSE_BOOK_BUILDING"):  # `make test` runs the other tests while it builds the book
        pytest.fail("this test reads the built book while `make test` is still building it: add its module to "
                    "BOOK_TESTS in the Makefile")
    if not (path / "index.html").is_file():
        pytest.fail(f"{path} is not built: run `{command}` first (`make test` does)")
    return path


def squash(text: str) -> str:
    return " ".join(text.split())


def readable_text(path: Path) -> str:
    """A file's content as a reader or a search would see it, whitespace folded."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".html":
        raw = html.unescape(re.sub(r"<[^>]+>", "", raw))
    elif path.suffix == ".ipynb":
        try:
            raw = "\n".join("".join(cell.get("source", "")) for cell in json.loads(raw).get("cells", []))
        except json.JSONDecodeError:
            pass
    return squash(raw)


def solution_bodies() -> dict[str, list[str]]:
    """Every solution block of two or more lines, whitespace folded, keyed by chapter id.

    A one-line block (``return math.ceil(len(self.x) / self.batch_size)``) is often exactly what the chapter page
    teaches, so finding it on the page says nothing; every chapter has multi-line blocks, which only a leak can put
    into the student edition.
    """
    bodies: dict[str, list[str]] = {}
    for path in sorted(notebooks.SOLUTIONS.glob("[0-9]*.ipynb")):
        for cell in notebooks.read_notebook(path).cells:
            if cell.cell_type != "code" or notebooks.BEGIN not in cell.source:
                continue
            inside, block = False, []
            for line in cell.source.splitlines():
                if line.strip() == notebooks.BEGIN:
                    inside, block = True, []
                elif line.strip() == notebooks.END:
                    inside = False
                    if len(block) >= 2:
                        bodies.setdefault(path.stem, []).append(squash("\n".join(block)))
                elif inside and line.strip():
                    block.append(line)
    return bodies


def book_pages(root: Path) -> list[str]:
    """The book's reading pages (``book/<name>``, without ``.html``), or those named in ``COURSE_BOOK_PAGES``.

    ``COURSE_BOOK_PAGES=04_schedules,05_training_loops`` restricts the browser's readability checks to a few pages
    (for a helper who changed only those); a name that is not built is an error, not a silent skip.
    """
    built_pages = sorted(p.stem for p in (root / "book").glob("*.html"))
    chosen = [name.strip() for name in os.environ.get("COURSE_BOOK_PAGES", "").split(",") if name.strip()]
    missing = sorted(set(chosen) - set(built_pages))
    if missing:
        pytest.fail(f"COURSE_BOOK_PAGES names pages that are not built: {missing}")
    return chosen or built_pages
