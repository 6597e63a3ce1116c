"""Execute one book page (a MyST Markdown notebook) outside Sphinx, to iterate on it quickly.

``python -m course page book/01_softmax.md`` runs every cell the way the book build will, then reports the time,
any cell that failed, and any stderr output (which would fail the book build). ``--save out.ipynb`` keeps the result.
"""
from __future__ import annotations

import time
from pathlib import Path

import nbformat
from myst_nb.core.read import read_myst_markdown_notebook
from nbclient import NotebookClient

from .errors import CourseError


def read_page(path: Path) -> nbformat.NotebookNode:
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"{path}: no such page")
    return read_myst_markdown_notebook(path.read_text(encoding="utf-8"), path=str(path))


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """One line per cell output the book build would reject: errors and stderr streams."""
    found = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {index}: {output.get('ename')}: {output.get('evalue', '')[:160]}")
            elif output.get("output_type") == "stream" and output.get("name") == "stderr":
                first = output.get("text", "").strip().splitlines()[:1]
                found.append(f"cell {index}: stderr: {first[0][:160] if first else ''}")
    return found


def run_page(path: Path, save: Path | None = None, timeout: int = 120) -> int:
    nb = read_page(path)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    seconds = time.perf_counter() - start
    if save:
        Path(save).write_text(nbformat.writes(nb), encoding="utf-8")
    found = problems(nb)
    for line in found:
        print(line)
    print(f"{path}: {len(nb.cells)} cells in {seconds:.1f} s, {len(found)} problem(s)")
    return 1 if found else 0
