"""``python -m course check NOTEBOOK...``: what the grader would say, before handing in.

The notebook goes through the grader's own steps (:mod:`course.grading`): its reading rules (file name, readable
JSON, code extracted), a fresh sandboxed process that runs the cells and probes each question, and its judging;
only the cases differ: the visible ones, the same the notebook's self-checks use, so nothing secret is shown.
Every use of the grader is in :func:`read_as_grader`, :func:`grade_with_grader` and :func:`grader_file_name`, so a
change of the grader's API is fixed in one place. The student's notebook is only read, never written (the grader
reads a copy).
"""
from __future__ import annotations

import ast
import importlib
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CourseError
from .questions import Chapter

PASS, FAIL, TODO = "[PASS]", "[FAIL]", "[TODO]"
#: A notebook whose run takes more than this share of the grader's time limit is reported as at risk.
SLOW_SHARE = 0.5
#: Modules a question marked ``apis="numpy"`` may not use (the grader gives such code NumPy only).
FRAMEWORK_MODULES = ("torch", "tensorflow", "keras", "jax", "course")


@dataclass
class QuestionResult:
    """One question as the grader would score it on the visible cases."""

    name: str
    status: str          # the grader's status: passed, failed, error, not-attempted, timeout, memory, crashed
    points: float
    max_points: int
    message: str
    failing: list[tuple[str, str]] = field(default_factory=list)  # (case label, diagnosis)
    depends_on: str = ""  # an earlier question, failing, whose function this one calls: the one to fix


