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


def test_readable_text_marks_korean_and_joins_digit_groups_in_prose_only():
    from docutils import nodes
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document

    from course.sphinxext.readable import ReadableText

    document = new_document("test", get_default_settings(Parser))
    paragraph = nodes.paragraph("", "", nodes.Text("로짓. every 100 000 steps "),
                                nodes.literal("100 000", "100 000"))
    document += paragraph
    transform = ReadableText(document)
    transform.apply()
    korean = [node for node in document.findall(nodes.inline) if "language-ko" in node["classes"]]
    assert [node.astext() for node in korean] == ["로짓"]
    assert "100\u00a0000" in paragraph.astext() and paragraph.children[-1].astext() == "100 000"
