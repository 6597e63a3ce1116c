"""Self-checks a student runs from an exercise notebook.

>>> from course.check import Checker
>>> check = Checker("01_softmax")      # doctest: +SKIP
>>> check("softmax", softmax)          # doctest: +SKIP
[PASS] softmax · one row of small logits
[FAIL] softmax · large logits (up to 1000): NaN at (0, 1) where the answer is finite ...
softmax: 5 of 6 checks passed.

Every line starts with ``[PASS]``, ``[FAIL]`` or ``[TODO]`` so tests (and people) can scan for them. Each case's
line is printed as soon as it is judged, and a case whose probe runs longer than :data:`CASE_SECONDS` is stopped and
reported with the usual cause of a hang in that question.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

from . import apis
from .questions import (Case, Question, Verdict, describe_exception, earning_cases, recording_calls, run_case,
                        to_plain)

PASS, FAIL, TODO = "[PASS]", "[FAIL]", "[TODO]"
#: Set by the grader: checks print nothing and cost nothing while a submission is graded.
SKIP_ENV = "COURSE_SKIP_CHECKS"
#: How long one visible case may run the student's code in the self-check (the grader has its own limit).
CASE_SECONDS = 60.0
#: Said after the time limit when a question gives no cause of its own.
HANG_CAUSE = "a loop whose exit condition is never met"


@dataclass
class CheckReport:
    """The verdicts of one question's visible cases."""

    question: str
    results: list[tuple[str, Verdict]] = field(default_factory=list)
    #: Why the passed checks would earn no points (they are passed by a trivial answer too), or "".
    refused: str = ""

    @property
    def passed(self) -> int:
        return sum(verdict.passed for _, verdict in self.results)

    @property
    def all_passed(self) -> bool:
        return bool(self.results) and self.passed == len(self.results)


class Checker:
    """The self-checks of one chapter; call it with a question name and the student's object."""

    def __init__(self, chapter_id: str):
        self.chapter_id = chapter_id
        self.reports: dict[str, CheckReport] = {}
        # In the grader's sandbox the judge side (course.chapters) does not exist: import it only when checking.
        self.chapter = None if os.environ.get(SKIP_ENV) else _judge_side(chapter_id)

    def __call__(self, question_name: str, obj: Any) -> None:
        if self.chapter is None:
            return
        question = self.chapter.question(question_name)
        printer = _StreamingPrinter(question.name)
        names = [q.name for q in self.chapter.questions]
        earlier = names[:names.index(question.name)] if question.name in names else []
        namespace = getattr(obj, "__globals__", None)  # a function's notebook namespace
        with recording_calls(namespace if isinstance(namespace, dict) else {}, earlier) as called:
            report = run_checks(question, obj, on_result=printer)
        self.reports[question_name] = report
        printer.finish(report)
        failed = [name for name in earlier if name in called and name in self.reports
                  and not self.reports[name].all_passed]
        if failed and not report.all_passed:  # one bug, named once: where it is
            print(f"{question.name}: it calls your `{failed[0]}`, which fails its own check above: fix "
                  f"`{failed[0]}` first; {question.name} may then pass as it is.", flush=True)


def _judge_side(chapter_id: str):
    from .chapters import get_chapter

    return get_chapter(chapter_id)


class CaseTimeout(BaseException):
    """Raised in the student's code when a case runs out of time (a BaseException, so ``except Exception`` in their
    code or in :func:`course.questions.run_case` does not swallow it)."""


def _on_alarm(signum, frame):
    raise CaseTimeout()


