"""Hidden cases and verdicts. Runs only in the grader's process: expected values never exist anywhere else.

The hidden cases come from each question's own ``make_cases`` with a seed derived from a secret the sandbox never
sees, so they are drawn like the visible self-checks' cases but are not the same numbers.
"""
from __future__ import annotations

import hashlib
import os
import signal
import stat
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CourseError
from ..questions import (VISIBLE_SEED, Case, Chapter, Question, Verdict, case_digest, case_shares, earning_cases,
                         memo_for_case, one_line)
from . import text, wire

STATUSES = ("passed", "failed", "error", "not-attempted", "timeout", "memory", "crashed", "forbidden", "unreadable",
            "missing")
#: Wall-time limit of judging one case (s): a judge that takes longer on a student's output (an enormous array, an
#: input that sends a reference training run astray) marks that case ``error`` instead of holding up the grader.
#: Generous: a reference training run on a loaded machine takes seconds; this is against a judge that never ends.
JUDGE_SECONDS = 120.0
#: How the sandbox marks a case whose answer made a call its question forbids (course.apis): an "error" whose message
#: starts with this. (A submission could fake it, only to lose the whole question.)
FORBIDDEN = "forbidden: "


#: The instructor's grading secret, by default: one file per user, outside every output folder, so the same class
#: graded into any fresh folder gets the same hidden cases (and byte-identical grades).
SECRET_NAME = Path("course") / "grading-secret"
#: What an older grader kept in each output folder; still used (with a note) when no other secret is named, so a
#: folder graded before keeps its grades.
LEGACY_SECRET = ".grading-seed"


def default_secret_path(environ=os.environ) -> Path:
    """``$XDG_CONFIG_HOME/course/grading-secret``, or ``~/.config/course/grading-secret`` (XDG base directories:
    a relative ``XDG_CONFIG_HOME`` is ignored)."""
    config = environ.get("XDG_CONFIG_HOME", "")
    base = Path(config) if config and os.path.isabs(config) else Path(os.path.expanduser("~")) / ".config"
    return base / SECRET_NAME


def _create_secret(path: Path) -> None:
    """Write a new secret at ``path`` atomically: complete and mode 600 from the first instant it exists, and never
    over a secret another grader created meanwhile (a hard link fails if the name is taken)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".grading-secret-")  # mode 600
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(os.urandom(32).hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another run created it first: use theirs
    finally:
        os.unlink(temporary)


def load_secret(path: Path) -> bytes:
    """The grading secret at ``path``; created (32 random bytes, mode 600) the first time, then reused so every run
    draws the same hidden cases.

    A secret that every user of the machine can read or write is refused, never silently repaired: anyone could
    have read it (and computed the hidden cases) or replaced it. Group access is allowed (a teaching team sharing
    one secret through its group); the sandboxes never belong to any group.
    """
    try:
        if not path.exists():
            _create_secret(path)
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise CourseError(f"{path}: the grading secret must be a regular file")
        if mode & stat.S_IRWXO:
            raise CourseError(f"{path}: the grading secret can be read or changed by every user of this machine "
                              f"(mode {stat.S_IMODE(mode):o}). Make it private with `chmod 600 {path}`; if others "
                              f"may have read it, delete it instead (the next run creates a new one, which changes "
                              f"every hidden case)")
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise CourseError(f"{path}: cannot read or create the grading secret ({exc.strerror or exc}); name another "
                          f"file with --secret-file") from None
    if len(secret) < 16:
        raise CourseError(f"{path}: the grading secret is too short to be a secret")
    return secret


def question_seed(secret: bytes, chapter_id: str, question: str) -> int:
    """The seed of one question's hidden cases: a hash of the secret, the chapter and the question."""
    digest = hashlib.sha256(b"\0".join([secret, chapter_id.encode(), question.encode()])).digest()
    seed = int.from_bytes(digest[:8], "little")
    return seed + 1 if seed == VISIBLE_SEED else seed


def hidden_cases(chapter: Chapter, secret: bytes) -> dict[str, list[Case]]:
    """Every question's hidden cases."""
    return {q.name: q.cases(question_seed(secret, chapter.id, q.name)) for q in chapter.questions}


def encode_job(chapter: Chapter, cases: dict[str, list[Case]], cells: list[str], raw: bytes,
               notebook_name: str) -> tuple[dict, bytes]:
    """The job of one submission: meta for the worker (no student content) and the body for the sandbox."""
    arrays: dict[str, np.ndarray] = {"notebook": np.frombuffer(raw, dtype=np.uint8)}
    specs = {name: [{"label": case.label, "inputs": wire.split_plain(dict(case.inputs), f"{name}/{n}/", arrays)}
                    for n, case in enumerate(question_cases)]
             for name, question_cases in cases.items()}
    names = [q.name for q in chapter.questions]
    header = {"chapter": chapter.id, "notebook_name": notebook_name, "cells": cells, "questions": names,
              "cases": specs, "skip_cells": []}
    meta = {"questions": names, "case_counts": [len(cases[n]) for n in names], "cells": len(cells)}
    return meta, wire.encode(header, arrays)


