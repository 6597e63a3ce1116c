"""Results keyed by what determines them: the submission's bytes, the tests, the secret, the limits, the grader.

A run writes one small JSON file per graded submission as soon as it is judged (atomically), so a run killed
half-way loses at most the submissions in flight, and a re-run regrades only what changed.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import cache
from pathlib import Path

from . import GRADER_VERSION


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
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def store(folder: Path, cache_key: str, entry: dict) -> None:
    """Write an entry atomically (temp file, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / f"{cache_key}.json", json.dumps(entry, sort_keys=True))


def write_atomic(path: Path, text: str) -> None:
    """Write text with '\\n' line endings to a temporary file next to ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
