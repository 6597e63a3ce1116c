"""Chapter 02_losses: the reference answers pass on fresh seeds; realistic wrong answers fail with their diagnosis."""
from __future__ import annotations

import numpy as np
import pytest

from course.chapters import get_chapter
from course.chapters.losses import KERAS_DIVIDES_BY_N, KERAS_SMOOTHS_ROW
from course.questions import run_case

CHAPTER = get_chapter("02_losses")
SEEDS = (1, 2, 3)


# --- reference answers, with switches that turn them into the usual mistakes -------------------------------------

def make_cross_entropy(divide_by="weights", smoothing="right", use_weights=True, drop_class=False,
                       drop_ignored=True, log_of="log_softmax", honour_reduction=True, none_keeps_all=True,
                       dtype=np.float64):
    def weighted_cross_entropy(logits, labels, class_weights=None, ignore_index=-100, label_smoothing=0.0,
                               reduction="mean"):
        z = np.asarray(logits, dtype=dtype)
        y = np.asarray(labels)
        n, c = z.shape
        w = np.ones(c, dtype) if class_weights is None or not use_weights else np.asarray(class_weights, dtype)
        kept = (y != ignore_index) if drop_ignored else np.ones(n, bool)
        if drop_class and 0 <= ignore_index < c:
            z = np.where(np.arange(c) == ignore_index, -np.inf, z)
        with np.errstate(all="ignore"):
            if log_of == "log_softmax":
                shifted = z - z.max(axis=-1, keepdims=True)
                log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
            else:  # log of (possibly clipped) probabilities from a max-shifted softmax
                e = np.exp(z - z.max(axis=-1, keepdims=True))
                p = e / e.sum(axis=-1, keepdims=True)
                log_p = np.log(np.clip(p, 1e-7, 1.0) if log_of == "clipped" else p)
            log_p = np.where(np.isneginf(log_p) & drop_class, 0.0, log_p)
            y_kept = np.where(kept, y, 0)
            target = -log_p[np.arange(n), y_kept]
            eps = label_smoothing
            uniform = {"right": (w * -log_p).sum(-1) / c,
                       "row_weight": w[y_kept] * -log_p.sum(-1) / c,
                       "no_divide": (w * -log_p).sum(-1),
                       "others": ((w * -log_p).sum(-1) - w[y_kept] * target) / (c - 1),
                       "target_only": 0.0,
                       "unweighted": -log_p.sum(-1) / c}[smoothing]
            per_sample = np.where(kept, (1 - eps) * w[y_kept] * target + eps * uniform, 0.0)
        if not honour_reduction:
            reduction = "mean"
        if reduction == "none":
            return per_sample if none_keeps_all else per_sample[kept]
        if reduction == "sum":
            return per_sample.sum()
        divisor = {"weights": (w[y_kept] * kept).sum(), "kept": kept.sum(), "all": n}[divide_by]
        return per_sample.sum() / divisor
    return weighted_cross_entropy


def make_focal(factor="p_true", alpha_mode="right", bce="logits", reduce="mean", sigmoid_first=False):
    def binary_focal_loss(logits, targets, gamma=2.0, alpha=None):
        z = np.asarray(logits, dtype=np.float64)
        if sigmoid_first:  # "the inputs are probabilities": a sigmoid, then the logits formula again
            z = 0.5 * (1 + np.tanh(z / 2))
        t = np.asarray(targets, dtype=np.float64)
        with np.errstate(all="ignore"):
            p = 0.5 * (1 + np.tanh(z / 2))
            if bce == "logits":
                ce = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
            else:
                q = np.clip(p, 1e-7, 1 - 1e-7) if bce == "clipped" else 1 / (1 + np.exp(-z))
                ce = -(t * np.log(q) + (1 - t) * np.log(1 - q))
            p_true = p * t + (1 - p) * (1 - t)
            loss = ce * {"p_true": (1 - p_true) ** gamma, "p": (1 - p) ** gamma, "none": 1.0,
                         "times": (1 - p_true) * gamma}[factor]
        if alpha is not None:
            loss = loss * {"right": alpha * t + (1 - alpha) * (1 - t), "swapped": (1 - alpha) * t + alpha * (1 - t),
                           "all": alpha, "positives": alpha * t + (1 - t)}[alpha_mode]
        return {"mean": np.mean, "sum": np.sum, "none": np.asarray}[reduce](loss)
    return binary_focal_loss


