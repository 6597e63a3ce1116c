"""Chapter 01: softmax, log-softmax and cross-entropy from logits.

The oracles are the frameworks' own functions (``torch.softmax``/``torch.log_softmax``/``F.cross_entropy`` and
``keras.ops.softmax``/``keras.ops.log_softmax``/``SparseCategoricalCrossentropy(from_logits=True)``), evaluated in
float64 on the very inputs the student's code received; a judge refuses to answer if the two frameworks disagree.
The ``mistakes`` are NumPy versions of the usual wrong answers, so feedback can name the mistake.
"""
from __future__ import annotations

import numpy as np

from ..questions import (Case, Chapter, Plain, Verdict, assert_frameworks_agree, compare,
                         quiet, trivial_functions, weighted)
from ..probes.softmax import PROBES

ID = "01_softmax"


# --- oracles: the frameworks' own implementations ----------------------------------------------------------------

def framework_softmax(logits: np.ndarray, axis: int = -1, log: bool = False) -> np.ndarray:
    """softmax (or log_softmax) of ``logits`` by torch and by Keras, checked to agree; returned in float64."""
    import keras
    import torch

    x = np.asarray(logits, dtype=np.float64)
    by_torch = (torch.log_softmax if log else torch.softmax)(torch.from_numpy(x), dim=axis).numpy()
    by_keras = np.asarray((keras.ops.log_softmax if log else keras.ops.softmax)(x, axis=axis), dtype=np.float64)
    assert_frameworks_agree(by_torch, by_keras, "log_softmax" if log else "softmax")
    return by_torch


