"""Every chapter, whoever wrote it: exercise fresh, stubs fail every check, solutions pass every check."""
from __future__ import annotations

import re

import nbformat
import pytest
from nbclient import NotebookClient

from course import notebooks
from course.chapters import all_chapters
from course.check import FAIL, PASS, TODO
from course.questions import run_case

CHAPTERS = list(all_chapters().values())
IDS = [c.id for c in CHAPTERS]


def test_there_are_chapters():
    assert "01_softmax" in IDS


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_each_chapter_has_page_solution_and_exercise(chapter):
    assert (notebooks.ROOT / "book" / f"{chapter.id}.md").is_file()
    assert notebooks.solution_path(chapter.id).is_file()
    assert notebooks.exercise_path(chapter.id).is_file()


def test_exercises_are_fresh():
    assert notebooks.stale_exercises(IDS) == [], "run `make exercises` and commit the result"


def test_no_exercise_contains_a_solution():
    for chapter_id in IDS:
        assert not notebooks.has_solution(notebooks.read_notebook(notebooks.exercise_path(chapter_id)))


def stream_text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.get("outputs", []) if out.get("output_type") == "stream")


FUNCTIONS = [(c.id, q) for c in CHAPTERS for q in c.questions if q.kind == "function"]


@pytest.mark.parametrize("chapter_id, question", FUNCTIONS, ids=[f"{c}-{q.name}" for c, q in FUNCTIONS])
def test_stub_function_is_not_attempted_on_any_case(chapter_id, question):
    def stub(*args, **kwargs):
        raise NotImplementedError("Replace this line with your solution.")

    results = [run_case(question, stub, case) for case in question.cases()]
    assert results and all(not v.passed and v.message.startswith("not attempted") for v in results)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_solution_outputs_show_every_check_passing(chapter):
    """The committed outputs (which nbval re-derives) show each question checked, and nothing failing."""
    nb = notebooks.read_notebook(notebooks.solution_path(chapter.id))
    assert all(cell.get("outputs") or not cell.source.strip() for cell in nb.cells if cell.cell_type == "code"
               if "check(" in cell.source), "solution notebooks are committed with their outputs"
    text = stream_text(nb)
    assert FAIL not in text and TODO not in text
    for question in chapter.questions:
        n = len(question.cases())
        assert f"{question.name}: {n} of {n} checks passed." in text, f"{question.name} not checked or failing"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_unsolved_exercise_fails_every_check(chapter, tmp_path):
    """Run the generated exercise as a student would before writing anything: no check may pass."""
    nb = notebooks.read_notebook(notebooks.exercise_path(chapter.id))
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(notebooks.EXERCISES)}}).execute()
    text = stream_text(nb)
    assert PASS not in text, "a check passes on the unsolved stub: it cannot fail"
    for question in chapter.questions:
        assert re.search(rf"^\[(TODO|FAIL)\] {re.escape(question.name)}\b", text, re.M), \
            f"the exercise never checks {question.name}"
