"""Safe text: every name, message and output that comes from a submission is made safe where it enters the grader.

A submission controls many strings: its folder and file names (bytes on disk, often Latin-1 when a Windows zip was
unpacked), the messages of its exceptions, anything it prints. Python hands such strings over with lone surrogates
(``'\\udce9'`` for an undecodable byte, or a literal ``'\\ud800'`` in an exception message), which cannot be
encoded as UTF-8: one of them used to end the whole run with ``UnicodeEncodeError`` and no gradebook. So:

* :func:`clean` turns any string into valid UTF-8 text, keeping what was there visible: an undecodable byte becomes
  ``\\xe9``, a lone surrogate ``\\ud800``, other control characters (NUL, ESC ...) their ``\\x..`` escape;
* :func:`name` does the same for a file or folder name given as ``str`` or ``bytes``;
* :func:`clean_tree` cleans every string in a JSON-like structure (what a sandbox sends back, a cache entry);
* :func:`csv_cell` neutralises a cell a spreadsheet would run as a formula (OWASP: prefix a single quote);
* :func:`capped` cuts a text at a size with a visible "truncated" note;
* :func:`steady` removes what differs between two runs of the same submission from a message (a temporary
  folder's random name, a memory address), so the same class gives byte-identical grades in any fresh folder.

>>> clean("caf\\udce9 \\ud800!")
'caf\\\\xe9 \\\\ud800!'
>>> name(b"Jos\\xe9")
'Jos\\\\xe9'
>>> csv_cell("=HYPERLINK(1)"), csv_cell("-1.50"), csv_cell("Ann")
("'=HYPERLINK(1)", '-1.50', 'Ann')
"""
from __future__ import annotations

import os
import re

#: Lone surrogates (never valid in UTF-8) and the control characters that have no business in a name or a message
#: (tab and newline are kept: :func:`course.questions.one_line` squashes them where one line is wanted).
_UNSAFE = re.compile("[\ud800-\udfff\x00-\x08\x0b-\x1f\x7f]")
#: What a spreadsheet runs as a formula when a cell starts with it (OWASP CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, smuggled through by the 'surrogateescape' handler
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}" if code > 0xFF else f"\\x{code:02x}"


def clean(text: object, limit: int | None = None) -> str:
    """``text`` as a string that is valid UTF-8, unsafe characters escaped, at most ``limit`` characters."""
    text = text if isinstance(text, str) else str(text)
    text = _UNSAFE.sub(_escape, text)
    return capped(text, limit) if limit is not None else text


def name(raw: str | bytes | os.PathLike) -> str:
    """A file or folder name for display: undecodable bytes shown as ``\\xNN``, tabs and newlines escaped too
    (a name is one line), never an encoding error."""
    raw = os.fspath(raw)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "surrogateescape")
    return clean(raw).replace("\t", "\\x09").replace("\n", "\\x0a")


def clean_tree(value, limit: int | None = None, steady_values: bool = False):
    """Every string (keys too) of a JSON-like structure cleaned with :func:`clean`; other values as they are.

    With ``steady_values`` every value (not the keys, which are the grader's own) also goes through :func:`steady`.
    """
    if isinstance(value, str):
        cleaned = clean(value, limit)
        return steady(cleaned) if steady_values else cleaned
    if isinstance(value, dict):
        return {clean_tree(k): clean_tree(v, limit, steady_values) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_tree(v, limit, steady_values) for v in value]
    return value


#: What a message from a sandbox may hold that changes from run to run, and what it becomes: the working folder of a
#: sandbox under reduced isolation (``tempfile``'s 8 random characters after the worker's prefix) is shown as the
#: fixed working folder of full isolation; other temporary names (``tempfile``'s default ``tmp...``, a probe's
#: ``.chNN-...``, the course's ``course-...``) lose their random part (other names are left alone: a folder such as
#: ``site-packages`` looks just like one); an object's address (``<function f at 0x7f3a...>``) its digits.
_VOLATILE = ((re.compile(r"[^\s'\"]*/submission-[a-z0-9_]{8}(?![a-z0-9_])"), "/tmp/submission"),
             (re.compile(r"(/(?:tmp|\.ch\d\d-|course-[a-z]*-?))[a-z0-9_]{8}(?=/|$|[\s'\")])"), r"\1…"),
             (re.compile(r"\b0x[0-9a-fA-F]{6,16}\b"), "0x…"))


def steady(text: str) -> str:
    """``text`` without what changes between two runs of the same code: temporary names, memory addresses.

    >>> steady("No such file: '/tmp/submission-k2j4_x9a/.ch07-ab12cd34/last.pt'")
    "No such file: '/tmp/submission/.ch07-…/last.pt'"
    >>> steady("got <function f at 0x7f3a1c2b9e50> from /tmp/tmpq8w3e1z0")
    'got <function f at 0x…> from /tmp/tmp…'
    >>> steady("3 cases passed; row 12345678, abc-defghijk and /usr/lib/site-packages/x stay")
    '3 cases passed; row 12345678, abc-defghijk and /usr/lib/site-packages/x stay'
    """
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def capped(text: str, limit: int, note: str = "… [truncated]") -> str:
    """``text`` cut to at most ``limit`` characters, the cut said with ``note``.

    >>> capped("abcdefghij", 8, "…")
    'abcdefg…'
    """
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(note))] + note


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a cell starting with ``= + - @``, tab or CR gets a leading ``'``.

    Plain numbers (``-1.50``) are left alone: a spreadsheet reads them as numbers, not formulas.
    """
    text = clean(value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text
