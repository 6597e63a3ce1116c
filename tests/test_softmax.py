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


def test_the_time_limit_stops_a_hung_case_and_restores_the_alarm_handler():
    import signal

    from course.check import time_limit, CaseTimeout

    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGALRM, mine)
    try:
        def hangs(logits, axis=-1):
            while True:
                pass

        report = run_checks(QUESTIONS["softmax"], hangs, seconds=0.2)
        assert report.passed == 0
        assert all(v.message.startswith("stopped after 0.2 s without an answer") for _, v in report.results)
        assert signal.getsignal(signal.SIGALRM) is mine
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        with pytest.raises(CaseTimeout):
            with time_limit(0.1):
                while True:
                    pass
    finally:
        signal.signal(signal.SIGALRM, previous)


def half_stable_softmax(logits, axis=-1):
    return np.exp(logits - logits.max(axis=axis, keepdims=True)) / np.exp(logits).sum(axis=axis, keepdims=True)


def no_keepdims_softmax(logits, axis=-1):
    e = np.exp(logits - logits.max(axis=axis))
    return e / e.sum(axis=axis)


def half_stable_log_softmax(logits, axis=-1):
    return logits - logits.max(axis=axis, keepdims=True) - np.log(np.exp(logits).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("question, fn, phrase", [
    ("softmax", half_stable_softmax, "half-stabilised"),
    ("softmax", no_keepdims_softmax, "without keepdims"),
    ("log_softmax", half_stable_log_softmax, "half-stabilised"),
])
def test_half_stabilised_and_keepdims_mistakes_are_named(question, fn, phrase):
    found = messages(question, fn)
    assert found and any(phrase in m for m in found), found


def test_a_broadcasting_error_is_translated():
    """Without keepdims a non-square batch raises; the message says which reduction lost its axis."""
    found = messages("softmax", no_keepdims_softmax)
    assert any("keepdims" in m and m.startswith("raised ValueError") for m in found), found


def test_the_self_check_names_the_earlier_function_a_failing_answer_calls(capsys):
    """A right cross-entropy on top of a wrong log_softmax: the last line says to fix log_softmax, once."""
    from course.check import Checker

    namespace = {"np": np}
    exec("def softmax(logits, axis=-1):\n    shifted = logits - np.max(logits, axis=axis, keepdims=True)\n"
         "    e = np.exp(shifted)\n    return e / np.sum(e, axis=axis, keepdims=True)\n"
         "def log_softmax(logits, axis=-1):\n    return np.log(softmax(logits, axis))\n"
         "def cross_entropy_from_logits(logits, labels):\n"
         "    return -np.mean(log_softmax(logits, axis=-1)[np.arange(len(labels)), labels])\n", namespace)
    check = Checker("01_softmax")
    with np.errstate(divide="ignore"):
        for name in ("softmax", "log_softmax", "cross_entropy_from_logits"):
            check(name, namespace[name])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("cross_entropy_from_logits: it calls your `log_softmax`, which fails its own check")
    assert sum("fix `" in line for line in lines) == 1  # softmax passes: log_softmax's own failure blames nobody
    assert not hasattr(namespace["log_softmax"], "__wrapped__")  # the notebook's function is back
