"""Self-checks a student runs from an exercise notebook.

>>> from course.check import Checker
>>> check = Checker("01_softmax")      # doctest: +SKIP
>>> check("softmax", softmax)          # doctest: +SKIP
[PASS] softmax · one row of small logits
[FAIL] softmax · large logits (up to 1000): NaN at (0, 1) where the answer is finite ...
softmax: 5 of 6 checks passed.

Every line starts with ``[PASS]``, ``[FAIL]`` or ``[TODO]`` so tests (and people) can scan for them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .questions import Question, Verdict, run_case

PASS, FAIL, TODO = "[PASS]", "[FAIL]", "[TODO]"
#: Set by the grader: checks print nothing and cost nothing while a submission is graded.
SKIP_ENV = "COURSE_SKIP_CHECKS"


@dataclass
class CheckReport:
    """The verdicts of one question's visible cases."""

    question: str
    results: list[tuple[str, Verdict]] = field(default_factory=list)

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
        report = run_checks(question, obj)
        self.reports[question_name] = report
        print_report(report)


def _judge_side(chapter_id: str):
    from .chapters import get_chapter

    return get_chapter(chapter_id)


def run_checks(question: Question, obj: Any) -> CheckReport:
    """Run every visible case of ``question`` on ``obj`` in this process."""
    report = CheckReport(question.name)
    for case in question.cases():
        report.results.append((case.label, run_case(question, obj, case)))
    return report


def print_report(report: CheckReport) -> None:
    """One line per case, or a single TODO line when the stub has not been touched yet."""
    verdicts = [verdict for _, verdict in report.results]
    if verdicts and all(v.message.startswith("not attempted") for v in verdicts):
        print(f"{TODO} {report.question}: {verdicts[0].message}")
        return
    for label, verdict in report.results:
        if verdict.passed:
            print(f"{PASS} {report.question} · {label}")
        else:
            print(f"{FAIL} {report.question} · {label}: {verdict.message}")
    total = len(report.results)
    print(f"{report.question}: {report.passed} of {total} checks passed.")