def make_huber(kind="huber", reduce="mean"):
    def huber_loss(y_true, y_pred, delta=1.0):
        e = np.abs(np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64))
        loss = {"huber": np.where(e <= delta, 0.5 * e ** 2, delta * (e - 0.5 * delta)),
                "smooth_l1": np.where(e <= delta, 0.5 * e ** 2 / delta, e - 0.5 * delta),
                "no_half": np.where(e <= delta, e ** 2, delta * (e - 0.5 * delta)),
                "no_offset": np.where(e <= delta, 0.5 * e ** 2, delta * e),
                "swapped": np.where(e > delta, 0.5 * e ** 2, delta * (e - 0.5 * delta)),
                "mse": e ** 2, "mae": e}[kind]
        return {"mean": np.mean, "sum": np.sum, "none": np.asarray}[reduce](loss)
    return huber_loss


def torch_cross_entropy_answer(logits, labels, class_weights=None, ignore_index=-100, label_smoothing=0.0,
                               reduction="mean"):
    """A student who calls torch itself, in the inputs' own dtype (float32 stays float32)."""
    import torch

    weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.as_tensor(logits).dtype)
    return torch.nn.functional.cross_entropy(torch.as_tensor(logits), torch.as_tensor(labels), weight=weight,
                                             ignore_index=ignore_index, label_smoothing=label_smoothing,
                                             reduction=reduction)


def verdicts(name, fn, seed=None):
    question = CHAPTER.question(name)
    cases = question.cases() if seed is None else question.cases(seed)
    return [(case.label, run_case(question, fn, case)) for case in cases]


def failures(name, fn, seed=None):
    return [f"{label}: {verdict.message}" for label, verdict in verdicts(name, fn, seed) if not verdict.passed]


# --- the reference answers pass, on the visible seed and on fresh ones --------------------------------------------

REFERENCES = {
    "weighted_cross_entropy": make_cross_entropy(),
    "binary_focal_loss": make_focal(),
    "huber_loss": make_huber(),
}


@pytest.mark.parametrize("seed", (None, *SEEDS))
@pytest.mark.parametrize("name", list(REFERENCES))
def test_reference_passes(name, seed):
    assert failures(name, REFERENCES[name], seed) == []


@pytest.mark.parametrize("answer", [make_cross_entropy(dtype=np.float32), torch_cross_entropy_answer],
                         ids=["numpy-float32", "torch-itself"])
def test_other_correct_cross_entropies_pass(answer):
    assert failures("weighted_cross_entropy", answer) == []



# --- realistic wrong answers fail with the diagnosis written for them ---------------------------------------------

