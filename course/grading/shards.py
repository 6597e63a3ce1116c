"""Shards for batch systems without Dask (Slurm job arrays, Kubernetes indexed jobs): ``--shard I/N`` and the merge.

A shard grades the students whose folder name hashes to it (SHA-256 of the name's bytes on disk, so every machine
and Python agrees, and all notebooks of a student are in one shard), writes its own outputs, and saves its
:class:`course.grading.pipeline.Run` to ``run.json``. ``grade-merge`` loads every shard's ``run.json``, checks that
they are the N shards of one class graded with one secret, and publishes the union in the order one run would have
had, so grades.csv, summary.csv, the report and the feedback are those of a single run.

The file is written by a generic encoder of dataclasses (tagged JSON, no pickle), so fields added to ``Run`` or to
the records it holds are saved and merged without a change here. Decoding builds only dataclasses of this package.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import time
from pathlib import Path

from ..errors import CourseError
from ..questions import Chapter
from . import GRADER_VERSION, cache, pool

RUN_FILE = "run.json"
FORMAT = 1


def parse(spec: str) -> tuple[int, int]:
    """``"I/N"`` as (I, N), with 1 <= I <= N."""
    try:
        index, count = (int(part) for part in spec.split("/"))
    except ValueError:
        raise CourseError(f"--shard {spec!r}: write it as I/N, e.g. 3/10") from None
    if not 1 <= index <= count:
        raise CourseError(f"--shard {spec!r}: I must be between 1 and N")
    return index, count


def shard_of(folder: str, count: int) -> int:
    """The shard (1..count) of a student folder: a stable hash of the name's bytes on disk."""
    digest = hashlib.sha256(str(folder).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def secret_digest(secret: bytes) -> str:
    """What a shard records of the secret: enough to tell two secrets apart, nothing to recover it."""
    return hashlib.sha256(b"course-grader shard\0" + secret).hexdigest()


# --- a generic, tagged JSON form of dataclasses ----------------------------------------------------------------

def to_plain(value):
    """JSON-able form of a value made of dataclasses, paths, tuples, dicts, lists and scalars."""
    if isinstance(value, Chapter):
        return {"__chapter__": value.id}  # by id: its questions hold code (judges, references)
    if isinstance(value, pool.Job):
        return None  # the job (notebook and case inputs) is not part of a result
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kind = type(value)
        return {"__dataclass__": f"{kind.__module__}:{kind.__qualname__}",
                "fields": {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, Path):
        return {"__path__": str(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [to_plain(v) for v in value]}
    if isinstance(value, dict):
        return {"__dict__": [[to_plain(k), to_plain(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a {type(value).__name__} in a shard's run file")


def from_plain(value, chapters: dict):
    """The inverse of :func:`to_plain`; only dataclasses defined in the course package are built."""
    if isinstance(value, list):
        return [from_plain(v, chapters) for v in value]
    if not isinstance(value, dict):
        return value
    if "__chapter__" in value:
        return chapters[value["__chapter__"]]
    if "__path__" in value:
        return Path(value["__path__"])
    if "__tuple__" in value:
        return tuple(from_plain(v, chapters) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_hashable(from_plain(k, chapters)): from_plain(v, chapters) for k, v in value["__dict__"]}
    if "__dataclass__" in value:
        module, _, name = value["__dataclass__"].partition(":")
        if not (module == "course" or module.startswith("course.")):
            raise CourseError(f"a shard's run file names {module}:{name}, which is not the course's")
        kind = importlib.import_module(module)
        for part in name.split("."):
            kind = getattr(kind, part)
        if not (isinstance(kind, type) and dataclasses.is_dataclass(kind)):
            raise CourseError(f"a shard's run file names {module}:{name}, which is not a record")
        known = {f.name for f in dataclasses.fields(kind) if f.init}
        return kind(**{k: from_plain(v, chapters) for k, v in value["fields"].items() if k in known})
    raise CourseError("a shard's run file has an object of no known kind")


def _hashable(key):
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


# --- saving a shard, merging shards ----------------------------------------------------------------------------

def save(run, path: Path) -> None:
    """Write a run (a shard's) to ``path`` atomically."""
    document = {"format": FORMAT, "grader": GRADER_VERSION,
                "seconds": time.perf_counter() - run.start, "run": to_plain(dataclasses.replace(run, start=0.0))}
    cache.write_atomic(path, json.dumps(document, sort_keys=True, allow_nan=True))


def load(path: Path) -> dict:
    """A shard's run file: the document with its run rebuilt."""
    from ..chapters import all_chapters

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CourseError(f"{path}: not a shard's run file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CourseError(f"{path}: not a shard's run file of this grader")
    if document.get("grader") != GRADER_VERSION:
        raise CourseError(f"{path}: written by grader version {document.get('grader')}, this is {GRADER_VERSION}")
    document["run"] = from_plain(document["run"], all_chapters())
    return document


def merge(out: Path, shard_dirs: list[Path]):
    """One run from the N shards of a class: checked to be complete, from one class, assignment and secret."""
    documents = [load(Path(folder) / RUN_FILE) for folder in shard_dirs]
    if not documents:
        raise CourseError("give the shard folders to merge")
    runs = [d["run"] for d in documents]
    counts = {run.shard[1] if run.shard else None for run in runs}
    if None in counts or len(counts) != 1:
        raise CourseError("every folder must be a shard of the same --shard I/N split")
    count = counts.pop()
    found = sorted(run.shard[0] for run in runs)
    if found != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(found))
        twice = sorted({i for i in found if found.count(i) > 1})
        raise CourseError(f"the shards do not make a whole: missing {missing or 'none'}, given twice {twice or 'none'}")
    first = runs[0]
    for run in runs:
        if run.secret_digest != first.secret_digest:
            raise CourseError("the shards were graded with different secrets (--secret-file)")
        if run.assignment != first.assignment or run.total_slots != first.total_slots:
            raise CourseError("the shards graded different assignments or different classes")
    slots = sorted((slot for run in runs for slot in run.slots), key=lambda slot: slot.position)
    if [slot.position for slot in slots] != list(range(first.total_slots)):
        raise CourseError("the shards' notebooks do not add up to the class (was a folder changed in between?)")
    identities, lateness, isolation = {}, {}, {}
    for run in runs:
        identities.update(run.identities)
        lateness.update(run.lateness)
        isolation.update({f"shard {run.shard[0]} {key}": phrase for key, phrase in run.isolation.items()})
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    seconds = sum(d["seconds"] for d in documents)
    return dataclasses.replace(first, out=out, slots=slots, graded=sum(run.graded for run in runs),
                               cached=sum(run.cached for run in runs), start=time.perf_counter() - seconds,
                               identities=identities, lateness=lateness, shard=None, isolation=isolation)
