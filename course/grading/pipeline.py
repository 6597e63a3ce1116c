"""The grader's steps in order: discover → read → (cache) → run in sandboxes → judge → gradebook, feedback, report."""
from __future__ import annotations

import dataclasses
import os
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..chapters import all_chapters
from ..errors import CourseError
from ..notebooks import ROOT
from . import (cache, discover, executors, feedback, gradebook, judging, lateness, layouts, lms, people, pool,
               reading, report, roster, sandbox, shards, text)

#: Longest text kept from any one string a sandbox sends back (an exception message, a cell error).
MAX_TEXT = 2000
#: Cell errors kept per submission (the feedback shows the first five).
MAX_CELL_ERRORS = 20


@dataclass
class Options:
    """Everything the command line can set."""

    submissions: Path
    out: Path
    workers: int = 2
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    secret_file: Path | None = None  # None: the instructor's own (judging.default_secret_path)
    seed_file: Path | None = None    # deprecated name of secret_file (--seed-file)
    chapters: list[str] | None = None
    assignment: Path | None = None
    progress: bool = True
    layout: str = "auto"                 # plain, canvas, moodle (layouts.py)
    roster: Path | None = None           # roster.py
    late: lateness.Policy = field(default_factory=lateness.Policy)
    bom: bool = False                    # CSVs with a UTF-8 byte-order mark (Excel)
    executor: str = "local"        # where sandboxes run: "local", "dask" (needs scheduler) or "dask-local"
    scheduler: str | None = None   # a Dask scheduler's address, tcp://HOST:PORT
    shard: tuple[int, int] | None = None  # (I, N): grade only the students of shard I of N (1-based)


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
    chosen_by: str = ""

    def paragraph(self, out: Path) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        isolation = pool.isolation()
        chosen = f" ({self.chosen_by})" if self.chosen_by else ""
        return (f"Graded {self.students} students on {', '.join(self.notebooks) or 'no notebook'}{chosen} in "
                f"{self.seconds:.1f} s: {self.graded} submissions ran in sandboxes, {self.cached} came from the "
                f"cache. Question results: {counts or 'none'}. {self.flagged} submissions flagged for a look. "
                f"Sandboxes: {isolation}. Wrote {out / 'grades.csv'}, {out / 'summary.csv'}, "
                f"{out / 'report.html'} and {out / 'feedback'}/.")


#: What belongs to a (student, notebook) slot or to this run rather than to the notebook's bytes: never stored in or
#: taken from the cache, since two students may hand in identical files under different names, and the time a job
#: waited in the queue (or whether it came from the cache) says nothing about the next run.
_PER_SLOT = ("student", "notebook", "notes", "queued_seconds", "worker_seconds", "cached")


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
    position: int = 0      # the slot's place among all slots of the class (shards are merged in this order)


def _assignment(options: Options, root: Path) -> discover.Assignment:
    """What was assigned: ``--chapters``, ``--assignment FILE``, or (neither) what most of the class handed in."""
    known = list(all_chapters())
    if options.chapters and options.assignment:
        raise CourseError("give either --chapters or --assignment, not both")
    if options.assignment:
        return discover.load_assignment(options.assignment, known)
    if options.chapters:
        discover.check_known(options.chapters, known)
        return discover.Assignment(list(dict.fromkeys(options.chapters)), {}, "--chapters")
    if not discover.students(root):
        return discover.Assignment([], {}, "no student folder")
    majority = discover.majority_chapters(root, known)
    if not majority:
        raise CourseError("no chapter was handed in by more than half of the students: say which were assigned "
                          "with --chapters or --assignment FILE")
    return discover.Assignment(majority, {}, "handed in by most students; set them with --chapters")


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
        source = reading.read(sub.path)
    except reading.Unreadable as exc:
        slot.grades = judging.rows_without_run(chapter, sub.student, notebook, "unreadable", f"unreadable: {exc}")
        return False
    slot.run["flags"] = source.flags
    slot.cache_key = cache.key(source.raw, chapter.id, secret, limits)
    # the cache is looked up before any work on the untrusted code (the IPython transform): a re-run costs nothing
    entry = cache.load(cache_dir, slot.cache_key)
    if entry is not None:
        _from_cache(slot, entry)
        slot.run["cached"] = True
        return True
    if any(job.meta["key"] == slot.cache_key for job in jobs):
        slot.follows = True  # the same bytes are already queued (untouched exercises often are): run them once
        return False
    extracted = reading.transform(source)
    slot.run["remarks"] = extracted.notes
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
    """Verdicts for one answered job (in this process only). Every string of the answer is cleaned first."""
    sub, chapter = slot.submission, slot.chapter
    header = text.clean_tree(header, MAX_TEXT, steady_values=True)  # the same answer, the same bytes, any run
    if "worker_error" in header:
        slot.grades = judging.rows_without_run(chapter, sub.student, sub.chapter_id, "crashed", header["worker_error"])
        return
    slot.grades = judging.judge_notebook(chapter, cases[chapter.id], header["questions"], arrays, sub.student,
                                         sub.chapter_id)
    errors = header.get("cell_errors", {})
    kept = sorted(errors, key=int)[:MAX_CELL_ERRORS]
    slot.run.update(seconds=header.get("seconds"), peak_mb=header.get("peak_mb"), attempts=header.get("attempts"),
                    cell_errors={k: errors[k] for k in kept})
    if len(errors) > len(kept):
        slot.run["remarks"] = [*slot.run.get("remarks", []), f"{len(errors)} cells raised errors; the first "
                                                             f"{len(kept)} are kept"]


