"""The exercise generator and the command line: clear one-line errors, never a traceback."""
import json
import subprocess
import sys

import nbformat
import pytest

from course import notebooks
from course.errors import CourseError


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "course", *args], capture_output=True, text=True, cwd=cwd)


def test_strip_keeps_signature_docstring_and_indentation():
    source = 'def f(x):\n    """Doc."""\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n'
    assert notebooks.strip_solution(source) == (
        'def f(x):\n    """Doc."""\n    raise NotImplementedError("Replace this line with your solution.")')


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside the block"),
])
def test_unbalanced_or_nested_markers_are_named(source, problem):
    with pytest.raises(CourseError, match=problem):
        notebooks.strip_solution(source, where="x.ipynb, cell 3")


def test_exercise_drops_solution_cells_and_outputs():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION",
                                  outputs=[nbformat.v4.new_output("stream", text="hi")], execution_count=3),
        nbformat.v4.new_markdown_cell("the answer is 1", metadata={"tags": ["solution"]}),
    ])
    exercise = notebooks.make_exercise(nb)
    assert len(exercise.cells) == 1
    assert exercise.cells[0].outputs == [] and exercise.cells[0].execution_count is None
    assert "return 1" not in exercise.cells[0].source
    assert notebooks.has_solution(nb) and not notebooks.has_solution(exercise)


def test_invalid_json_is_one_line(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{ not json")
    with pytest.raises(CourseError, match="not a notebook"):
        notebooks.read_notebook(bad)


def test_structurally_invalid_notebook_is_one_line(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text(json.dumps({"cells": "no", "nbformat": 4, "nbformat_minor": 5, "metadata": {}}))
    with pytest.raises(CourseError):
        notebooks.read_notebook(bad)


@pytest.mark.parametrize("args, expected", [
    (["exercises", "99_nothing"], "no chapter '99_nothing'"),
    (["execute", "missing.ipynb"], "no such notebook"),
    (["page", "missing.md"], "no such page"),
])
def test_cli_errors_are_one_line_without_traceback(args, expected):
    result = run_cli(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_rejects_an_invalid_notebook(tmp_path):
    bad = tmp_path / "broken.ipynb"
    bad.write_text('{"cells": [')
    result = run_cli("execute", str(bad))
    assert result.returncode == 2 and "not a notebook" in result.stderr and "Traceback" not in result.stderr


def test_cli_check_reports_fresh_exercises():
    result = run_cli("exercises", "--check", "01_softmax")
    assert result.returncode == 0, result.stderr
