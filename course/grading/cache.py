"""Results keyed by what determines them: the submission's bytes, the tests, the secret, the limits, the grader.

A run writes one small JSON file per graded submission as soon as it is judged (atomically), so a run killed
half-way loses at most the submissions in flight, and a re-run regrades only what changed.

Entries are written as valid UTF-8 (every string cleaned by :mod:`course.grading.text`, read back cleaned too, so an
entry written by an older grader cannot fail a re-run) and capped at :data:`MAX_ENTRY_BYTES`: a larger entry keeps
its points and statuses, drops its per-case detail and says so (``truncated``).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import cache
from pathlib import Path

from . import GRADER_VERSION, text

#: Largest cache entry (bytes of JSON). A notebook's grades with their messages are a few kilobytes.
MAX_ENTRY_BYTES = 256 * 1024


@cache
def _sources_digest(chapter_module_files: tuple[str, ...]) -> str:
    """A hash of the code that decides a grade: the chapter's probes and judges, the question model, the grader."""
    package = Path(__file__).resolve().parent
    files = sorted(package.glob("*.py")) + [package.parent / "questions.py", *map(Path, chapter_module_files)]
    digest = hashlib.sha256(GRADER_VERSION.encode())
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def chapter_files(chapter_id: str) -> tuple[str, ...]:
    """The source files of a chapter's judge side and probe side."""
    import importlib

    from ..chapters import all_chapters

    question = all_chapters()[chapter_id].questions[0]
    return tuple(importlib.import_module(fn.__module__).__file__ for fn in (question.judge, question.probe))


def key(raw: bytes, chapter_id: str, secret: bytes, limits: dict) -> str:
    """The cache key of one submission."""
    digest = hashlib.sha256()
    for part in (raw, chapter_id.encode(), secret, json.dumps(limits, sort_keys=True).encode(),
                 _sources_digest(chapter_files(chapter_id)).encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def load(folder: Path, cache_key: str) -> dict | None:
    """The cached entry, or None (a damaged entry counts as absent)."""
    path = folder / f"{cache_key}.json"
    try:
        if path.stat().st_size > 2 * MAX_ENTRY_BYTES:
            return None
        entry = text.clean_tree(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, RecursionError):
        return None
    return entry if isinstance(entry, dict) and isinstance(entry.get("grades"), list) else None


def store(folder: Path, cache_key: str, entry: dict) -> None:
    """Write an entry atomically (temp file, then rename), cleaned and within the size cap."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / f"{cache_key}.json", json.dumps(capped_entry(text.clean_tree(entry)), sort_keys=True))


def capped_entry(entry: dict) -> dict:
    """The entry itself if its JSON fits :data:`MAX_ENTRY_BYTES`; else without per-case detail, with a note."""
    if len(json.dumps(entry)) <= MAX_ENTRY_BYTES:
        return entry
    grades = [{**g, "cases": [], "message": text.capped(str(g.get("message", "")), 300)} for g in entry["grades"]]
    run = {k: v for k, v in entry.get("run", {}).items() if k not in ("cell_errors", "remarks", "flags")}
    run["remarks"] = [f"truncated: the detail of this result was over {MAX_ENTRY_BYTES // 1024} KB"]
    return {**entry, "grades": grades, "run": run}


def write_atomic(path: Path, text: str) -> None:
    """Write text with '\\n' line endings to a temporary file next to ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # backslashreplace: the last line of defence, should a lone surrogate get this far, is an escape, not a crash
        with os.fdopen(descriptor, "w", encoding="utf-8", errors="backslashreplace", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
