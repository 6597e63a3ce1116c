"""Execute a notebook in place with nbclient, the way the tests and the book will run it."""
from __future__ import annotations

import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .errors import CourseError
from .notebooks import read_notebook, to_text


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 120) -> nbformat.NotebookNode:
    """Run every cell of ``nb`` in a fresh python3 kernel started in ``cwd``; raises on the first failing cell."""
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def coalesce_streams(outputs: list) -> list:
    """Merge consecutive outputs of the same stream into one, as Jupyter shows them.

    The self-checks flush each line as soon as it is judged, so how a cell's text is cut into stream outputs depends
    on timing; merged, the committed notebook is the same whatever the timing (nbval merges them the same way).
    """
    merged = []
    for output in outputs:
        if (output.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == output.get("name")):
            merged[-1]["text"] = merged[-1]["text"] + output["text"]
        else:
            merged.append(output)
    return merged


def execute_in_place(path: str | Path, timeout: int = 120) -> float:
    """Execute a notebook and save it with its outputs; returns the seconds it took."""
    path = Path(path)
    nb = read_notebook(path)
    start = time.perf_counter()
    try:
        execute(nb, path.parent, timeout)
    except CellExecutionError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise CourseError(f"{path}: a cell failed: {lines[-1][:200] if lines else exc}") from None
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
        if cell.get("outputs"):
            cell.outputs = coalesce_streams(cell.outputs)
    path.write_text(to_text(nb), encoding="utf-8")
    return time.perf_counter() - start