@dataclass
class CaseResult:
    """One hidden case as the feedback shows it (the message is redacted there)."""

    label: str
    passed: bool
    message: str


@dataclass
class QuestionGrade:
    """One row of the gradebook, plus the per-case detail for the feedback page."""

    student: str
    notebook: str
    question: str
    points: float
    max_points: int
    status: str
    message: str
    hint: str = ""
    cases: list[CaseResult] = field(default_factory=list)
    depends_on: str = ""  # an earlier question, failing its own check, whose function this one's run called

    def to_json(self) -> dict:
        return {**{k: getattr(self, k) for k in ("student", "notebook", "question", "points", "max_points",
                                                 "status", "message", "hint", "depends_on")},
                "cases": [[c.label, c.passed, c.message] for c in self.cases]}

    @classmethod
    def from_json(cls, data: dict) -> "QuestionGrade":
        cases = [CaseResult(*entry) for entry in data.pop("cases")]
        return cls(**data, cases=cases)


#: Verdicts already given, keyed by question, case and a hash of the outputs: many students return bit-identical
#: arrays (the stub, the textbook solution), and a verdict depends only on the case and the outputs.
_VERDICTS: dict[tuple, Verdict] = {}


def _outputs_digest(outputs: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(outputs):
        array = np.ascontiguousarray(outputs[key], dtype=np.float64)
        digest.update(f"{key}\0{array.shape}\0".encode() + array.tobytes())
    return digest.hexdigest()


#: What a question's known mistakes give on a case, computed once per run and shared by every student's verdict:
#: keyed by the judge, a hash of the case's inputs, and (inside) the quantity, the diagnosis and a hash of the
#: expected value, so two questions or two quantities never share an entry.
_MISTAKES: dict[tuple, dict] = {}


class JudgeTimeout(Exception):
    """Judging one case took longer than :data:`JUDGE_SECONDS`."""


@contextmanager
def time_limit(seconds: float):
    """Raise :class:`JudgeTimeout` in this thread after ``seconds`` (SIGALRM, so only in the main thread; elsewhere,
    as in a test runner's thread, the block runs unbounded)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise JudgeTimeout(f"judging took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _judge_case(question: Question, case: Case, outputs: dict[str, np.ndarray], memo_key: tuple,
                seconds: float | None = None) -> Verdict:
    key = (*memo_key, _outputs_digest(outputs))
    if key not in _VERDICTS:
        memo = _MISTAKES.setdefault(memo_key, {})
        _VERDICTS[key] = _judge_uncached(question, case, outputs, memo, JUDGE_SECONDS if seconds is None else seconds)
    return _VERDICTS[key]


_warm = False


def warm_up() -> None:
    """Import the frameworks the judges use, once, before any judge is timed (their import is not the judge's time)."""
    global _warm
    if _warm:
        return
    _warm = True
    for name in ("torch", "keras"):
        try:
            __import__(name)
        except ImportError:
            pass


def _judge_uncached(question: Question, case: Case, outputs: dict[str, np.ndarray], memo: dict | None = None,
                    seconds: float = JUDGE_SECONDS) -> Verdict:
    warm_up()
    try:
        with time_limit(seconds), memo_for_case(memo if memo is not None else {}):
            return question.judge(case, outputs)
    except JudgeTimeout as exc:
        return Verdict(False, f"could not be judged: {exc} (an answer far off the expected size or range?)")
    except KeyError as exc:
        return Verdict(False, f"the answer is missing {exc} (wrong return type?)")
    except Exception as exc:  # a shape the judge did not foresee is the student's failure, said in one line
        return Verdict(False, one_line(f"could not be compared ({type(exc).__name__}: {exc})"))


def judge_notebook(chapter: Chapter, cases: dict[str, list[Case]], answers: dict, arrays: dict[str, np.ndarray],
                   student: str, notebook: str) -> list[QuestionGrade]:
    """Every question's row, in the chapter's order, each told which earlier questions failed (see
    :func:`judge_question`'s ``failed_earlier``)."""
    rows, failed_earlier = [], {}
    for question in chapter.questions:
        row = judge_question(question, cases[question.name], answers[question.name], arrays, student, notebook,
                             failed_earlier=failed_earlier)
        if row.status != "passed":
            failed_earlier[question.name] = row.status
        rows.append(row)
    return rows


def _depends_on(answer: dict, failed_earlier: dict[str, str]) -> str:
    """The first earlier failing question whose function the answer's run called ("" if none).

    ``calls`` comes from the sandbox (:func:`course.questions.recording_calls`), so it is hostile: it is only
    matched against the names in ``failed_earlier`` and changes nothing but the wording of a message and the hint.
    Earlier questions only: the chapters build later questions on earlier ones, and two functions calling each
    other are never both blamed on the other.
    """
    calls = answer.get("calls")
    if not isinstance(calls, list):
        return ""
    return next((name for name in failed_earlier if name in calls), "")


def _blame(row: QuestionGrade, kinds: list[str], dependency: str, dependency_status: str, passed: int) -> None:
    """Name the failing function this question called as the thing to fix, instead of diagnosing this one."""
    row.depends_on = dependency
    if row.status == "not-attempted":
        if dependency_status != "not-attempted":
            row.depends_on = ""
            return
        row.message = f"calls your `{dependency}`, which is not written yet: write `{dependency}` first"
        row.hint = (f"This question calls your `{dependency}`, which still raises NotImplementedError: write "
                    f"`{dependency}` first.")
        return
    row.message = (f"calls your `{dependency}`, which fails its own check: fix `{dependency}` first "
                   f"({passed}/{len(kinds)} cases passed)")
    row.hint = (f"This question calls your `{dependency}`, which fails its own check: fix `{dependency}` first; "
                f"this question may then pass as it is.")
    for case, kind in zip(row.cases, kinds):
        if kind == "failed":  # a diagnosis of this function's formula would point at the wrong function
            case.message = f"wrong result, from your `{dependency}`? (it fails its own check)"


def judge_question(question: Question, cases: list[Case], answer: dict, arrays: dict[str, np.ndarray],
                   student: str, notebook: str, seconds: float | None = None,
                   failed_earlier: dict[str, str] | None = None) -> QuestionGrade:
    """A question's row from the sandbox's answer: verdicts, points, status and a one-line message.

    ``failed_earlier`` maps the notebook's earlier questions that did not pass to their status: when this question
    failed and its run called one of them, the message and hint name that function as the one to fix (the points
    are the same either way).
    """
    row = QuestionGrade(student, notebook, question.name, 0.0, question.points, "", "", question.hint)
    status = answer.get("status")
    if status == "missing":
        row.status, row.message = "not-attempted", answer.get("message", "")
        return row
    if status != "ran":
        row.status, row.message = status, answer.get("message", "")
        return row
    kinds = []
    for number, (case, got) in enumerate(zip(cases, answer["cases"])):
        if got["status"] == "ok":
            outputs = {key: arrays[f"{question.name}/c{number}k{position}"]
                       for position, key in enumerate(got["keys"])}
            verdict = _judge_case(question, case, outputs, (question.judge, case_digest(case)), seconds)
            kinds.append("passed" if verdict.passed else
                         "error" if verdict.message.startswith("could not be judged") else "failed")
            message = verdict.message
            if not verdict.passed and getattr(case, "skill", ""):  # say what the lost points were for
                message = f"{message} (this case tests {case.skill})"
            row.cases.append(CaseResult(case.label, verdict.passed, message))
        elif got["status"] == "error" and str(got["message"]).startswith(FORBIDDEN):
            kinds.append("forbidden")
            row.cases.append(CaseResult(case.label, False, str(got["message"])[len(FORBIDDEN):]))
        else:
            kinds.append(got["status"])
            row.cases.append(CaseResult(case.label, False, got["message"]))
    passed = kinds.count("passed")
    # a case a trivial answer also passes earns only beside one it fails (course.questions.earning_cases)
    earns, refused = earning_cases(question, cases, [k == "passed" for k in kinds])
    row.points = round(question.points * sum(s for s, e in zip(case_shares(cases), earns) if e), 2)
    failing = [c for c in row.cases if not c.passed]
    if "forbidden" in kinds:  # a forbidden call anywhere costs the whole question, whatever the other cases gave
        row.points, row.status = 0.0, "forbidden"
        row.message = one_line(next(c.message for c, k in zip(row.cases, kinds) if k == "forbidden"), 300)
        return row
    if not failing:
        row.status = "passed"
    elif passed == 0 and set(kinds) == {"not-attempted"}:
        row.status = "not-attempted"
    elif "memory" in kinds:
        row.status = "memory"
    elif passed == 0 and set(kinds) <= {"error", "not-attempted"}:
        row.status = "error"
    else:
        row.status = "failed"
    if row.status == "not-attempted":
        row.message = failing[0].message
    elif refused:
        row.status = "failed"
        row.message = one_line(f"{passed}/{len(cases)} cases passed, worth 0 points: {refused}", 300)
    elif failing:
        more = f" (+{len(failing) - 1} more)" if len(failing) > 1 else ""
        row.message = one_line(f"{passed}/{len(cases)} cases passed; {failing[0].label}: {failing[0].message}", 300)
        row.message = row.message + more if len(row.message) < 300 else row.message
    else:
        row.message = f"{passed}/{len(cases)} cases passed"
    dependency = _depends_on(answer, failed_earlier or {})
    if dependency and row.status in ("failed", "error", "not-attempted"):
        _blame(row, kinds, dependency, failed_earlier[dependency], passed)
    return row


def rows_without_run(chapter: Chapter, student: str, notebook: str, status: str, message: str) -> list[QuestionGrade]:
    """The rows of a notebook that could not be run at all (missing or unreadable): zero points, one reason."""
    return [QuestionGrade(student, notebook, q.name, 0.0, q.points, status, one_line(text.clean(message), 300),
                          q.hint) for q in chapter.questions]