def _crashed(slot: Slot, exc: BaseException, log_dir: Path | None = None) -> None:
    """A slot whose handling raised in the grader: its own ``crashed`` row; the gradebook is never lost."""
    sub = slot.submission
    slot.job, slot.follows = None, False
    slot.run = {"flags": [], "notes": [], **slot.run, "student": sub.student, "notebook": sub.chapter_id}
    reason = text.clean(exc, 200)
    if log_dir is not None:  # the output folder's path is no part of the grade (another folder, the same message)
        reason = reason.replace(str(log_dir.parent), "OUT")
    message = f"the grader failed on this notebook ({type(exc).__name__}: {text.steady(reason)})"
    slot.grades = judging.rows_without_run(slot.chapter, sub.student, sub.chapter_id, "crashed", message)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / "grader-errors.log", "a", encoding="utf-8", errors="backslashreplace") as log:
            log.write(f"{sub.student} · {sub.chapter_id}\n{traceback.format_exc()}\n")


def _notes_for_feedback(slot: Slot) -> list[str]:
    notes = list(slot.run.get("notes", [])) + list(slot.run.get("remarks", []))
    for index, error in list(slot.run.get("cell_errors", {}).items())[:5]:
        notes.append(f"Code cell {int(index) + 1}: {error}")
    return notes


@dataclass
class Run:
    """What grading produced before any output is written: every slot with its grades and run facts.

    :func:`collect` makes it and :func:`publish` writes it, so a run that is assembled another way (shards merged,
    another executor) ends in the same files.
    """

    out: Path
    root: Path  # the folder graded; for a Canvas or Moodle download a private copy, gone once collect() returns
    assignment: discover.Assignment
    slots: list[Slot]
    strays: list[str]
    stray_files: list[str]
    graded: int = 0
    cached: int = 0
    start: float = field(default_factory=time.perf_counter)
    # The LMS facts (lms.join), keyed by the student's name as every output shows it (Submission.student)
    identities: dict[str, people.Identity] = field(default_factory=dict)  # student -> LMS identity
    lateness: dict[tuple[str, str], people.Lateness] = field(default_factory=dict)  # (student, notebook) -> lateness
    layout: str = "plain"  # the layout the submissions came in
    bom: bool = False
    shard: tuple[int, int] | None = None  # (I, N) when this run graded one shard of the class
    total_slots: int = 0                  # slots of the whole class (equal to len(slots) unless sharded)
    secret_digest: str = ""               # shards.secret_digest of the secret: shards merge only with one secret
    isolation: dict[str, str] = field(default_factory=dict)  # what the sandboxes had (pool.ISOLATION), per worker


def grade(options: Options) -> Outcome:
    """Grade a folder of submissions into ``options.out`` (a shard also saves its run for ``grade-merge``)."""
    run = collect(options)
    if run.shard:
        shards.save(run, run.out / shards.RUN_FILE)
    return publish(run)


def merge(out: Path, shard_dirs: list[Path]) -> Outcome:
    """Publish the shards' runs as the one run they are parts of (``python -m course grade-merge``)."""
    run = shards.merge(out, shard_dirs)
    pool.ISOLATION.clear()
    pool.ISOLATION.update(run.isolation)  # what the shards' sandboxes had, for the closing paragraph
    return publish(run)


def collect(options: Options) -> Run:
    """Discover, read, run in sandboxes (or take from the cache) and judge every slot; write nothing but the cache.

    ``options.submissions`` may be a folder or a zip in any of the layouts of :mod:`.layouts`; the roster and the
    late policy are read before anything is graded, so a malformed one costs nothing.
    """
    given, out = options.submissions.resolve(), options.out.resolve()
    if out == given or given in out.parents:
        raise CourseError("--out must not be inside the submissions folder")
    entries = roster.read(options.roster) if options.roster else None
    with layouts.imported(given, options.layout) as imported:
        return _collect(options, imported, entries)


