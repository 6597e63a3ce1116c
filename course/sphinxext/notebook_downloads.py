"""Downloadable page notebooks that keep their outputs, and launch links that open the exercise notebook.

Why our own extension: sphinx-book-theme offers a page's ``.ipynb`` only when launch buttons are configured (which
needs a public repository URL), and it copies MyST-NB's ``_build/jupyter_execute/<page>.ipynb``, which MyST-NB
writes *without outputs* whenever the page came from the execution cache (every build after the first). Here every
executed page gets its notebook, outputs merged back from the cache, in ``_sources/`` and the theme's ``.ipynb``
download entry. When a repository URL *is* configured, the theme's launch links (Binder, Colab, JupyterHub) are
pointed at ``exercises/NN_topic.ipynb`` instead of the page's ``.md`` source, which Colab cannot open.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
from sphinx.application import Sphinx

CHAPTER_PAGE = re.compile(r"book/(\d\d_[a-z_]+)\.md")
# Jupyter Book fills in its own repository when none is configured; launch links to it would be wrong.
JUPYTER_BOOK_DEFAULT_REPOSITORY = "https://github.com/executablebooks/jupyter-book"


def executed_notebook_path(app: Sphinx, pagename: str) -> Path:
    return Path(app.env.mystnb_config.output_folder) / f"{pagename}.ipynb"


def with_outputs(app: Sphinx, nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with its outputs: as it is if it has any, else merged from the jupyter-cache."""
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    if not code or any(cell.get("outputs") for cell in code):
        return nb
    from jupyter_cache import get_cache

    try:
        return get_cache(app.env.mystnb_config.execution_cache_path).merge_match_into_notebook(nb)[1]
    except KeyError:  # not executed through the cache (e.g. execution off): nothing to merge
        return nb


def offer_notebook(app: Sphinx, pagename: str, templatename, context, doctree) -> None:
    """Put the executed page, with outputs, in ``_sources/`` and tell the theme to offer it for download."""
    path = executed_notebook_path(app, pagename)
    if not path.is_file() or not str(context.get("sourcename", "")).endswith((".md", ".md.txt")):
        return
    nb = with_outputs(app, nbformat.read(path, as_version=4))
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(nbformat.writes(nb), encoding="utf-8")
    context["ipynb_source"] = f"{pagename}.ipynb"


def exercise_launch_url(url: str) -> str:
    """Rewrite a launch URL that opens ``book/NN_topic.md`` to open ``exercises/NN_topic.ipynb``.

    >>> exercise_launch_url("https://colab.research.google.com/github/org/repo/blob/main/book/01_softmax.md")
    'https://colab.research.google.com/github/org/repo/blob/main/exercises/01_softmax.ipynb'
    """
    return CHAPTER_PAGE.sub(r"exercises/\1.ipynb", url)


def launch_exercises(app: Sphinx, pagename: str, templatename, context, doctree) -> None:
    buttons = context.get("header_buttons", [])
    repository = app.config.html_theme_options.get("repository_url", "").rstrip("/")
    if repository in ("", JUPYTER_BOOK_DEFAULT_REPOSITORY):
        buttons[:] = [button for button in buttons if button.get("label") != "launch-buttons"]
        return
    for button in buttons:
        if button.get("label") == "launch-buttons":
            for item in button.get("buttons", []):
                if "url" in item:
                    item["url"] = exercise_launch_url(item["url"])


def setup(app: Sphinx) -> dict:
    # The theme builds its download menu at priority 501: offer the notebook before that.
    app.connect("html-page-context", offer_notebook, priority=400)
    app.connect("html-page-context", launch_exercises, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