@dataclass
class Report:
    """Everything ``check`` found about one notebook."""

    path: Path
    chapter: Chapter
    questions: list[QuestionResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # each one costs points at grading
    notes: list[str] = field(default_factory=list)      # worth knowing, costs nothing
    seconds: float = 0.0
    sandbox_seconds: float | None = None  # the notebook's run in the grader's sandbox
    limit_seconds: float | None = None    # the grader's limit for one submission

    @property
    def points(self) -> float:
        return round(sum(q.points for q in self.questions), 2)

    @property
    def max_points(self) -> int:
        return sum(q.max_points for q in self.questions)

    @property
    def ok(self) -> bool:
        return not self.problems and all(q.status == "passed" for q in self.questions)


# --- the grader's API, used here and nowhere else -------------------------------------------------------------

def grader_file_name(path: Path, chapter_ids: list[str]) -> tuple[str | None, str]:
    """The chapter the grader would file ``path`` under, by its name alone, and its note ("" if exact)."""
    from .grading import discover

    with tempfile.TemporaryDirectory(prefix="course-check-") as tmp:
        folder = Path(tmp) / "you"
        folder.mkdir()
        (folder / path.name).write_bytes(b"{}")  # only the name matters to discover
        for slot in discover.find(Path(tmp), "you", chapter_ids):
            if slot.path is not None:
                return slot.chapter_id, slot.note
    return None, ""


def read_as_grader(path: Path):
    """The grader's reading of ``path`` (size, JSON, code cells), or a one-line :class:`CourseError`."""
    from .grading import reading

    try:
        return reading.extract(path)
    except reading.Unreadable as exc:
        raise CourseError(f"{path}: not a notebook the grader can read: {exc}") from None


def _import_frameworks() -> None:
    for name in ("tensorflow", "keras", "torch"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def grade_with_grader(items: list[tuple[Path, Chapter]], workers: int = 1,
                      limits: dict | None = None) -> list[tuple[list, dict, list, list]]:
    """Run each notebook through the grader's reading, sandbox and judging, with the visible cases.

    Per notebook: the grader's question rows, its run header (cell errors, seconds, limits), the code cells as
    it extracted them and its reading flags. ``limits`` overrides the grader's default limits (its
    ``sandbox.Limits`` fields). Raises :class:`CourseError` when the grader cannot read a file.
    """
    from .grading import judging, pool, sandbox
    from .notebooks import ROOT

    limits = sandbox.Limits(**(limits or {}))
    prepared, jobs = [], []
    for index, (path, chapter) in enumerate(items):
        extracted = read_as_grader(path)
        cases = {q.name: q.cases() for q in chapter.questions}
        meta, body = judging.encode_job(chapter, cases, extracted.cells, extracted.raw, f"{chapter.id}.ipynb")
        prepared.append((chapter, cases, extracted))
        jobs.append(pool.Job(index, meta, body))
    answers: dict[int, tuple[dict, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="course-check-") as logs:
        hidden = sorted({str(path.resolve().parent) for path, _ in items} |
                        {str(ROOT / "solutions"), str(ROOT / "tests")})
        started = pool.start_workers(max(1, min(workers, len(jobs))), limits, hidden, Path(logs))
        # The judges need the frameworks in this process: import them while the workers run the notebooks
        # (the workers are already started, so nothing of these imports is inherited by them).
        warm = threading.Thread(target=_import_frameworks, daemon=True)
        warm.start()
        try:
            for job, header, arrays in pool.run_jobs(started, jobs, limits, hidden, Path(logs)):
                answers[job.index] = (header, arrays)
            warm.join()
        finally:
            for worker in started:
                worker.close()
    results = []
    for index, (chapter, cases, extracted) in enumerate(prepared):
        header, arrays = answers[index]
        if "worker_error" in header:
            rows = judging.rows_without_run(chapter, "you", chapter.id, "crashed", header["worker_error"])
        else:
            rows = judging.judge_notebook(chapter, cases, header["questions"], arrays, "you", chapter.id)
        results.append((rows, {**header, "limits": limits}, extracted.cells, extracted.flags))
    return results

# ---------------------------------------------------------------------------------------------------------------


def chapter_of(path: Path) -> tuple[Chapter, list[str]]:
    """The notebook's chapter, by the grader's naming rule or else by its ``Checker("NN_topic")`` call;
    with the problems its name would cause."""
    from .chapters import all_chapters

    chapters = all_chapters()
    chapter_id, note = grader_file_name(path, list(chapters))
    if chapter_id:
        return chapters[chapter_id], ([f"the grader expects {chapter_id}.ipynb; it will {note}"] if note else [])
    text = path.read_text(encoding="utf-8", errors="replace")
    named = [c for c in re.findall(r"Checker\(\s*\\?[\"'](\d\d_\w+)\\?[\"']", text) if c in chapters]
    if named:
        return chapters[named[0]], [f"wrong file name: the grader looks for {named[0]}.ipynb and would find "
                                    f"nothing (every question 0 points); rename '{path.name}'"]
    raise CourseError(f"{path}: not a notebook of any chapter (the chapters are: {', '.join(chapters)})")


def forbidden_uses(cells: list[str], chapter: Chapter) -> list[str]:
    """Questions allowed NumPy only (``apis="numpy"``) whose definition uses a framework module."""
    numpy_only = {q.name for q in chapter.questions if getattr(q, "apis", "any") == "numpy"}
    if not numpy_only:
        return []
    aliases: dict[str, str] = {}
    definitions: dict[str, ast.AST] = {}
    for source in cells:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    aliases[(alias.asname or alias.name).split(".")[0]] = alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = node.module.split(".")[0]
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in numpy_only:
                definitions[node.name] = node
    found = []
    for name, node in definitions.items():
        used = sorted({aliases[n.id] for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in aliases
                       and aliases[n.id] in FRAMEWORK_MODULES})
        if used:
            found.append(f"`{name}` uses {', '.join(used)}: the grader runs it with NumPy only, so it will fail "
                         f"there; write it in NumPy")
    return found


def check(path: str | Path) -> Report:
    """Run one notebook the way the grader will, on the visible cases; the file is only read."""
    return check_all([path])[0]


def check_all(paths: list, workers: int = 1, limits: dict | None = None) -> list[Report]:
    """:func:`check` for several notebooks, sharing the grader's workers (they import the frameworks once)."""
    paths = [Path(path) for path in paths]
    named = []
    for path in paths:  # every notebook is validated before the slow part starts
        if not path.is_file():
            raise CourseError(f"{path}: no such notebook")
        read_as_grader(path)  # a file that is not a notebook stops here, in one line
        named.append(chapter_of(path))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="course-check-") as tmp:
        copies = []  # the grader reads copies: the student's files cannot be touched
        for number, path in enumerate(paths):
            copy = Path(tmp, str(number), path.name)
            copy.parent.mkdir()
            shutil.copyfile(path, copy)
            copies.append(copy)
        results = grade_with_grader([(copy, chapter) for copy, (chapter, _) in zip(copies, named)], workers,
                                    limits)
    seconds = (time.monotonic() - started) / max(1, len(paths))
    return [_report(path, chapter, problems, result, seconds)
            for path, (chapter, problems), result in zip(paths, named, results)]


def _report(path: Path, chapter: Chapter, problems: list[str], result: tuple, seconds: float) -> Report:
    rows, header, cells, flags = result
    report = Report(path, chapter, problems=list(problems), seconds=seconds)
    for row in rows:
        failing = [(case.label, case.message) for case in row.cases if not case.passed]
        report.questions.append(QuestionResult(row.question, row.status, row.points, row.max_points, row.message,
                                                failing, row.depends_on))
    for index, error in sorted(header.get("cell_errors", {}).items(), key=lambda item: int(item[0])):
        if error.startswith("NotImplementedError"):
            report.problems.append(f"code cell {int(index) + 1} stops at `raise NotImplementedError`: it uses "
                                   f"an exercise you have not written yet")
        else:
            report.problems.append(f"code cell {int(index) + 1} fails at top level: {error} (at grading the "
                                   f"cells after it still run, but what it defines is missing)")
    limits, taken = header["limits"], header.get("seconds")
    report.sandbox_seconds, report.limit_seconds = taken, limits.submission_seconds
    if taken and taken > SLOW_SHARE * limits.submission_seconds:
        report.problems.append(f"the notebook took {taken:.0f} s in the grader's sandbox, over half its "
                               f"{limits.submission_seconds:.0f} s limit: make the slow cells faster")
    report.problems += forbidden_uses(cells, chapter)
    report.notes += [f"the instructor's report will flag: {flag}" for flag in flags]
    return report


def format_report(report: Report) -> str:
    """The report as the student reads it: one line per question, then the problems."""
    ran = (f"; its run took {report.sandbox_seconds:.1f} s of the grader's {report.limit_seconds:.0f} s"
           if report.sandbox_seconds is not None else "")
    lines = [f"{report.path} · chapter {report.chapter.id} · checked as the grader runs it, on the visible "
             f"cases{ran}"]
    for q in report.questions:
        score = f"{q.points:g}/{q.max_points} points"
        if q.status == "passed":
            lines.append(f"{PASS} {q.name}: passed · {score}")
        elif q.status == "not-attempted":
            lines.append(f"{TODO} {q.name}: not attempted · {score}")
            if q.depends_on:
                lines.append(f"       {q.message}")
        elif q.depends_on:  # one bug, named once: where it is, not in every question that inherits it
            lines.append(f"{FAIL} {q.name}: {q.status} · {score}")
            lines.append(f"       {q.message}")
        else:
            lines.append(f"{FAIL} {q.name}: {q.status} · {score}")
            for label, message in q.failing[:3] or [("", q.message)]:
                lines.append(f"       {label + ': ' if label else ''}{message}")
            if len(q.failing) > 3:
                lines.append(f"       (+{len(q.failing) - 3} more failing cases)")
    lines.append(f"Total: {report.points:g}/{report.max_points} points on the visible cases "
                 f"(the grader uses other cases of the same kinds).")
    for problem in report.problems:
        lines.append(f"PROBLEM: {problem}")
    for note in report.notes:
        lines.append(f"note: {note}")
    lines.append("Ready to hand in." if report.ok else "Not ready: fix the lines above, then check again.")
    return "\n".join(lines)
