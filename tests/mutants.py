"""Helpers shared by the chapters' mutant tests: run a wrong answer through the self-check, read its diagnoses."""
from __future__ import annotations

from course.check import run_checks


def check_failures(chapter, question_name: str, obj) -> list[str]:
    """The messages of every visible case ``obj`` fails in ``chapter``'s question (empty when it passes)."""
    report = run_checks(chapter.question(question_name), obj)
    return [verdict.message for _, verdict in report.results if not verdict.passed]


def assert_named(messages: list[str], phrase: str, every: bool = True) -> None:
    """The check failed, and its diagnosis names the mistake (in every failing case unless told otherwise)."""
    assert messages, "the check passed a wrong answer"
    named = [phrase in message for message in messages]
    assert all(named) if every else any(named), messages
