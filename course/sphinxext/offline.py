"""Keep the built book free of scripts that need the internet.

Jupyter Book always loads sphinx-thebe, the "Live Code" button. Thebe's kernel client comes from unpkg.com at run
time, so it cannot work offline, and on these versions its configuration script is emitted twice on every page,
which is a JavaScript error (``Identifier 'THEBE_JS_URL' has already been declared``). Nothing in this book uses
Thebe, so its scripts are dropped from every page.
"""
from __future__ import annotations

from sphinx.application import Sphinx


def is_thebe(script) -> bool:
    """Whether a page script belongs to sphinx-thebe (its loader file or its inline configuration)."""
    filename = str(getattr(script, "filename", script) or "")
    body = str(getattr(script, "attributes", {}).get("body", ""))
    return "thebe" in filename or "THEBE_JS_URL" in body


def drop_thebe(app: Sphinx, pagename: str, templatename, context, doctree) -> None:
    if "script_files" in context:
        context["script_files"] = [script for script in context["script_files"] if not is_thebe(script)]


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