def _collect(options: Options, imported: layouts.Imported, entries: list | None) -> Run:
    start = time.perf_counter()
    root, out = imported.root, options.out.resolve()
    if not root.is_dir():
        raise CourseError(f"{root}: no such folder of submissions")
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    secret_file = _secret_file(options, out)
    secret = judging.load_secret(secret_file)
    assignment = _assignment(options, root)
    chapter_ids = assignment.chapters
    chapters = all_chapters()
    cases = {cid: judging.hidden_cases(chapters[cid], secret) for cid in chapter_ids}
    limits = options.limits.__dict__
    cache_dir = out / ".cache"
    log_dir = out / ".logs"

    slots, strays = _slots(root, chapter_ids, chapters)
    joined = lms.join(slots, imported, chapter_ids, entries, options.late)
    slots += [Slot(sub, chapters[sub.chapter_id], position=len(slots) + n) for n, sub in enumerate(joined.missing)]
    total_slots = len(slots)
    if options.shard:
        slots = [slot for slot in slots
                 if shards.shard_of(slot.submission.folder or slot.submission.student, options.shard[1])
                 == options.shard[0]]
    _say(f"Found {_count(len({s.submission.student for s in slots}), 'student')}, "
         f"{_count(len(chapter_ids), 'notebook')}: {_count(len(slots), 'submission')}.")
    jobs: list[pool.Job] = []
    cached = 0
    for slot in slots:
        try:
            cached += _prepare(slot, secret, cases, limits, jobs, cache_dir)
        except Exception as exc:  # noqa: BLE001 - one notebook's problem is its own crashed row
            _crashed(slot, exc, log_dir)
    by_job = {slot.job.index: slot for slot in slots if slot.job}
    _say(_startup_line(slots, jobs, cached, options.workers))

    if jobs:
        hidden = [str(root), str(options.submissions.resolve()), str(out), str(secret_file), str(ROOT / "solutions"),
                  str(ROOT / "tests")]
        log_dir.mkdir(exist_ok=True)
        executor = executors.create(options.executor, max(1, min(options.workers, len(jobs))), options.limits,
                                    hidden, log_dir, options.scheduler)
        progress = _progress(len(jobs), options.progress)
        try:
            for job, header, arrays in executor.run(jobs):
                slot = by_job[job.index]
                try:
                    _judge(slot, header, arrays, cases)
                    slot.run.update(queued_seconds=job.queued_seconds, worker_seconds=job.worker_seconds)
                    # a judge's timeout or a cluster's failure (workers lost) may not last: graded again next time
                    if not header.get("executor_error") and \
                            not any("could not be judged" in g.message for g in slot.grades):
                        cache.store(cache_dir, slot.cache_key, {"grades": [g.to_json() for g in slot.grades],
                                                                "run": {k: v for k, v in slot.run.items()
                                                                        if k not in _PER_SLOT}})
                except Exception as exc:  # noqa: BLE001
                    _crashed(slot, exc, log_dir)
                progress.update(1)
        finally:
            progress.close()
            executor.close()
        leaders = {slot.cache_key: slot for slot in slots if slot.job}
        for slot in slots:
            if slot.follows:
                try:
                    leader = leaders[slot.cache_key]
                    _from_cache(slot, {"grades": [g.to_json() for g in leader.grades],
                                       "run": {k: v for k, v in leader.run.items() if k not in _PER_SLOT}})
                except Exception as exc:  # noqa: BLE001
                    _crashed(slot, exc, log_dir)
    stray_files = discover.stray_files(root) + [f"{name} (not a student's notebook in this layout)"
                                                 for name in imported.ignored]
    return Run(out=out, root=root, assignment=assignment, slots=slots, strays=strays, stray_files=stray_files,
               graded=len(jobs), cached=cached, start=start, identities=joined.identities,
               lateness=joined.lateness, layout=imported.layout, bom=options.bom, shard=options.shard,
               total_slots=total_slots, secret_digest=shards.secret_digest(secret),
               isolation=dict(pool.ISOLATION) if jobs else {})


