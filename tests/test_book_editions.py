"""The student edition carries no solution anywhere; the instructor edition carries all of them."""
from __future__ import annotations

import json
import re

import pytest

from book_build import INSTRUCTOR_HTML, STUDENT_HTML, built, readable_text, solution_bodies
from course.chapters import all_chapters

TEXT_SUFFIXES = {".html", ".js", ".txt", ".md", ".ipynb", ".json", ".py", ".inv"}


@pytest.fixture(scope="module")
def bodies():
    found = solution_bodies()
    assert set(found) == set(all_chapters()), "every chapter has solution blocks"
    return found


def corpus(root):
    """Every text file of a build (the mathjax copy excepted), as readable text."""
    return {path: readable_text(path) for path in root.rglob("*")
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "mathjax" not in path.parts}


def test_student_edition_has_no_solution_anywhere(bodies):
    files = corpus(built(STUDENT_HTML, "make book"))
    leaks = [(chapter, path.relative_to(STUDENT_HTML)) for chapter, blocks in bodies.items() for block in blocks
             for path, text in files.items() if block in text]
    assert leaks == []
    assert not (STUDENT_HTML / "solutions").exists()


def test_instructor_edition_shows_every_solution(bodies):
    """The same search finds every solution in the instructor edition, so the leak test above can fail."""
    root = built(INSTRUCTOR_HTML, "make book-instructor")
    for chapter, blocks in bodies.items():
        page = readable_text(root / "solutions" / f"{chapter}.html")
        assert all(block in page for block in blocks), chapter
    assert (root / "book" / "grading-guide.html").is_file()


def test_exercise_notebooks_are_downloadable_and_unsolved():
    root = built(STUDENT_HTML, "make book")
    for chapter in all_chapters():
        downloads = list((root / "_downloads").rglob(f"{chapter}.ipynb"))
        assert downloads, f"the {chapter} page does not offer its exercise notebook"
        assert "### BEGIN SOLUTION" not in downloads[0].read_text(encoding="utf-8")


def test_page_notebooks_download_with_outputs():
    root = built(STUDENT_HTML, "make book")
    for chapter in all_chapters():
        nb = json.loads((root / "_sources" / "book" / f"{chapter}.ipynb").read_text(encoding="utf-8"))
        assert any(cell.get("outputs") for cell in nb["cells"]), f"{chapter}.ipynb lost its outputs"
        assert f'_sources/book/{chapter}.ipynb' in (root / "book" / f"{chapter}.html").read_text(encoding="utf-8")


def test_no_stderr_and_no_raw_tex_in_pages():
    root = built(STUDENT_HTML, "make book")
    for page in (root / "book").glob("*.html"):
        source = page.read_text(encoding="utf-8")
        assert 'class="output stderr"' not in source, page.name
        assert "$$" not in readable_text(page), f"raw TeX in {page.name}"


def test_versions_on_the_landing_page_come_from_the_environment():
    from importlib.metadata import version

    page = (built(STUDENT_HTML, "make book") / "book" / "index.html").read_text(encoding="utf-8")
    cells = " ".join(re.sub(r"<[^>]+>", " ", page).split())  # table cells become words
    for package in ("keras", "torch", "tensorflow-cpu", "numpy"):
        assert f"{package} {version(package)}" in cells


def test_every_chapter_page_shows_its_figures():
    """Each chapter plots; a page without images means the kernels drew nowhere (e.g. MPLBACKEND=Agg)."""
    root = built(STUDENT_HTML, "make book")
    for chapter in all_chapters():
        assert "<img" in (root / "book" / f"{chapter}.html").read_text(encoding="utf-8"), chapter


def test_every_chapter_links_its_terms_to_the_glossary():
    root = built(STUDENT_HTML, "make book")
    for chapter in all_chapters():
        assert 'glossary.html#term-' in (root / "book" / f"{chapter}.html").read_text(encoding="utf-8"), chapter
