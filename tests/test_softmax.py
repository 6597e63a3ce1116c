"""The softmax chapter's checks: the reference passes, and each realistic mistake fails with its diagnosis."""
import numpy as np
import pytest

from course.chapters import softmax as chapter
from course.check import run_checks
from course.questions import run_case

QUESTIONS = {q.name: q for q in chapter.CHAPTER.questions}


def reference_softmax(logits, axis=-1):
    return chapter.stable_softmax(logits, axis)


def reference_log_softmax(logits, axis=-1):
    return chapter.stable_log_softmax(logits, axis)


def reference_cross_entropy(logits, labels):
    return -reference_log_softmax(logits)[np.arange(len(labels)), labels].mean()


def messages(question, fn):
    # run_case, not run_checks: these answers call the chapter's own references, which the API rule would forbid
    q = QUESTIONS[question]
    return [verdict.message for verdict in (run_case(q, fn, case) for case in q.cases()) if not verdict.passed]


@pytest.mark.parametrize("question, fn", [
    ("softmax", reference_softmax),
    ("log_softmax", reference_log_softmax),
    ("cross_entropy_from_logits", reference_cross_entropy),
])
def test_reference_passes_every_case(question, fn):
    assert messages(question, fn) == []


@pytest.mark.parametrize("question, fn, diagnosis", [
    ("softmax", lambda logits, axis=-1: chapter.naive_softmax(logits, axis), "subtract each row's maximum"),
    ("softmax", lambda logits, axis=-1: chapter.global_max_softmax(logits, axis), "maximum of the whole array"),
    ("softmax", lambda logits, axis=-1: chapter.stable_softmax(logits, 0), "wrong axis"),
    ("softmax", lambda logits, axis=-1: chapter.whole_array_softmax(logits, axis), "sum of the whole array"),
    ("softmax", lambda logits, axis=-1: chapter.stable_log_softmax(logits, axis), "log-probabilities"),
    ("softmax", lambda logits, axis=-1: np.exp(logits - logits.max(axis, keepdims=True)), "divide by the sum"),
    ("log_softmax", lambda logits, axis=-1: np.log(chapter.stable_softmax(logits, axis)), "log(softmax(z)) underflows"),
    ("log_softmax", lambda logits, axis=-1: chapter.stable_softmax(logits, axis), "returned probabilities"),
    ("log_softmax", lambda logits, axis=-1: logits - logits.max(axis, keepdims=True), "log-sum-exp term"),
    ("cross_entropy_from_logits",
     lambda logits, labels: -reference_log_softmax(logits)[np.arange(len(labels)), labels], "one loss per sample"),
    ("cross_entropy_from_logits",
     lambda logits, labels: -reference_log_softmax(logits)[np.arange(len(labels)), labels].sum(), "summed"),
    ("cross_entropy_from_logits", lambda logits, labels: -reference_cross_entropy(logits, labels), "minus sign"),
    ("cross_entropy_from_logits",
     lambda logits, labels: reference_cross_entropy(chapter.stable_softmax(logits), labels), "softmax twice"),
    ("cross_entropy_from_logits",
     lambda logits, labels: -np.log(chapter.stable_softmax(logits))[np.arange(len(labels)), labels].mean(),
     "overflows for confident mistakes"),
    ("cross_entropy_from_logits",
     lambda logits, labels: -reference_log_softmax(logits)[:, labels].mean(), "wrong entries"),
])
def test_mistake_fails_with_its_diagnosis(question, fn, diagnosis):
    with np.errstate(all="ignore"):
        found = messages(question, fn)
    assert found, "the checks did not catch this mistake"
    assert any(diagnosis in message for message in found), found


def test_stub_is_reported_as_not_attempted(capsys):
    def stub(logits, axis=-1):
        raise NotImplementedError

    from course.check import print_report
    print_report(run_checks(QUESTIONS["softmax"], stub))
    assert capsys.readouterr().out.startswith("[TODO] softmax: not attempted yet")


def test_fresh_seed_gives_fresh_inputs():
    question = QUESTIONS["softmax"]
    visible = question.cases()
    hidden = question.cases(seed=12345)
    assert not np.array_equal(visible[0].inputs["logits"], hidden[0].inputs["logits"])


def test_an_object_that_equals_everything_earns_nothing():
    class Liar:
        def __eq__(self, other):
            return True

        __array_priority__ = 1000

    assert len(messages("softmax", lambda logits, axis=-1: Liar())) == len(QUESTIONS["softmax"].cases())
