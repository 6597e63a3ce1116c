"""Chapter 04_schedules: the reference answers pass on fresh seeds; realistic wrong answers fail with their diagnosis.

The answers below are written independently of the judge's NumPy variants (scalar loops, like a student's), so a
mutant test checks that the judge recognises the mistake, not that a function equals itself.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from course.chapters import get_chapter
from course.chapters.schedules import framework_plateau_epochs, keras_warmup_cosine_restarts
from course.questions import run_case

CHAPTER = get_chapter("04_schedules")
SEEDS = (1, 2, 3)


# --- reference answers, with switches that turn them into the usual mistakes -------------------------------------

def make_schedule(warmup="right", shift="right", grow=True, shrink="right", floor="right", angle="right"):
    """A student's warm-up + cosine restarts; each switch other than "right"/True is one classic mistake."""
    def warmup_cosine_restarts(step, *, peak_lr, warmup_steps, first_decay_steps, t_mul, m_mul, alpha):
        if step < warmup_steps:
            if warmup == "early":
                return peak_lr * (step + 1) / warmup_steps
            if warmup == "linspace":
                return peak_lr * step / (warmup_steps - 1)
            if warmup == "quadratic":
                return peak_lr * (step / warmup_steps) ** 2
            return peak_lr * step / warmup_steps
        t = {"right": step - warmup_steps, "none": step, "early": step - warmup_steps + 1}[shift]
        cycle, length = 0, first_decay_steps
        while t >= length:
            t -= length
            cycle += 1
            length *= t_mul if grow else 1
        fraction = t / length
        theta = {"right": math.pi * fraction, "no_pi": fraction, "degrees": 180 * fraction,
                 "full": 2 * math.pi * fraction}[angle]
        cosine = 0.5 * (1 + math.cos(theta))
        height = 1.0 if shrink == "ignored" else m_mul ** cycle
        if floor == "absolute":
            return alpha + (peak_lr - alpha) * height * cosine
        if floor == "none":
            return peak_lr * height * cosine
        if shrink == "floor_too":
            return peak_lr * height * (alpha + (1 - alpha) * cosine)
        return peak_lr * (alpha + (1 - alpha) * height * cosine)
    return warmup_cosine_restarts


def vectorised_schedule(step, *, peak_lr, warmup_steps, first_decay_steps, t_mul, m_mul, alpha):
    """A correct answer in the closed form Keras uses (a logarithm for the cycle index), returning NumPy scalars."""
    s = np.float64(step)
    if s < warmup_steps:
        return peak_lr * s / warmup_steps
    done = (s - warmup_steps) / first_decay_steps  # in units of the first cycle
    if t_mul == 1:
        cycle = np.floor(done)
        fraction = done - cycle
    else:
        cycle = np.floor(np.log(1 - done * (1 - t_mul)) / np.log(t_mul) + 1e-9)  # nudge: exact restarts
        fraction = (done - (1 - t_mul ** cycle) / (1 - t_mul)) / t_mul ** cycle
    return peak_lr * (alpha + (1 - alpha) * m_mul ** cycle * 0.5 * (1 + np.cos(np.pi * fraction)))


def keras_itself(step, **params):
    """A student who calls Keras' own schedules."""
    return keras_warmup_cosine_restarts([step], **params)[0]


def make_plateau(patience_rule="own", threshold_rule="own", cooldown_rule="own", use_threshold=True, strict=True,
                 against="best", reset=True, first_epoch=1, start="own", nan_improves=False):
    """A student's ReduceLROnPlateau simulation; each switch away from its default is one classic mistake."""
    def plateau_epochs(val_losses, *, patience, threshold, cooldown, framework):
        other = {"keras": "torch", "torch": "keras"}[framework]
        rules = {name: other if rule == "other" else framework
                 for name, rule in (("patience", patience_rule), ("threshold", threshold_rule),
                                    ("cooldown", cooldown_rule))}
        start_rule = {"own": framework, "other": other}.get(start, start)
        best = None if start_rule == "keras" else math.inf  # Keras: the first value, even NaN; torch: +inf
        last = None
        bad = cool = 0
        cuts = []
        for epoch, loss in enumerate(val_losses, start=first_epoch):
            ref = last if against == "previous" else best
            if ref is None:
                improved = True
            else:
                if not use_threshold:
                    bar = ref
                elif rules["threshold"] == "keras":
                    bar = ref - threshold
                else:
                    bar = ref * (1 - threshold)
                if nan_improves:
                    improved = not loss >= bar
                else:
                    improved = loss < bar if strict else loss <= bar
            last = loss
            if cooldown_rule == "ignored":
                counted = not improved
            elif rules["cooldown"] == "keras":
                if cool > 0:
                    cool -= 1
                    bad = 0
                counted = not improved and cool == 0
            else:
                counted = not improved
            if improved:
                best, bad = loss, 0
            elif counted:
                bad += 1
            if rules["cooldown"] == "torch" and cooldown_rule != "ignored" and cool > 0:
                cool -= 1
                bad = 0
            fires = (counted and bad >= patience) if rules["patience"] == "keras" else bad > patience
            if fires:
                cuts.append(epoch)
                cool = cooldown
                if reset:
                    bad = 0
        return cuts
    return plateau_epochs


