"""The grader's steps in order: discover → read → (cache) → run in sandboxes → judge → gradebook, feedback, report."""
from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..chapters import all_chapters
from ..errors import CourseError
from ..notebooks import ROOT
from . import cache, discover, feedback, gradebook, judging, pool, reading, report, sandbox


@dataclass
class Options:
    """Everything the command line can set."""

    submissions: Path
    out: Path
    workers: int = 2
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    seed_file: Path | None = None
    chapters: list[str] | None = None
    progress: bool = True


@dataclass
class Outcome:
    """What a run did, for the closing paragraph and the tests."""

    students: int
    notebooks: list[str]
    graded: int
    cached: int
    statuses: Counter
    seconds: float
    privileged: bool
    flagged: int

    def paragraph(self, out: Path) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        isolation = pool.isolation()
        return (f"Graded {self.students} students on {', '.join(self.notebooks) or 'no notebook'} in "
                f"{self.seconds:.1f} s: {self.graded} submissions ran in sandboxes, {self.cached} came from the "
                f"cache. Question results: {counts or 'none'}. {self.flagged} submissions flagged for a look. "
                f"Sandboxes: {isolation}. Wrote {out / 'grades.csv'}, {out / 'summary.csv'}, "
                f"{out / 'report.html'} and {out / 'feedback'}/.")


#: What belongs to a (student, notebook) slot rather than to the notebook's bytes: never taken from the cache,
#: since two students may hand in identical files under different names.
_PER_SLOT = ("student", "notebook", "notes")


@dataclass
class Slot:
    """One (student, notebook) being graded."""

    submission: discover.Submission
    chapter: object
    grades: list = field(default_factory=list)
    run: dict = field(default_factory=dict)
    job: pool.Job | None = None
    cache_key: str = ""
    follows: bool = False  # graded by another slot's job (identical bytes)


def _chapter_ids(options: Options) -> list[str]:
    known = list(all_chapters())
    if options.chapters:
        unknown = [c for c in options.chapters if c not in known]
        if unknown:
            raise CourseError(f"unknown chapter(s) {', '.join(unknown)}; the chapters are: {', '.join(known)}")
        return list(options.chapters)
    return discover.expected_chapters(options.submissions, known) or known


def _prepare(slot: Slot, secret: bytes, cases: dict, limits: dict, jobs: list[pool.Job], cache_dir: Path) -> bool:
    """Fill a slot from what needs no sandbox (missing, unreadable, cached); else queue its job. True if cached."""
    sub, chapter = slot.submission, slot.chapter
    notebook = sub.chapter_id
    slot.run = {"student": sub.student, "notebook": notebook, "flags": [], "notes": [sub.note] if sub.note else [],
                "seconds": None, "peak_mb": None}
    if sub.path is None:
        slot.grades = judging.rows_without_run(chapter, sub.student, notebook, sub.status, sub.problem)
        return False
    try:
        extracted = reading.extract(sub.path)
    except reading.Unreadable as exc:
        slot.grades = judging.rows_without_run(chapter, sub.student, notebook, "unreadable", f"unreadable: {exc}")
        return False
    slot.run["flags"] = extracted.flags
    slot.cache_key = cache.key(extracted.raw, chapter.id, secret, limits)
    entry = cache.load(cache_dir, slot.cache_key)
    if entry is not None:
        _from_cache(slot, entry)
        return True
    if any(job.meta["key"] == slot.cache_key for job in jobs):
        slot.follows = True  # the same bytes are already queued (untouched exercises often are): run them once
        return False
    meta, body = judging.encode_job(chapter, cases[chapter.id], extracted.cells, extracted.raw, f"{notebook}.ipynb")
    slot.job = pool.Job(len(jobs), {**meta, "key": slot.cache_key}, body)
    jobs.append(slot.job)
    return False


def _from_cache(slot: Slot, entry: dict) -> None:
    """Fill a slot from a cache entry (which may come from another student with an identical file)."""
    slot.grades = [judging.QuestionGrade.from_json(dict(g)) for g in entry["grades"]]
    for grade in slot.grades:
        grade.student = slot.submission.student
    slot.run.update({k: v for k, v in entry["run"].items() if k not in _PER_SLOT})


