"""Step 2: read one notebook, check it is one, extract its code; flag code that tampers with the interpreter.

Runs in the grader's own process on untrusted bytes, so it only parses (size-capped JSON) and never executes.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

#: Largest notebook accepted (bytes). Outputs included: a student's notebook with a few plots is well below this.
MAX_NOTEBOOK_BYTES = 25 * 1024 * 1024
#: Largest total code accepted (characters).
MAX_CODE_CHARS = 2_000_000

#: Static red flags: patterns that have no business in an exercise. They do not change a score (the sandbox makes
#: them harmless); they are listed in the report so the instructor can look.
FLAGS = {
    "IPython hooks or transformers": r"get_ipython\(\)\s*\.\s*(events|input_transformers|ast_transformers|"
                                     r"set_custom_exc|showtraceback|register_magic)",
    "exits the interpreter": r"\bos\._exit\b|\bsys\.exit\b|\bos\.kill\b|\bsignal\.",
    "patches modules or builtins": r"\bsys\.modules\b|\bbuiltins\b|__builtins__|(np|numpy|torch|math|tf)\.\w+(\.\w+)*"
                                   r"\s*=(?!=)",
    "spawns processes or threads": r"\bsubprocess\b|\bos\.(fork|system|popen|spawn)|\bmultiprocessing\b|"
                                   r"\bthreading\b",
    "low-level access": r"\bctypes\b|\bsocket\b|\bimportlib\b",
    "reads or writes outside its folder": r"open\(\s*['\"](/|\.\./)|Path\(\s*['\"](/|\.\./)",
}


@dataclass
class Extracted:
    """The code cells of a readable notebook, ready to run, plus the flags raised by reading them."""

    cells: list[str]
    raw: bytes
    flags: list[str] = field(default_factory=list)


class Unreadable(Exception):
    """The file is not a notebook we can grade; the message says why in one line."""


def read_bytes(path: Path) -> bytes:
    """The file's bytes, refusing links, non-files and files over the cap without reading them whole."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise Unreadable(f"cannot open ({exc.strerror})") from None
    if not os.path.isfile(path) or os.path.islink(path):
        raise Unreadable("not a regular file")
    if info.st_size > MAX_NOTEBOOK_BYTES:
        raise Unreadable(f"{info.st_size / 1e6:.0f} MB, over the {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB limit")
    if info.st_size == 0:
        raise Unreadable("the file is empty")
    with open(path, "rb") as handle:
        return handle.read(MAX_NOTEBOOK_BYTES + 1)


def code_cells(raw: bytes) -> list[str]:
    """The source of each code cell (v4 notebooks, and v3 ones via their worksheets)."""
    try:
        nb = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise Unreadable("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise Unreadable(f"not valid JSON (truncated or edited by hand?): {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise Unreadable("JSON nested too deeply") from None
    if not isinstance(nb, dict):
        raise Unreadable("not a notebook (the JSON is not an object)")
    cells = nb.get("cells")
    if cells is None and isinstance(nb.get("worksheets"), list):  # nbformat 3
        cells = [c for ws in nb["worksheets"] if isinstance(ws, dict) for c in ws.get("cells", [])]
    if not isinstance(cells, list):
        raise Unreadable("not a notebook (no list of cells)")
    sources = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", cell.get("input", ""))
        if isinstance(source, list):
            source = "".join(part for part in source if isinstance(part, str))
        if not isinstance(source, str):
            raise Unreadable("a code cell's source is not text")
        sources.append(source)
    if sum(map(len, sources)) > MAX_CODE_CHARS:
        raise Unreadable(f"more than {MAX_CODE_CHARS} characters of code")
    return sources


def to_python(source: str) -> str:
    """A cell's IPython syntax (magics, ``!shell``) as plain Python calling ``get_ipython()``; the sandbox's
    ``get_ipython()`` does nothing, so magics and hooks are inert."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # a cell IPython cannot parse is left as is; it will fail as a SyntaxError in the sandbox
        return source


def flags_of(cells: list[str]) -> list[str]:
    """The red flags raised by any cell, in a fixed order."""
    text = "\n".join(cells)
    return [name for name, pattern in FLAGS.items() if re.search(pattern, text)]


def extract(path: Path) -> Extracted:
    """Read, validate and extract a notebook; raises :class:`Unreadable` with a one-line reason."""
    raw = read_bytes(path)
    sources = code_cells(raw)  # a notebook without code is readable: its questions come out not-attempted
    cells = [to_python(source) for source in sources]
    return Extracted(cells=cells, raw=raw, flags=flags_of(sources))