def publish(run: Run) -> Outcome:
    """Write grades.csv, summary.csv, one feedback page per slot and report.html; the closing paragraph's facts."""
    out, slots, chapter_ids = run.out, run.slots, run.assignment.chapters
    log_dir = out / ".logs"
    chapters = all_chapters()
    grades = [g for slot in slots for g in slot.grades]
    order = {(cid, q.name): i for cid in chapter_ids for i, q in enumerate(chapters[cid].questions)}
    gradebook.write(out, grades, order, run.assignment.points, run.lateness, run.bom)
    lms.write_identities(out, run.layout, run.identities, run.lateness)
    for slot in slots:
        try:
            sub = slot.submission
            feedback.write(out, sub.student, sub.chapter_id, slot.grades, _notes_for_feedback(slot),
                           run.lateness.get((sub.student, sub.chapter_id)))
        except OSError as exc:  # a page that cannot be written is logged; the gradebook is already safe
            _crashed_page(slot, exc, log_dir)
    runs = [slot.run for slot in slots]
    outcome = Outcome(students=len({s.submission.student for s in slots}), notebooks=chapter_ids, graded=run.graded,
                      cached=run.cached, statuses=Counter(g.status for g in grades),
                      seconds=time.perf_counter() - run.start, privileged=sandbox.privileged(),
                      flagged=sum(bool(r.get("flags") or r.get("notes") or r.get("remarks")) for r in runs),
                      chosen_by=run.assignment.source)
    report.write(out, grades, runs, outcome.paragraph(out), run.stray_files, run.strays, run.identities,
                 run.lateness, outcome.seconds)
    return outcome


def _secret_file(options: Options, out: Path) -> Path:
    """The secret's file: the one named, else an older grader's secret in this output folder (so the folder's grades
    do not change), else the instructor's own. Refused where a sandbox could see it."""
    named = options.secret_file or options.seed_file
    if named:
        path = Path(named).expanduser().resolve()
    elif (out / judging.LEGACY_SECRET).is_file():
        path = out / judging.LEGACY_SECRET
        print(f"note: {out} has a grading secret of its own ({judging.LEGACY_SECRET}, made by an older grader); it "
              f"is used so that this folder's grades stay as they were. A new output folder uses your grading "
              f"secret ({judging.default_secret_path()}) unless --secret-file names another.", file=sys.stderr)
    else:
        path = judging.default_secret_path().resolve()
    if any(path == Path(p) or Path(p) in path.parents for p in sandbox.allowed_paths(str(ROOT))):
        raise CourseError(f"{path}: the grading secret must not be in a folder the sandboxes can read (the Python "
                          f"installation, its packages, the course's probe side): keep it in your configuration "
                          f"folder or name another place with --secret-file")
    return path


def _slots(root: Path, chapter_ids: list[str], chapters: dict) -> tuple[list[Slot], list[str]]:
    """Every (student, assigned notebook) slot, and the notebooks handed in for no assigned chapter.

    A stray notebook is noted on the student's first slot (their feedback) and listed in the report; it is graded
    into nobody's rows. Two folders whose names only differ in undecodable bytes get distinct shown names.
    """
    slots, strays, shown = [], [], set()
    for folder in discover.students(root):
        subs = discover.find(root, folder, chapter_ids)
        name = subs[0].student if subs else text.name(folder)
        unique, number = name, 2
        while unique in shown:
            unique, number = f"{name} ({number})", number + 1
        shown.add(unique)
        extra = discover.stray_notebooks(root, folder, chapter_ids)
        strays += [f"{unique}: {path}" for path in extra]
        for index, sub in enumerate(subs):
            slot = Slot(dataclasses.replace(sub, student=unique), chapters[sub.chapter_id], position=len(slots))
            if index == 0 and extra:
                listed = ", ".join(f"'{path}'" for path in extra[:5]) + (" ..." if len(extra) > 5 else "")
                note = f"not graded (not part of this assignment): {listed}"
                slot.submission = dataclasses.replace(slot.submission, note="; ".join(filter(None, [sub.note, note])))
            slots.append(slot)
    return slots, strays


def _crashed_page(slot: Slot, exc: OSError, log_dir: Path) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "grader-errors.log", "a", encoding="utf-8", errors="backslashreplace") as log:
        log.write(f"feedback page of {slot.submission.student} · {slot.submission.chapter_id}: {exc}\n")


def _say(line: str) -> None:
    """A status line on stderr (stdout is kept for the closing paragraph, which scripts may read)."""
    print(line, file=sys.stderr, flush=True)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _startup_line(slots: list[Slot], jobs: list[pool.Job], cached: int, workers: int) -> str:
    """What happens next, said before the workers' silent start-up (they import the frameworks for seconds)."""
    follows = sum(slot.follows for slot in slots)
    without = len(slots) - len(jobs) - cached - follows
    known = [f"{cached} from the cache" if cached else "",
             f"{follows} identical to another (run once)" if follows else "",
             f"{without} missing or unreadable" if without else ""]
    head = f"{_count(len(jobs), 'submission')} to run" + "".join(f", {part}" for part in known if part)
    if not jobs:
        return f"{head}: no sandbox needed."
    started = max(1, min(workers, len(jobs)))
    return (f"{head}. Starting {_count(started, 'sandbox worker')} (each imports TensorFlow and PyTorch first: "
            f"about 10 s)...")


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
