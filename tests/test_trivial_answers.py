"""No trivial answer earns anything: constant, zeros-like, ones-like and identity mutants, and every question's own
trivial answers (a uniform distribution, an optimizer that never steps, a loop that never updates ...), graded the
way the grader grades them on hidden cases of several secret seeds, earn 0 points in every question of every
chapter; and every question keeps a case that no trivial answer passes, so that a right answer still earns."""
from __future__ import annotations

import numpy as np
import pytest

from course.chapters import all_chapters
from course.check import run_checks
from course.grading import judging
from course.questions import Case, Question, Verdict, earning_cases

from mutants import grade_in_process

# The mutants overflow, cast NaN and divide by zero on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

SECRETS = (b"trivial-answers-secret-1", b"trivial-answers-secret-2", b"trivial-answers-secret-3")
QUESTIONS = [(chapter, question) for chapter in all_chapters().values() for question in chapter.questions]


def _first(args, kwargs):
    return args[0] if args else next(v for v in kwargs.values() if isinstance(v, np.ndarray))


# Written here, not imported from course.questions: the test's mutants do not depend on the grader's list.
MUTANTS = {
    "constant": lambda *args, **kwargs: 0.0,
    "zeros-like": lambda *args, **kwargs: np.zeros_like(np.asarray(_first(args, kwargs), dtype=float)),
    "ones-like": lambda *args, **kwargs: np.ones_like(np.asarray(_first(args, kwargs), dtype=float)),
    "identity": lambda *args, **kwargs: _first(args, kwargs),
}


@pytest.mark.parametrize("chapter, question", QUESTIONS, ids=[f"{c.id}-{q.name}" for c, q in QUESTIONS])
def test_trivial_answers_earn_nothing_on_hidden_cases(chapter, question):
    own = dict(question.trivial())
    assert own, f"{question.name} names no trivial answer"
    mutants = {**MUTANTS, **own} if question.kind == "function" else own
    for secret in SECRETS:
        cases = question.cases(judging.question_seed(secret, chapter.id, question.name))
        rows = {name: grade_in_process(question, mutant, cases) for name, mutant in mutants.items()}
        assert not any(row.points for row in rows.values()), {name: row.points for name, row in rows.items()}
        # a right answer passes every case: one at least must be beyond every trivial answer, or it would earn 0
        beaten = [any(row.cases[n].passed for row in rows.values()) for n in range(len(cases))]
        assert not all(beaten), "a trivial answer passes every case"


# --- the rule itself, on a question small enough to read ---------------------------------------------------------

def _toy_question() -> Question:
    """Doubling: the trivial answer (0) passes the case whose input is 0, and no other."""
    def judge(case, outputs):
        return Verdict(bool(np.allclose(outputs["result"], 2 * case.inputs["x"])), "wrong")

    return Question("double", 4, lambda rng: [Case("zero", {"x": 0.0}), Case("one", {"x": 1.0}, weight=3)],
                    lambda fn, case: {"result": fn(case.inputs["x"])}, judge,
                    trivial=lambda: {"a constant 0": lambda x: 0.0})


def test_a_case_a_trivial_answer_passes_earns_only_beside_one_it_fails():
    question = _toy_question()
    cases = question.cases()
    assert earning_cases(question, cases, [True, False])[0] == [False, False]
    assert "a constant 0" in earning_cases(question, cases, [True, False])[1]
    assert earning_cases(question, cases, [True, True]) == ([True, True], "")
    assert earning_cases(question, cases, [False, True]) == ([False, True], "")


def test_the_grader_and_the_self_check_agree_on_a_trivial_pass():
    question = _toy_question()
    almost = lambda x: 0.0 if x == 0 else 3 * x  # noqa: E731 (passes only the case 0 passes too)
    row = grade_in_process(question, almost, question.cases())
    assert (row.points, row.status) == (0.0, "failed") and "a constant 0" in row.message
    assert "a constant 0" in run_checks(question, almost).refused
    right = grade_in_process(question, lambda x: 2 * x, question.cases())
    assert (row.points, right.points, right.status) == (0.0, 4, "passed")
    assert run_checks(question, lambda x: 2 * x).refused == ""


def test_hidden_cases_a_trivial_answer_passes_all_of_earn_nothing():
    """A secret no test has seen might draw only cases a trivial answer passes: the grader still asks, so a constant
    earns nothing even then (the self-check's shortcut is for the visible cases, which the test above covers)."""
    toy = _toy_question()
    question = Question(toy.name, toy.points, lambda rng: [Case("zero", {"x": 0.0})], toy.probe, toy.judge,
                        trivial=toy.trivial)
    row = grade_in_process(question, lambda x: 0.0, question.cases())
    assert (row.points, row.status) == (0.0, "failed") and "a constant 0" in row.message
    assert earning_cases(question, question.cases(), [True], visible=True) == ([True], "")