# The handler runs inside the student's code, under the API watch: it is the course's, not the answer's call.
apis.EXEMPT_CODE.add(_on_alarm.__code__)


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise :class:`CaseTimeout` in this thread after ``seconds``, restoring the previous SIGALRM handler and timer.

    A hung Python loop cannot be interrupted from another thread, but a signal handler runs in the main thread
    between two bytecodes. Where there is no SIGALRM (Windows) or this is not the main thread, there is no limit.
    """
    usable = (seconds and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    previous_timer = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if previous_timer[0]:  # someone else's timer was running: give it back what is left
            signal.setitimer(signal.ITIMER_REAL, *previous_timer)


def timeout_message(question: Question, seconds: float) -> str:
    """What a student reads when a case runs out of time: which limit, and what usually hangs in this question."""
    cause = getattr(question, "hang_cause", "") or HANG_CAUSE
    return f"stopped after {seconds:g} s without an answer; the usual cause here: {cause}"


def run_checks(question: Question, obj: Any, on_result=None, seconds: float | None = None) -> CheckReport:
    """Run every visible case of ``question`` on ``obj`` in this process, each probe under a time limit
    (``seconds``, :data:`CASE_SECONDS` unless given; 0 for none).

    ``on_result(case, verdict)`` is called as soon as each case is judged (the self-check prints it at once).
    """
    report = CheckReport(question.name)
    seconds = CASE_SECONDS if seconds is None else seconds
    cases = question.cases()
    for case in cases:
        verdict = _checked_case(question, obj, case, seconds)
        report.results.append((case.label, verdict))
        if on_result is not None:
            on_result(case, verdict)
    # the grader's rule, so that the two agree: passes that a trivial answer also gets earn nothing alone
    report.refused = earning_cases(question, cases, [verdict.passed for _, verdict in report.results],
                                    visible=True)[1]
    return report


def summary_line(report: CheckReport) -> str:
    """The last line of a question's check: how many checks passed, and whether they would earn points."""
    line = f"{report.question}: {report.passed} of {len(report.results)} checks passed."
    return f"{line[:-1]}, worth no points: {report.refused}." if report.refused else line


class _StreamingPrinter:
    """Prints each case's line as soon as it is judged; while every verdict so far says "not attempted" it waits, so
    an untouched stub still gets its single TODO line."""

    def __init__(self, question: str):
        self.question = question
        self.waiting: list[tuple[Case, Verdict]] = []
        self.streaming = False

    def __call__(self, case: Case, verdict: Verdict) -> None:
        if not self.streaming and not verdict.passed and verdict.message.startswith("not attempted"):
            self.waiting.append((case, verdict))
            return
        self.streaming = True
        for waiting_case, waiting_verdict in self.waiting:
            _print_case(self.question, waiting_case.label, waiting_verdict, waiting_case.skill)
        self.waiting = []
        _print_case(self.question, case.label, verdict, case.skill)

    def finish(self, report: CheckReport) -> None:
        if not self.streaming:
            print_report(report)  # nothing printed yet: every case said "not attempted" (or there are none)
            return
        print(summary_line(report), flush=True)


def _print_case(question: str, label: str, verdict: Verdict, skill: str = "") -> None:
    if verdict.passed:
        print(f"{PASS} {question} · {label}", flush=True)
    else:
        tests = f" (this case tests {skill})" if skill else ""
        print(f"{FAIL} {question} · {label}: {verdict.message}{tests}", flush=True)


def _checked_case(question: Question, obj: Any, case: Case, seconds: float) -> Verdict:
    """One case as the grader would see it: the probe under the question's API rule and the time limit, then the
    judge (which is not timed: it is the course's code, not the student's)."""
    try:
        with time_limit(seconds):
            # The watch sits inside the timer, so the timer's own frames are never taken for the answer's calls.
            outputs = to_plain(apis.call(getattr(question, "apis", None), question.probe, obj, case))
    except CaseTimeout:
        return Verdict(False, timeout_message(question, seconds))
    except apis.ForbiddenCall as exc:
        return Verdict(False, str(exc))
    except Exception as exc:  # any student error is a verdict, not a crash
        return Verdict(False, describe_exception(exc))
    return question.judge(case, outputs)


def print_report(report: CheckReport) -> None:
    """One line per case, or a single TODO line when the stub has not been touched yet."""
    verdicts = [verdict for _, verdict in report.results]
    if verdicts and all(v.message.startswith("not attempted") for v in verdicts):
        print(f"{TODO} {report.question}: {verdicts[0].message}")
        return
    for label, verdict in report.results:
        _print_case(report.question, label, verdict)
    print(summary_line(report))
