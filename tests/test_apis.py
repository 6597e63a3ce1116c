"""The per-question API rule (course.apis): what a NumPy-only answer may call, in the grader and the self-check."""
from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from course import apis
from course.check import print_report, run_checks
from course.chapters import get_chapter
from course.probes import all_probes


def outcome(rule, function):
    try:
        apis.call(rule, function)
    except apis.ForbiddenCall as exc:
        return str(exc)
    return "allowed"


def test_numpy_and_the_standard_library_are_allowed():
    def honest():
        z = np.array([[1.0, 2.0, 3.0]])
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return float(np.linalg.norm(e / e.sum())) + sum(map(abs, [1, -2]))

    assert outcome("numpy", honest) == "allowed"
    assert sys.getprofile() is None


def test_a_framework_call_is_named_in_a_numpy_question():
    torch = pytest.importorskip("torch")
    message = outcome("numpy", lambda: torch.softmax(torch.zeros(3), 0))
    assert message == "uses torch.zeros; this question asks for NumPy only"
    assert "torch.nn.functional.relu" in outcome("numpy", lambda: torch.nn.functional.relu(np.zeros(2)))
    assert outcome("any", lambda: torch.softmax(torch.zeros(3), 0)) == "allowed"


def test_the_courses_reference_code_is_forbidden():
    from course.chapters.softmax import stable_softmax

    message = outcome("numpy", lambda: stable_softmax(np.zeros((1, 3))))
    assert message == "uses course.chapters.softmax.stable_softmax, the course's own code; write your own"
    assert outcome("any", lambda: stable_softmax(np.zeros((1, 3)))) == "allowed"  # "any" is not watched (cost)


def test_switching_the_watch_off_is_tampering():
    def sneaky():
        saved = sys.getprofile()
        sys.setprofile(None)
        sys.setprofile(saved)

    assert "switched off the grader's call watch (sys.setprofile)" in outcome("numpy", sneaky)
    assert sys.getprofile() is None


def test_a_forbidden_call_in_a_thread_or_before_an_error_still_counts():
    torch = pytest.importorskip("torch")

    def in_thread():
        worker = threading.Thread(target=lambda: torch.ones(2))
        worker.start()
        worker.join()

    def then_fails():
        torch.ones(2)
        raise ValueError("later")

    assert outcome("numpy", in_thread).startswith("uses torch.ones")
    assert outcome("numpy", then_fails).startswith("uses torch.ones")
    with pytest.raises(ZeroDivisionError):
        apis.call("numpy", lambda: 1 / 0)


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown API rule"):
        apis.call("tensorflow-only", lambda: None)


def test_every_probe_states_a_known_rule_and_numpy_exercises_say_numpy():
    rules = {(cid, p.name): p.apis for cid, probes in all_probes().items() for p in probes.probes}
    assert set(rules.values()) <= set(apis.RULES)
    for name in ("softmax", "log_softmax", "cross_entropy_from_logits"):
        assert rules[("01_softmax", name)] == "numpy"
    for name in ("warmup_cosine_restarts", "plateau_epochs"):
        assert rules[("04_schedules", name)] == "numpy"


def test_the_self_check_fails_a_torch_answer_with_the_rule(capsys):
    torch = pytest.importorskip("torch")

    def softmax(logits, axis=-1):
        return torch.softmax(torch.as_tensor(logits), dim=axis).numpy()

    report = run_checks(get_chapter("01_softmax").question("softmax"), softmax)
    assert report.passed == 0
    print_report(report)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[FAIL] softmax · ")
    assert lines[0].endswith(": uses torch.as_tensor; this question asks for NumPy only")


def test_fake_profile_switches_installed_beforehand_do_not_fool_the_watch(monkeypatch):
    torch = pytest.importorskip("torch")
    installed = [None]
    monkeypatch.setattr(sys, "setprofile", lambda function: installed.append(function))  # a cell's fakes
    monkeypatch.setattr(sys, "getprofile", lambda: installed[-1])
    assert outcome("numpy", lambda: torch.ones(2)).startswith("uses torch.ones")


def test_mentions_of_the_watch_are_flagged_for_the_instructor():
    from course.grading.reading import flags_of

    assert "touches the grader's API watch" in flags_of(["import sys\nsys.setprofile(None)"])
    assert "touches the grader's API watch" in flags_of(["from course import apis"])
    assert "touches the grader's API watch" not in flags_of(["import numpy as np"])
