"""Helpers shared by the chapters' mutant tests: run a wrong answer through the self-check, read its diagnoses, or
grade it in this process the way the grader does."""
from __future__ import annotations

from course.check import run_checks
from course.grading import judging
from course.questions import describe_exception, to_plain


def check_failures(chapter, question_name: str, obj) -> list[str]:
    """The messages of every visible case ``obj`` fails in ``chapter``'s question (empty when it passes)."""
    report = run_checks(chapter.question(question_name), obj)
    return [verdict.message for _, verdict in report.results if not verdict.passed]


def assert_named(messages: list[str], phrase: str, every: bool = True) -> None:
    """The check failed, and its diagnosis names the mistake (in every failing case unless told otherwise)."""
    assert messages, "the check passed a wrong answer"
    named = [phrase in message for message in messages]
    assert all(named) if every else any(named), messages


def grade_in_process(question, obj, cases) -> judging.QuestionGrade:
    """``obj``'s row as the grader scores it on ``cases`` (points, status, verdicts), probed in this process instead
    of a sandbox: for our own answers (mutants), never for untrusted code."""
    arrays, entries = {}, []
    for number, case in enumerate(cases):
        try:
            outputs = to_plain(question.probe(obj, case))
        except Exception as exc:  # a mutant that raises fails the case, as in the sandbox
            entries.append({"status": "error", "message": describe_exception(exc)})
            continue
        for position, key in enumerate(outputs):
            arrays[f"{question.name}/c{number}k{position}"] = outputs[key]
        entries.append({"status": "ok", "keys": list(outputs)})
    return judging.judge_question(question, cases, {"status": "ran", "cases": entries}, arrays, "mutant", "test")