def framework_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of integer ``labels`` given ``logits``, by torch and by Keras, checked to agree."""
    import keras
    import torch

    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    by_torch = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(y)).item()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
    by_keras = float(loss(y, x))
    assert_frameworks_agree(by_torch, by_keras, "cross-entropy")
    return by_torch


# --- the usual wrong answers (NumPy), used only to name a mistake --------------------------------------------------

@quiet
def naive_softmax(z, axis=-1):
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


@quiet
def stable_softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@quiet
def global_max_softmax(z, axis=-1):
    e = np.exp(z - z.max())
    return e / e.sum(axis=axis, keepdims=True)


@quiet
def whole_array_softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum()


@quiet
def half_stable_softmax(z, axis=-1):
    """The maximum subtracted in the numerator only: exp(z - max) / sum(exp(z))."""
    return np.exp(z - z.max(axis=axis, keepdims=True)) / np.exp(z).sum(axis=axis, keepdims=True)


@quiet
def no_keepdims_softmax(z, axis=-1):
    """max and sum without keepdims: on a square array the row statistics broadcast along the columns."""
    e = np.exp(z - z.max(axis=axis))
    return e / e.sum(axis=axis)


def _broadcasts_without_keepdims(z: np.ndarray, axis: int) -> bool:
    """Whether dropping the reduced axis still broadcasts (silently wrong) instead of raising."""
    if z.ndim < 2:
        return False  # a 1-D reduction is a scalar: without keepdims it is still right
    try:
        np.broadcast_shapes(z.shape, tuple(np.delete(np.array(z.shape), axis % z.ndim)))
    except ValueError:
        return False
    return True


@quiet
def stable_log_softmax(z, axis=-1):
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _other_axis(z: np.ndarray, axis: int) -> int | None:
    """An axis a student might have used by mistake, or None when there is no distinguishable one."""
    if z.ndim < 2:
        return None
    return 0 if axis in (-1, z.ndim - 1) else -1


# --- question 1: softmax ------------------------------------------------------------------------------------------

def _with_row_max(z: np.ndarray, top: float) -> np.ndarray:
    """Put ``top`` in every row so that the case really reaches its extreme."""
    z[np.arange(len(z)), np.argmax(z, axis=-1)] = top
    return z


def softmax_cases(rng: np.random.Generator) -> list[Case]:
    scale = rng.uniform(700, 1000)  # float64 exp overflows past ~709.8
    return [
        Case("a batch of ordinary logits (4×5)", {"logits": rng.normal(size=(4, 5))}),
        Case("a single vector of 7 logits (1-D)", {"logits": rng.normal(scale=3, size=7)}),
        Case(f"large logits (up to ±{scale:.0f})", {"logits": _with_row_max(rng.uniform(-scale, scale, (3, 4)), scale)}),
        Case("very negative logits (all near -1000)", {"logits": -1000 + rng.normal(size=(2, 6))}),
        Case("float32 logits near float32's exp limit (88 to 100)",
             {"logits": rng.uniform(88, 100, size=(3, 5)).astype(np.float32)}),
        Case("rows on very different scales ([~900, ...] and [~0, ...])",
             {"logits": np.stack([rng.uniform(890, 900, 4), rng.uniform(-1, 1, 4)])}),
        Case("a (2×3×4) batch along the last axis", {"logits": rng.normal(size=(2, 3, 4))}),
        Case("axis=0 of a (5×3) array", {"logits": rng.normal(size=(5, 3)), "axis": 0}),
        Case("a square (5×5) batch, where a sum without keepdims still broadcasts",
             {"logits": rng.normal(scale=2, size=(5, 5))}),
    ]


def judge_softmax(case: Case, outputs: Plain) -> Verdict:
    z = np.asarray(case.inputs["logits"])
    axis = case.inputs.get("axis", -1)
    expected = framework_softmax(z, axis)
    mistakes = {
        "NaN or inf where the answer is finite: subtract each row's maximum before exp "
        "(softmax(z) equals softmax(z - max z))": naive_softmax(z, axis),
        "subtracted the maximum of the whole array, not of each row: rows far below it underflow to 0/0": global_max_softmax(z, axis),
        "divided by the sum of the whole array: each slice along `axis` must sum to 1 on its own": whole_array_softmax(z, axis),
        "returned log-probabilities (that is log_softmax), not probabilities": stable_log_softmax(z, axis),
        "forgot to divide by the sum: the outputs must add up to 1": quiet(np.exp)(
            z - z.max(axis=axis, keepdims=True)),
        "half-stabilised: the maximum is subtracted in the numerator but not in the sum, so the sum still "
        "overflows": half_stable_softmax(z, axis),
    }
    if _broadcasts_without_keepdims(z, axis):
        mistakes["max or sum without keepdims=True: on this square array the row values broadcast along the wrong "
                 "axis instead of raising"] = no_keepdims_softmax(z, axis)
    other = _other_axis(z, axis)
    if other is not None:
        mistakes["normalised along the wrong axis: the `axis` argument was not honoured everywhere"] = \
            stable_softmax(z, other)
    return compare(_result(outputs), expected, mistakes=mistakes, what="softmax")


# --- question 2: log_softmax --------------------------------------------------------------------------------------

def log_softmax_cases(rng: np.random.Generator) -> list[Case]:
    gap = rng.uniform(760, 900)  # exp(-gap) underflows to 0 in float64 past ~745
    return [
        Case("a batch of ordinary logits (4×5)", {"logits": rng.normal(size=(4, 5))}),
        Case("a single vector of 6 logits (1-D)", {"logits": rng.normal(scale=2, size=6)}),
        Case(f"a gap of {gap:.0f} between the top logit and the rest",
             {"logits": np.array([[0.0, -gap, 1.0], [gap / 2, -gap / 2, 0.0]])}),
        Case("large logits (up to ±1000)", {"logits": rng.uniform(-1000, 1000, size=(3, 4))}),
        Case("float32 logits with a gap of 120", {"logits": np.array([[0.0, 120.0], [-60.0, 60.0]], np.float32)}),
        Case("a (2×3×4) batch along the last axis", {"logits": rng.normal(size=(2, 3, 4))}),
        Case("axis=0 of a (4×3) array", {"logits": rng.normal(size=(4, 3)), "axis": 0}),
    ]


def judge_log_softmax(case: Case, outputs: Plain) -> Verdict:
    z = np.asarray(case.inputs["logits"])
    axis = case.inputs.get("axis", -1)
    expected = framework_softmax(z, axis, log=True)
    mistakes = {
        "-inf where the answer is finite: log(softmax(z)) underflows to log(0); stay in log space": quiet(np.log)(stable_softmax(z, axis)),
        "NaN or inf at large logits: the log-sum-exp overflows without the maximum taken out": quiet(
            lambda: z - np.log(np.exp(z).sum(axis=axis, keepdims=True)))(),
        "half-stabilised: subtracted the maximum from z but not inside the log-sum-exp, which still "
        "overflows": quiet(
            lambda: z - z.max(axis=axis, keepdims=True) - np.log(np.exp(z).sum(axis=axis, keepdims=True)))(),
        "returned probabilities (softmax), not their logarithm": stable_softmax(z, axis),
        "forgot the log-sum-exp term: z - max alone is not normalised": quiet(
            lambda: z - z.max(axis=axis, keepdims=True))(),
    }
    other = _other_axis(z, axis)
    if other is not None:
        mistakes["normalised along the wrong axis: the `axis` argument was not honoured"] = stable_log_softmax(z, other)
    return compare(_result(outputs), expected, mistakes=mistakes, what="log_softmax")


# --- question 3: cross-entropy from logits ------------------------------------------------------------------------

def cross_entropy_cases(rng: np.random.Generator) -> list[Case]:
    def batch(n, c, scale=1.0, dtype=np.float64):
        return {"logits": (rng.normal(size=(n, c)) * scale).astype(dtype), "labels": rng.integers(0, c, size=n)}

    confident = batch(6, 4)
    confident["logits"][np.arange(6), confident["labels"]] += 60.0
    wrong = batch(5, 3)
    wrong["logits"][np.arange(5), (wrong["labels"] + 1) % 3] += rng.uniform(800, 1000)
    return [
        Case("8 samples, 5 classes", batch(8, 5)),
        Case("one sample, 3 classes", batch(1, 3)),
        Case("64 samples, 100 classes", batch(64, 100, scale=3.0)),
        Case("confident and correct (the loss is close to 0)", confident),
        Case("confident and wrong by ~900 (the loss is huge but finite)", wrong),
        Case("float32 logits up to ±95", batch(6, 4, scale=95 / 3, dtype=np.float32)),
    ]


def judge_cross_entropy(case: Case, outputs: Plain) -> Verdict:
    z = np.asarray(case.inputs["logits"], dtype=np.float64)
    y = np.asarray(case.inputs["labels"])
    rows = np.arange(len(y))
    expected = np.array(framework_cross_entropy(z, y))
    per_sample = -stable_log_softmax(z)[rows, y]
    mistakes = {
        "returned one loss per sample: average them over the batch": per_sample,
        "summed over the batch: the loss is the mean over samples": per_sample.sum(),
        "inf where the answer is finite: -log(softmax) overflows for confident mistakes (a probability of 0 "
        "has no log)":
            quiet(lambda: -np.log(stable_softmax(z))[rows, y].mean())(),
        "missing the minus sign: a cross-entropy is never negative": -per_sample.mean(),
        "applied softmax twice: the inputs are logits, not probabilities": -stable_log_softmax(
            stable_softmax(z))[rows, y].mean(),
        "picked the wrong entries: every row's log-probability must be taken at that row's own label, not "
        "at every label":
            -stable_log_softmax(z)[:, y].mean(),
        "NaN or inf at large logits: the log-sum-exp overflows without each row's maximum taken out": quiet(
            lambda: -(z - np.log(np.exp(z).sum(axis=-1, keepdims=True)))[rows, y].mean())(),
    }
    return compare(_result(outputs), expected, mistakes=mistakes, what="cross-entropy")


def _result(outputs: Plain) -> np.ndarray:
    return outputs["result"]


# --- trivial answers: a case one of them passes earns nothing alone (course.questions.earning_cases) ------------

def uniform_softmax(logits, axis=-1):
    """Trivial answer: every class equally likely, whatever the logits."""
    return np.full(np.shape(logits), 1.0 / np.shape(logits)[axis])


def uniform_log_softmax(logits, axis=-1):
    """Trivial answer: the log of a uniform distribution."""
    return np.log(uniform_softmax(logits, axis))


def uniform_cross_entropy(logits, labels, **options):
    """Trivial answer: the cross-entropy of a uniform prediction, log(number of classes)."""
    return np.log(np.shape(logits)[-1])


#: (part of a case label, weight, what the case tests): the extreme inputs are the point of these questions.
SOFTMAX_WEIGHTS = [
    ("large logits", 2, "numerical stability: subtracting each row's maximum"),
    ("very negative", 2, "numerical stability: subtracting each row's maximum"),
    ("float32", 2, "stability in float32, whose exp overflows past 88"),
    ("very different scales", 2, "a maximum per row, not of the whole array"),
    ("axis=0", 1, "honouring the axis argument"),
    ("square", 1, "reductions with keepdims=True"),
]
LOG_SOFTMAX_WEIGHTS = [
    ("a gap of", 2, "a log-sum-exp that does not underflow"),
    ("large logits", 2, "numerical stability: subtracting the maximum"),
    ("float32", 2, "stability in float32"),
    ("axis=0", 1, "honouring the axis argument"),
]
CROSS_ENTROPY_WEIGHTS = [
    ("confident and wrong", 3, "a finite loss for confident mistakes (log-softmax, not log of softmax)"),
    ("float32", 2, "stability in float32"),
    ("confident and correct", 1, "a loss close to 0 without rounding to a wrong value"),
]

CHAPTER = Chapter(
    id=ID,
    title="Softmax, log-softmax and cross-entropy",
    questions=(
        PROBES.question(
            "softmax", 3, weighted(softmax_cases, SOFTMAX_WEIGHTS, "the softmax formula on ordinary logits"),
            judge_softmax, trivial=trivial_functions(a_uniform_distribution=uniform_softmax),
            hint="Adding the same number to every logit of a slice leaves its softmax unchanged: use that to keep "
                 "exp from overflowing, and reduce along `axis` only (the page's section \"Overflow and the "
                 "max-subtraction trick\")."),
        PROBES.question(
            "log_softmax", 3, weighted(log_softmax_cases, LOG_SOFTMAX_WEIGHTS,
                                     "the log-softmax formula on ordinary logits"),
            judge_log_softmax, trivial=trivial_functions(a_uniform_distribution=uniform_log_softmax),
            hint="The log of softmax's output underflows when logits are far apart: stay in log space, with a "
                 "log-sum-exp that is stable along `axis` (section \"`log(softmax(z))` is not `log_softmax(z)`\")."),
        PROBES.question(
            "cross_entropy_from_logits", 4, weighted(cross_entropy_cases, CROSS_ENTROPY_WEIGHTS,
                                                   "the mean cross-entropy over a batch"),
            judge_cross_entropy, trivial=trivial_functions(the_loss_of_a_uniform_prediction=uniform_cross_entropy),
            hint="Each sample's loss is read off its own log-probabilities at its own label, then averaged over "
                 "the batch; build it on a stable log-softmax, never on probabilities (section \"PyTorch's "
                 "`CrossEntropyLoss` is `log_softmax` + `NLLLoss`\")."),
    ),
)
