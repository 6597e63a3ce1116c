"""Small readability fixes for the built book that need no markup in the pages.

- Korean text (the glossary gives the Korean term of every entry) is marked ``lang="ko"``, so screen readers and
  hyphenation treat it as Korean: every run of Hangul in prose becomes a ``<span lang="ko">``.
- A number written with spaces between its digit groups ("100 000") keeps together: those spaces become no-break
  spaces, so a line never ends inside a number.
- Search excerpts show prose, not source: Sphinx's search page fetches each result's HTML and shows its text, which
  before MathJax runs is raw TeX (``\\(\\lfloor n/30 \\rfloor\\)``). ``course-search.js`` replaces that text
  extraction with one that turns math into plain symbols and drops the page's button bar and role markup.

Code, literals, math and raw HTML are left untouched.
"""
from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform

HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
# A Hangul run, including spaces and punctuation between Hangul words ("손실 함수", "로그 소프트맥스").
HANGUL_RUN = re.compile(rf"[{HANGUL}]+(?:[ \-·]+[{HANGUL}]+)*")
# "100 000", "1 797", "50 000 000": digit groups of three after a leading group of one to three digits.
DIGIT_GROUPS = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?![\d.,])")
NO_BREAK_SPACE = "\u00a0"
SKIP = (nodes.literal, nodes.literal_block, nodes.math, nodes.math_block, nodes.raw, nodes.comment)


def keep_numbers_together(text: str) -> str:
    """Join the digit groups of numbers like "100 000" with no-break spaces.

    >>> keep_numbers_together("every 100 000 steps, 1 797 images, 3 or 4 epochs")
    'every 100\\xa0000 steps, 1\\xa0797 images, 3 or 4 epochs'
    """
    return DIGIT_GROUPS.sub(lambda m: m.group(0).replace(" ", NO_BREAK_SPACE), text)


def split_hangul(text: str) -> list[nodes.Node]:
    """Text nodes and ``lang="ko"`` inline nodes, in order; one Text node when there is no Hangul.

    >>> [(type(node).__name__, node.astext()) for node in split_hangul("손실 함수. The number")]
    [('inline', '손실 함수'), ('Text', '. The number')]
    """
    pieces: list[nodes.Node] = []
    position = 0
    for match in HANGUL_RUN.finditer(text):
        if match.start() > position:
            pieces.append(nodes.Text(text[position:match.start()]))
        # docutils writes a class "language-xx" as the attribute lang="xx".
        pieces.append(nodes.inline(match.group(0), match.group(0), classes=["language-ko"]))
        position = match.end()
    if position < len(text):
        pieces.append(nodes.Text(text[position:]))
    return pieces


def inside_skipped(node: nodes.Node) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, SKIP) or "language-ko" in parent.get("classes", []):
            return True
        parent = parent.parent
    return False


class ReadableText(SphinxTransform):
    """Mark Hangul runs as Korean and keep digit groups together, in prose only."""

    default_priority = 800  # after MyST-NB and the framework tabs have placed every node

    def apply(self, **kwargs) -> None:
        for text in list(self.document.findall(nodes.Text)):
            if text.parent is None or inside_skipped(text):
                continue
            value = keep_numbers_together(str(text))
            pieces = split_hangul(value)
            if len(pieces) == 1 and isinstance(pieces[0], nodes.Text):
                if value != str(text):
                    text.parent.replace(text, nodes.Text(value))
                continue
            text.parent.replace(text, pieces)


def add_static_path(app: Sphinx, config) -> None:
    config.html_static_path.append(str(Path(__file__).parent / "static"))


def setup(app: Sphinx) -> dict:
    app.add_transform(ReadableText)
    app.connect("config-inited", add_static_path)
    app.add_js_file("course-search.js")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