MUTANTS = [
    ("weighted_cross_entropy", make_cross_entropy(divide_by="kept"), "class weights, reduction='mean'",
     KERAS_DIVIDES_BY_N),
    ("weighted_cross_entropy", make_cross_entropy(smoothing="row_weight"), "with class weights (Keras and torch",
     KERAS_SMOOTHS_ROW),
    ("weighted_cross_entropy", make_cross_entropy(divide_by="all"), "labels are ignore_index",
     "divided by all N samples"),
    ("weighted_cross_entropy", make_cross_entropy(use_weights=False), "class weights, reduction='mean'",
     "ignored class_weights"),
    ("weighted_cross_entropy", make_cross_entropy(drop_class=True), "is a real class",
     "removed the ignored class from the softmax"),
    ("weighted_cross_entropy", make_cross_entropy(drop_ignored=False), "is a real class",
     "did not drop the samples"),
    ("weighted_cross_entropy", make_cross_entropy(smoothing="others"), "no weights", "spread ε over the other"),
    ("weighted_cross_entropy", make_cross_entropy(smoothing="no_divide"), "no weights", "forgot to divide ε"),
    ("weighted_cross_entropy", make_cross_entropy(smoothing="target_only"), "no weights", "smoothed the wrong term"),
    ("weighted_cross_entropy", make_cross_entropy(log_of="clipped"), "logits of ±1000",
     "log of clipped probabilities"),
    ("weighted_cross_entropy", make_cross_entropy(log_of="softmax"), "logits of ±1000", "overflow or log(0)"),
    ("weighted_cross_entropy", make_cross_entropy(honour_reduction=False), "reduction='sum'",
     "ignored `reduction`"),
    ("weighted_cross_entropy", make_cross_entropy(none_keeps_all=False), "reduction='none'",
     "returned only the kept samples"),
    ("binary_focal_loss", make_focal(factor="none"), "16 samples", "forgot the modulating factor"),
    ("binary_focal_loss", make_focal(factor="p"), "16 samples", "probability of the TRUE label"),
    ("binary_focal_loss", make_focal(factor="times"), "gamma=5", "instead of raising to the power"),
    ("binary_focal_loss", make_focal(alpha_mode="swapped"), "multi-label", "swapped alpha"),
    ("binary_focal_loss", make_focal(alpha_mode="all"), "multi-label", "multiplied every sample by alpha"),
    ("binary_focal_loss", make_focal(alpha_mode="positives"), "multi-label", "weighted only the positives"),
    ("binary_focal_loss", make_focal(bce="clipped"), "logits of ±1000", "log of clipped probabilities"),
    ("binary_focal_loss", make_focal(bce="naive"), "logits of ±1000", "overflow or log(0)"),
    ("binary_focal_loss", make_focal(reduce="sum"), "16 samples", "summed over the elements"),
    ("binary_focal_loss", make_focal(sigmoid_first=True), "16 samples", "applied the sigmoid twice"),
    ("weighted_cross_entropy", make_cross_entropy(smoothing="unweighted"), "with class weights (Keras and torch",
     "smoothing and class weights not combined"),
    ("binary_focal_loss", make_focal(reduce="none"), "16 samples", "returned one loss per element"),
    ("huber_loss", make_huber("smooth_l1"), "non-default delta", "SmoothL1Loss"),
    ("huber_loss", make_huber("no_half"), "both sides of delta", "forgot the 1/2"),
    ("huber_loss", make_huber("no_offset"), "linear part only", "forgot −delta²/2"),
    ("huber_loss", make_huber("swapped"), "both sides of delta", "swapped the branches"),
    ("huber_loss", make_huber("mse"), "both sides of delta", "mean squared error"),
    ("huber_loss", make_huber("mae"), "linear part only", "mean absolute error"),
    ("huber_loss", make_huber(reduce="sum"), "both sides of delta", "summed over the elements"),
    ("huber_loss", make_huber(reduce="none"), "both sides of delta", "returned one loss per element"),
]


@pytest.mark.parametrize("seed", (None, SEEDS[0]))
@pytest.mark.parametrize("name, mutant, case_label, diagnosis", MUTANTS,
                         ids=[f"{m[0]}-{m[3][:30]}" for m in MUTANTS])
def test_mutant_fails_with_its_diagnosis(name, mutant, case_label, diagnosis, seed):
    results = {label: verdict for label, verdict in verdicts(name, mutant, seed)}
    matching = [label for label in results if case_label in label]
    assert matching, f"no case labelled {case_label!r}"
    for label in matching:
        assert not results[label].passed, f"{label}: the mutant passed"
        assert diagnosis in results[label].message, f"{label}: {results[label].message}"



@pytest.mark.parametrize("name", list(REFERENCES))
def test_fresh_seed_gives_fresh_inputs(name):
    question = CHAPTER.question(name)
    first = next(iter(question.cases()[0].inputs.values()))
    assert not np.array_equal(first, next(iter(question.cases(12345)[0].inputs.values())))


@pytest.mark.parametrize("name", list(REFERENCES))
def test_answers_memorised_from_the_visible_checks_earn_nothing_on_fresh_seeds(name):
    """A function that replays the reference's outputs on the visible inputs, case by case, fails the grader's cases."""
    question = CHAPTER.question(name)
    memorised = [REFERENCES[name](**case.inputs) for case in question.cases()]
    calls = iter(range(10**6))

    def replay(**inputs):
        return memorised[next(calls) % len(memorised)]

    results = [run_case(question, replay, case) for case in question.cases(SEEDS[0])]
    assert not any(verdict.passed for verdict in results)
