"""Step 2: read one notebook, check it is one, extract its code; flag code that tampers with the interpreter.

Runs in the grader's own process on untrusted bytes, so every step is bounded and nothing is executed:

1. :func:`read_bytes` opens only a regular file with one link (``O_NOFOLLOW``, then ``fstat`` of the opened
   descriptor: a symbolic link, FIFO, device or hard link to another file, a solution notebook say, is
   ``unreadable``), and checks the size before reading;
2. :func:`read` parses the JSON (size-capped) into code sources and static flags: cheap, and all the cache key needs;
3. only on a cache miss, :func:`to_python` turns IPython syntax into Python under a *work budget*. IPython's
   transformer re-tokenises the whole cell after each piece of special syntax it rewrites, so a cell of a few
   thousand ``!ls`` lines costs minutes; the budget (characters tokenised per notebook, a quarter of it per cell)
   stops that within about a second, and the cells it stopped are run as they are (their IPython lines fail as a
   ``SyntaxError`` in the sandbox, that cell only), with a note. The budget counts work, not seconds, so the same
   bytes always give the same cells, whatever the machine's load: the cache stays honest.
   Doing the transform in the sandbox instead would also bound it, but the sandbox would then have to import
   IPython in every fork and the cell list would no longer be fixed before the run; this way it is both.
"""
from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from . import text

#: Largest notebook accepted (bytes). Outputs included: a student's notebook with a few plots is well below this.
MAX_NOTEBOOK_BYTES = 25 * 1024 * 1024
#: Largest total code accepted (characters).
MAX_CODE_CHARS = 2_000_000
#: Work budget of the IPython transform of one notebook: characters tokenised in all (about a second of CPU). An
#: ordinary notebook needs a few times its code's length; the budget only stops pathological IPython syntax.
TRANSFORM_BUDGET = 300_000
#: One cell may spend at most this fraction (1/CELL_SHARE) of the notebook's budget.
CELL_SHARE = 4

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
    "touches the grader's API watch": r"\bcourse\.apis\b|\bfrom\s+course\s+import\s+.*\bapis\b|\bsetprofile\b|"
                                      r"\bsettrace\b|\bsys\.monitoring\b",
    "reads or writes outside its folder": r"open\(\s*['\"](/|\.\./)|Path\(\s*['\"](/|\.\./)",
}


@dataclass
class Source:
    """A readable notebook before any transform: its bytes, its code cells' sources and the static flags."""

    raw: bytes
    sources: list[str]
    flags: list[str] = field(default_factory=list)


@dataclass
class Extracted:
    """The code cells of a readable notebook, ready to run, plus the flags and notes raised by reading them."""

    cells: list[str]
    raw: bytes
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Unreadable(Exception):
    """The file is not a notebook we can grade; the message says why in one line."""


def read_bytes(path: Path) -> bytes:
    """The file's bytes: only a regular file with a single link, under the size cap, is read.

    The checks are made on the opened descriptor (``fstat``), so the file cannot be swapped for a link between the
    check and the read; opening with ``O_NONBLOCK`` keeps a FIFO from blocking the grader.
    """
    try:
        before = os.lstat(path)
    except OSError as exc:
        raise Unreadable(f"cannot open ({exc.strerror})") from None
    if not stat.S_ISREG(before.st_mode):
        raise Unreadable(f"not a regular file ({_kind(before.st_mode)}); only a plain file is graded")
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise Unreadable(f"cannot open ({exc.strerror})") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (before.st_dev, before.st_ino):
            raise Unreadable("the file changed while it was opened; only a plain file is graded")
        if info.st_nlink != 1:
            raise Unreadable(f"the file has {info.st_nlink} hard links (a link to another file?); only a file of "
                             f"its own is graded")
        if info.st_size > MAX_NOTEBOOK_BYTES:
            raise Unreadable(f"{info.st_size / 1e6:.0f} MB, over the {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB limit")
        if info.st_size == 0:
            raise Unreadable("the file is empty")
        data = handle.read(MAX_NOTEBOOK_BYTES + 1)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise Unreadable(f"over the {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB limit")
    return data


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"


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
    # JSON may carry lone surrogates ("\\ud800"): the cells go to the sandbox as valid UTF-8 text
    return [text.clean(source) if _has_surrogate(source) else source for source in sources]


def _has_surrogate(source: str) -> bool:
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class _OutOfBudget(Exception):
    pass


def _bounded_manager(budget: list[int]):
    """IPython's transformer, charged for every re-tokenisation of a cell against a shared budget."""
    from IPython.core.inputtransformer2 import TransformerManager

    class Bounded(TransformerManager):
        def do_one_token_transform(self, lines):
            if not any("!" in line or "%" in line or "?" in line for line in lines):
                return False, lines  # no IPython syntax left: nothing to tokenise (most cells)
            cost = sum(map(len, lines)) + 1
            budget[0] -= cost
            budget[1] -= cost
            if budget[0] < 0 or budget[1] < 0:
                raise _OutOfBudget
            return super().do_one_token_transform(lines)

    return Bounded()


def to_python(sources: str | list[str], budget: int = TRANSFORM_BUDGET):
    """Cells' IPython syntax (magics, ``!shell``) as plain Python calling ``get_ipython()``; the sandbox's
    ``get_ipython()`` does nothing, so magics and hooks are inert.

    Given one source, returns its Python. Given a list, returns ``(cells, notes)``: the work of the whole list is
    bounded by ``budget`` characters tokenised, a quarter of it per cell; a cell over its share, and the cells past
    the budget, are returned as they are, with a note.
    """
    if isinstance(sources, str):
        cells, _ = to_python([sources], budget)
        return cells[0]
    left = [budget, 0]  # the notebook's budget, and the current cell's (a share, so one cell cannot spend it all)
    manager = _bounded_manager(left)
    cells, notes, skipped = [], [], []
    for index, source in enumerate(sources):
        left[1] = budget // CELL_SHARE
        if left[0] < 0:
            cells.append(source)
            skipped.append(index)
            continue
        try:
            cells.append(manager.transform_cell(source))
        except _OutOfBudget:
            cells.append(source)
            skipped.append(index)
        except Exception:  # a cell IPython cannot parse is left as is; it will fail as a SyntaxError in the sandbox
            cells.append(source)
    if skipped:
        listed = ", ".join(str(i + 1) for i in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        notes.append(f"code cell(s) {listed}: too much IPython syntax (magics, '!' lines) to translate within the "
                     f"grader's budget; run as plain Python")
    return cells, notes


def flags_of(cells: list[str]) -> list[str]:
    """The red flags raised by any cell, in a fixed order."""
    joined = "\n".join(cells)
    return [name for name, pattern in FLAGS.items() if re.search(pattern, joined)]


def read(path: Path) -> Source:
    """Read and validate a notebook, without transforming it; raises :class:`Unreadable` with a one-line reason."""
    raw = read_bytes(path)
    sources = code_cells(raw)  # a notebook without code is readable: its questions come out not-attempted
    return Source(raw=raw, sources=sources, flags=flags_of(sources))


def transform(source: Source) -> Extracted:
    """The cells ready to run (the bounded IPython transform): only called on a cache miss."""
    cells, notes = to_python(source.sources)
    return Extracted(cells=cells, raw=source.raw, flags=source.flags, notes=notes)


def extract(path: Path) -> Extracted:
    """Read, validate and transform a notebook; raises :class:`Unreadable` with a one-line reason."""
    return transform(read(path))