def _judge(slot: Slot, header: dict, arrays: dict, cases: dict) -> None:
    """Verdicts for one answered job (in this process only)."""
    sub, chapter = slot.submission, slot.chapter
    if "worker_error" in header:
        slot.grades = judging.rows_without_run(chapter, sub.student, sub.chapter_id, "crashed", header["worker_error"])
        return
    answers = header["questions"]
    slot.grades = [judging.judge_question(q, cases[chapter.id][q.name], answers[q.name], arrays, sub.student,
                                          sub.chapter_id) for q in chapter.questions]
    errors = header.get("cell_errors", {})
    slot.run.update(seconds=header.get("seconds"), peak_mb=header.get("peak_mb"), attempts=header.get("attempts"),
                    cell_errors={k: errors[k] for k in sorted(errors, key=int)})


def _notes_for_feedback(slot: Slot) -> list[str]:
    notes = list(slot.run.get("notes", []))
    for index, error in list(slot.run.get("cell_errors", {}).items())[:5]:
        notes.append(f"Code cell {int(index) + 1}: {error}")
    return notes


def grade(options: Options) -> Outcome:
    """Grade a folder of submissions into ``options.out``."""
    start = time.perf_counter()
    root, out = options.submissions.resolve(), options.out.resolve()
    if not root.is_dir():
        raise CourseError(f"{root}: no such folder of submissions")
    if out == root or root in out.parents:
        raise CourseError("--out must not be inside the submissions folder")
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    seed_file = (options.seed_file or out / ".grading-seed").resolve()
    secret = judging.load_secret(seed_file)
    chapter_ids = _chapter_ids(options)
    chapters = all_chapters()
    cases = {cid: judging.hidden_cases(chapters[cid], secret) for cid in chapter_ids}
    limits = options.limits.__dict__
    cache_dir = out / ".cache"

    slots = [Slot(sub, chapters[sub.chapter_id]) for student in discover.students(root)
             for sub in discover.find(root, student, chapter_ids)]
    jobs: list[pool.Job] = []
    cached = sum(_prepare(slot, secret, cases, limits, jobs, cache_dir) for slot in slots)
    by_job = {slot.job.index: slot for slot in slots if slot.job}

    if jobs:
        hidden = [str(root), str(out), str(seed_file), str(ROOT / "solutions"), str(ROOT / "tests")]
        log_dir = out / ".logs"
        log_dir.mkdir(exist_ok=True)
        workers = pool.start_workers(max(1, min(options.workers, len(jobs))), options.limits, hidden, log_dir)
        progress = _progress(len(jobs), options.progress)
        try:
            for job, header, arrays in pool.run_jobs(workers, jobs, options.limits, hidden, log_dir):
                slot = by_job[job.index]
                _judge(slot, header, arrays, cases)
                cache.store(cache_dir, slot.cache_key, {"grades": [g.to_json() for g in slot.grades],
                                                        "run": {k: v for k, v in slot.run.items()
                                                                if k not in _PER_SLOT}})
                progress.update(1)
        finally:
            progress.close()
            for worker in workers:
                worker.close()
        for slot in slots:
            if slot.follows:
                _from_cache(slot, cache.load(cache_dir, slot.cache_key))

    grades = [g for slot in slots for g in slot.grades]
    order = {(cid, q.name): i for cid in chapter_ids for i, q in enumerate(chapters[cid].questions)}
    gradebook.write(out, grades, order)
    for slot in slots:
        feedback.write(out, slot.submission.student, slot.submission.chapter_id, slot.grades,
                       _notes_for_feedback(slot))
    runs = [slot.run for slot in slots]
    outcome = Outcome(students=len({s.submission.student for s in slots}), notebooks=chapter_ids, graded=len(jobs),
                      cached=cached, statuses=Counter(g.status for g in grades),
                      seconds=time.perf_counter() - start, privileged=sandbox.privileged(),
                      flagged=sum(bool(r.get("flags") or r.get("notes")) for r in runs))
    report.write(out, grades, runs, outcome.paragraph(out), discover.stray_files(root))
    return outcome


class _NoProgress:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, desc="grading", unit="submission", file=sys.stderr, dynamic_ncols=True)