def verdicts(name, fn, seed=None):
    question = CHAPTER.question(name)
    cases = question.cases() if seed is None else question.cases(seed)
    return [(case.label, run_case(question, fn, case)) for case in cases]


def failures(name, fn, seed=None):
    return [f"{label}: {verdict.message}" for label, verdict in verdicts(name, fn, seed) if not verdict.passed]


# --- the reference answers pass, on the visible seed and on fresh ones --------------------------------------------

REFERENCES = {"warmup_cosine_restarts": make_schedule(), "plateau_epochs": make_plateau()}


@pytest.mark.parametrize("seed", (None, *SEEDS))
@pytest.mark.parametrize("name", list(REFERENCES))
def test_reference_passes(name, seed):
    assert failures(name, REFERENCES[name], seed) == []


@pytest.mark.parametrize("answer", [vectorised_schedule, keras_itself], ids=["closed-form-numpy", "keras-itself"])
def test_other_correct_schedules_pass(answer):
    assert failures("warmup_cosine_restarts", answer) == []



def test_plateau_oracle_on_a_hand_checked_curve():
    """Flat after epoch 1, patience 2: Keras cuts on the 2nd bad epoch (epoch 3), torch on the 3rd (epoch 4)."""
    flat = np.ones(7)
    settings = dict(patience=2, threshold=1e-4, cooldown=0)
    assert list(framework_plateau_epochs(flat, **settings, framework="keras")) == [3, 5, 7]
    assert list(framework_plateau_epochs(flat, **settings, framework="torch")) == [4, 7]


# --- realistic wrong answers fail with the diagnosis written for them ---------------------------------------------

CYCLES_DOUBLE, FLOOR, SHRINKING = "cycles that double", "above a floor alpha", "shrinking restarts"
SCHEDULE_MUTANTS = [
    (make_schedule(warmup="early"), CYCLES_DOUBLE, "warm-up reaches peak_lr one step early"),
    (make_schedule(warmup="linspace"), CYCLES_DOUBLE, "divided by warmup_steps - 1"),
    (make_schedule(shift="none"), CYCLES_DOUBLE, "the cosine part ignores the warm-up"),
    (make_schedule(shift="early"), CYCLES_DOUBLE, "the cosine starts one step early"),
    (make_schedule(grow=False), CYCLES_DOUBLE, "restarts are not lengthened by t_mul"),
    (make_schedule(shrink="ignored"), SHRINKING, "ignored m_mul"),
    (make_schedule(shrink="floor_too"), SHRINKING, "applied m_mul to the floor too"),
    (make_schedule(floor="absolute"), FLOOR, "used alpha as an absolute floor"),
    (make_schedule(floor="none"), FLOOR, "ignored alpha"),
    (make_schedule(angle="no_pi"), CYCLES_DOUBLE, "forgot pi"),
    (make_schedule(angle="degrees"), CYCLES_DOUBLE, "cosine of 180 * fraction"),
    (make_schedule(angle="full"), CYCLES_DOUBLE, "a full cosine period per cycle"),
    # not a named mistake: the feedback still says where the curve departs
    (make_schedule(warmup="quadratic"), CYCLES_DOUBLE, "departs from Keras and torch at step 1"),
]

