"""Solution notebooks in, exercise notebooks out.

``solutions/NN_topic.ipynb`` is the single source of truth. Its exercise, ``exercises/NN_topic.ipynb``, is the same
notebook with

* every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block in a code cell replaced by
  ``raise NotImplementedError`` at the block's indentation (so signatures and docstrings stay visible);
* every cell tagged ``solution`` dropped (for prose or demos that give the answer away);
* every output and execution count cleared.

The markers are nbgrader's, so an instructor who knows nbgrader knows these.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CourseError

if TYPE_CHECKING:  # imported where used: nbformat's import takes seconds (jsonschema's format checkers), and the
    import nbformat  # grader, which needs only ROOT from here, must speak within a second of starting

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SOLUTION_TAG = "solution"
STUB = 'raise NotImplementedError("Replace this line with your solution.")'
ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS, EXERCISES = ROOT / "solutions", ROOT / "exercises"


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read and validate a notebook, or raise a one-line :class:`CourseError`."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise CourseError(f"{path}: no such notebook")
    try:
        nb = nbformat.read(path, as_version=4)
    except (json.JSONDecodeError, nbformat.reader.NotJSONError) as exc:
        raise CourseError(f"{path}: not a notebook (invalid JSON: {str(exc).splitlines()[0][:120]})") from None
    except Exception as exc:  # nbformat raises several types for structurally broken files
        raise CourseError(f"{path}: not a readable notebook ({type(exc).__name__})") from None
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        raise CourseError(f"{path}: invalid notebook ({exc.message[:120]})") from None
    return nb


def strip_solution(source: str, where: str = "cell") -> str:
    """Replace each solution block of a code cell's source by a ``raise NotImplementedError`` stub.

    >>> print(strip_solution("def f(x):\\n    ### BEGIN SOLUTION\\n    return x\\n    ### END SOLUTION"))
    def f(x):
        raise NotImplementedError("Replace this line with your solution.")
    """
    out: list[str] = []
    begin_line = None
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if begin_line is not None:
                raise CourseError(f"{where}, line {number}: {BEGIN} inside the block opened at line {begin_line}")
            begin_line = number
            out.append(line[: len(line) - len(line.lstrip())] + STUB)
        elif marker == END:
            if begin_line is None:
                raise CourseError(f"{where}, line {number}: {END} without a {BEGIN}")
            begin_line = None
        elif begin_line is None:
            out.append(line)
    if begin_line is not None:
        raise CourseError(f"{where}, line {begin_line}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def make_exercise(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The exercise version of a solution notebook (the input is not modified)."""
    import nbformat

    exercise = nbformat.from_dict(json.loads(json.dumps(solution)))
    cells = []
    for index, cell in enumerate(exercise.cells):
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.source = strip_solution(cell.source, where=f"{name}, cell {index}")
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
        cells.append(cell)
    exercise.cells = cells
    exercise.metadata.pop("widgets", None)
    return exercise


def has_solution(nb: nbformat.NotebookNode) -> bool:
    """Whether a notebook contains any solution marker or solution-tagged cell."""
    return any(
        SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])
        or (cell.cell_type == "code" and BEGIN in cell.source)
        for cell in nb.cells
    )


def to_text(nb: nbformat.NotebookNode) -> str:
    """The canonical text of a notebook as we commit it (stable, so staleness is a plain string comparison)."""
    import nbformat

    return nbformat.writes(nb) + "\n"


def solution_path(chapter_id: str) -> Path:
    return SOLUTIONS / f"{chapter_id}.ipynb"


def exercise_path(chapter_id: str) -> Path:
    return EXERCISES / f"{chapter_id}.ipynb"


def exercise_text(chapter_id: str) -> str:
    """What ``exercises/<chapter_id>.ipynb`` must contain, derived from the solution."""
    path = solution_path(chapter_id)
    solution = read_notebook(path)
    if not has_solution(solution):
        raise CourseError(f"{path}: has no {BEGIN} block, so its exercise would give nothing to do")
    return to_text(make_exercise(solution, name=path.name))


def write_exercise(chapter_id: str) -> Path:
    """Regenerate one exercise notebook; returns its path."""
    text = exercise_text(chapter_id)
    path = exercise_path(chapter_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def stale_exercises(chapter_ids: list[str]) -> list[str]:
    """The chapters whose committed exercise differs from what the solution generates."""
    stale = []
    for chapter_id in chapter_ids:
        path = exercise_path(chapter_id)
        if not path.is_file() or path.read_text(encoding="utf-8") != exercise_text(chapter_id):
            stale.append(chapter_id)
    return stale
