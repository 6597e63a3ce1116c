"""Docstring examples of the course package run, and the small Sphinx extensions behave as documented."""
from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import SimpleNamespace

import pytest

import course
from course.sphinxext import notebook_downloads, offline

# course.__main__ runs the command line when imported.
MODULES = sorted(info.name for info in pkgutil.walk_packages(course.__path__, "course.") if info.name != "course.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def launch_context(url="https://colab.research.google.com/github/org/repo/blob/main/book/01_softmax.md"):
    return {"header_buttons": [{"label": "download-buttons"},
                               {"label": "launch-buttons", "buttons": [{"url": url}]}]}


def app_with_repository(url):
    return SimpleNamespace(config=SimpleNamespace(html_theme_options={"repository_url": url}))


def test_launch_links_open_the_exercise_notebook():
    context = launch_context()
    notebook_downloads.launch_exercises(app_with_repository("https://github.com/org/repo"), "book/01_softmax",
                                        None, context, None)
    assert context["header_buttons"][1]["buttons"][0]["url"].endswith("/exercises/01_softmax.ipynb")


@pytest.mark.parametrize("repository", ["", notebook_downloads.JUPYTER_BOOK_DEFAULT_REPOSITORY])
def test_no_launch_links_without_a_repository_of_our_own(repository):
    context = launch_context()
    notebook_downloads.launch_exercises(app_with_repository(repository), "book/01_softmax", None, context, None)
    assert [b["label"] for b in context["header_buttons"]] == ["download-buttons"]


def test_thebe_scripts_are_dropped():
    script = SimpleNamespace(filename=None, attributes={"body": 'const THEBE_JS_URL = "https://unpkg.com/..."'})
    kept = SimpleNamespace(filename="design-tabs.js", attributes={})
    context = {"script_files": [script, SimpleNamespace(filename="sphinx-thebe.js", attributes={}), kept]}
    offline.drop_thebe(None, "page", None, context, None)
    assert context["script_files"] == [kept]