NOISY, BIG, FLAT = "a noisy curve that falls", "falling by less than 0.1", "an exactly flat curve"
SMALL, MIXED, RISING = "losses near 0.003", "drops of three sizes", "a rising curve with cooldown"
NAN_MIDDLE, NAN_FIRST = "a NaN (diverged) epoch in the middle", "the first epoch is NaN"
PLATEAU_MUTANTS = [
    (make_plateau(patience_rule="other"), f"[keras] {FLAT}", "patience off by one"),
    (make_plateau(patience_rule="other"), f"[torch] {RISING}", "patience off by one"),
    (make_plateau(threshold_rule="other"), f"[keras] | {BIG}", "threshold read the wrong way"),
    (make_plateau(threshold_rule="other"), f"[torch] {SMALL}", "threshold read the wrong way"),
    (make_plateau(patience_rule="other", threshold_rule="other", cooldown_rule="other"), f"[torch] {RISING}",
     "the other framework's answer"),
    (make_plateau(use_threshold=False), f"[keras] {MIXED}", "ignored the threshold"),
    (make_plateau(use_threshold=False), f"[torch] {MIXED}", "ignored the threshold"),
    (make_plateau(strict=False), f"[keras] {FLAT}", "the comparison is strict"),
    (make_plateau(against="previous"), f"[keras] {NOISY}", "compared with the previous epoch"),
    (make_plateau(reset=False), f"[torch] {FLAT}", "did not reset the bad-epoch count"),
    (make_plateau(cooldown_rule="other"), f"[keras] {RISING}", "cooldown off by one"),
    (make_plateau(cooldown_rule="ignored"), f"[torch] {RISING}", "ignored cooldown"),
    (make_plateau(first_epoch=0), f"[torch] {RISING}", "counted epochs from 0"),
    (make_plateau(nan_improves=True), f"[torch] {NAN_MIDDLE}", "a NaN epoch counted as an improvement"),
    (make_plateau(nan_improves=True), f"[keras] {NAN_MIDDLE}", "a NaN epoch counted as an improvement"),
    (make_plateau(start="keras"), f"[torch] {NAN_FIRST}", "started `best` the other framework's way"),
    (make_plateau(start="torch"), f"[keras] {NAN_FIRST}", "started `best` the other framework's way"),
    # not a named mistake: the feedback lists the framework's epochs
    (lambda val_losses, **kwargs: [1], f"[torch] {NOISY}",
     "first difference at epoch 1: torch does not cut the learning rate at its end (you said [1])"),
]
MUTANTS = ([("warmup_cosine_restarts", *m) for m in SCHEDULE_MUTANTS]
           + [("plateau_epochs", *m) for m in PLATEAU_MUTANTS])


@pytest.mark.parametrize("seed", (None, SEEDS[0]))
@pytest.mark.parametrize("name, mutant, case_label, diagnosis", MUTANTS,
                         ids=[f"{m[0]}-{m[3][:30]}" for m in MUTANTS])
def test_mutant_fails_with_its_diagnosis(name, mutant, case_label, diagnosis, seed):
    results = {label: verdict for label, verdict in verdicts(name, mutant, seed)}
    matching = [label for label in results if all(part in label for part in case_label.split(" | "))]
    assert matching, f"no case labelled {case_label!r}"
    for label in matching:
        assert not results[label].passed, f"{label}: the mutant passed"
        assert diagnosis in results[label].message, f"{label}: {results[label].message}"


def test_schedule_feedback_says_where_and_how_much():
    """A named mistake also reports the first step where the curve departs and the largest gap."""
    results = dict(verdicts("warmup_cosine_restarts", make_schedule(grow=False)))
    message = next(v.message for label, v in results.items() if CYCLES_DOUBLE in label)
    assert "restarts are not lengthened" in message and "departs from Keras and torch at step" in message
    assert "largest gap" in message


def test_a_crashing_answer_is_reported_not_raised():
    def divides_by_warmup(step, *, peak_lr, warmup_steps, **_):
        return peak_lr * min(step / warmup_steps, 1.0)  # ZeroDivisionError when warmup_steps == 0
    results = dict(verdicts("warmup_cosine_restarts", divides_by_warmup))
    message = next(v.message for label, v in results.items() if "no warm-up" in label)
    assert message.startswith("raised ZeroDivisionError")


def test_plateau_feedback_for_malformed_lists():
    question = CHAPTER.question("plateau_epochs")
    case = next(c for c in question.cases() if "[keras] an exactly flat" in c.label)
    backwards = run_case(question, lambda val_losses, **kw: make_plateau()(val_losses, **kw)[::-1], case)
    assert not backwards.passed and "out of order" in backwards.message
    nan = run_case(question, lambda val_losses, **kw: [float("nan")], case)
    assert not nan.passed and "NaN" in nan.message
