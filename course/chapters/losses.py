"""Chapter 02: loss functions: weighted cross-entropy, binary focal loss, Huber loss.

The oracles are the frameworks' own implementations, run in float64 on the very inputs the student's code received:

* ``weighted_cross_entropy`` follows torch's ``F.cross_entropy`` (weighted mean = divide by the sum of the kept
  samples' weights). Keras computes the same number whenever the two frameworks agree (no label smoothing:
  ``SparseCategoricalCrossentropy(ignore_class=..., reduction=...)`` with ``sample_weight = w[label]``), and the
  judge checks that they do. Where Keras' semantics differ (its default ``sum_over_batch_size`` divides by N; its
  sample weights scale the whole smoothed row), Keras' own numbers become named mistakes, so the feedback tells the
  student which framework they matched.
* ``binary_focal_loss`` follows ``keras.losses.BinaryFocalCrossentropy(from_logits=True)``; torch has no built-in
  (torchvision's ``sigmoid_focal_loss`` is the same formula), so the torch oracle is that formula written with torch's
  fused ``binary_cross_entropy_with_logits``, and the two must agree.
* ``huber_loss`` follows ``keras.losses.Huber`` and ``torch.nn.functional.huber_loss``, checked to agree.

The ``mistakes`` are NumPy versions of the usual wrong answers, used only to name a mistake.
"""
from __future__ import annotations

import numpy as np

from ..questions import (Case, Chapter, Plain, Verdict, assert_frameworks_agree, compare,
                         quiet, trivial_functions, weighted)
from ..probes.losses import PROBES
from .softmax import stable_log_softmax, stable_softmax, uniform_cross_entropy

ID = "02_losses"
IGNORE_INDEX = -100  # torch's default ignore_index


# --- question 1: weighted cross-entropy from logits ---------------------------------------------------------------

def _ce_inputs(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int, float, str]:
    """The case's inputs with the exercise's defaults filled in (the student's defaults must be the same)."""
    get = case.inputs.get
    weights = get("class_weights")
    return (np.asarray(get("logits"), dtype=np.float64), np.asarray(get("labels"), dtype=np.int64),
            None if weights is None else np.asarray(weights, dtype=np.float64),
            int(get("ignore_index", IGNORE_INDEX)), float(get("label_smoothing", 0.0)), get("reduction", "mean"))


def torch_cross_entropy(logits, labels, class_weights, ignore_index, label_smoothing, reduction) -> np.ndarray:
    """torch's ``F.cross_entropy`` in float64: the expected answer."""
    import torch

    weight = None if class_weights is None else torch.from_numpy(class_weights)
    return torch.nn.functional.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(labels), weight=weight, ignore_index=ignore_index,
        label_smoothing=label_smoothing, reduction=reduction).numpy()


def keras_cross_entropy(logits, labels, class_weights, ignore_index, label_smoothing, reduction) -> np.ndarray:
    """What Keras computes for the same inputs with ``sample_weight = class_weights[label]``.

    ``reduction`` is a Keras reduction ("sum_over_batch_size", "mean_with_sample_weight", "sum", "none"). Without
    smoothing this is ``SparseCategoricalCrossentropy(ignore_class=ignore_index)``; with smoothing, Keras needs
    one-hot labels (``CategoricalCrossentropy``), so ignored samples are removed first (what ignore_class does).
    """
    import keras

    kept = labels != ignore_index
    weights = np.ones(logits.shape[-1]) if class_weights is None else class_weights
    if label_smoothing == 0.0:
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=ignore_index, reduction=reduction, dtype="float64")
        sample_weight = np.where(kept, weights[np.where(kept, labels, 0)], 0.0)
        return np.asarray(loss(labels, logits, sample_weight=sample_weight), dtype=np.float64)
    loss = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=label_smoothing, reduction=reduction, dtype="float64")
    one_hot = np.eye(logits.shape[-1])[labels[kept]]
    result = np.asarray(loss(one_hot, logits[kept], sample_weight=weights[labels[kept]]), dtype=np.float64)
    if reduction == "none":  # put the ignored samples back, as zeros, like torch does
        full = np.zeros(len(labels))
        full[kept] = result
        return full
    return result


def numpy_cross_entropy(logits, labels, class_weights, ignore_index, label_smoothing, reduction, *,
                        divide_by="weights", smoothing="torch", use_weights=True, drop_ignored_class=False,
                        drop_ignored=True, clip=None):
    """A NumPy cross-entropy with switches that reproduce the usual mistakes (the defaults give torch's answer)."""
    z, y = logits, labels
    n, c = z.shape
    w = np.ones(c) if class_weights is None or not use_weights else class_weights
    kept = (y != ignore_index) if drop_ignored else np.ones(n, bool)
    if drop_ignored_class and 0 <= ignore_index < c:
        z = z.copy()
        z[:, ignore_index] = -np.inf  # the ignored class removed from the softmax
    with np.errstate(all="ignore"):
        logp = np.log(np.clip(stable_softmax(z), clip, 1.0)) if clip else stable_log_softmax(z)
        logp = np.where(np.isneginf(logp) & drop_ignored_class, 0.0, logp)
        y_safe = np.where(kept, y, 0)
        nll = -logp[np.arange(n), y_safe]
        eps = label_smoothing
        uniform = {
            "torch": (-logp * w).sum(-1) / c,            # each class's term weighted by that class's weight
            "keras": w[y_safe] * -logp.sum(-1) / c,      # the label's weight scales the whole smoothed row
            "no_divide": (-logp * w).sum(-1),            # forgot the 1/C
            "others": (-logp * w).sum(-1) / (c - 1) - w[y_safe] * nll / (c - 1),  # ε spread over C-1 classes
            "target_only": np.zeros(n),                  # dropped the uniform term
            "unweighted": -logp.sum(-1) / c,             # smoothing term without the class weights
        }[smoothing]
        per_sample = np.where(kept, (1 - eps) * w[y_safe] * nll + eps * uniform, 0.0)
        if reduction == "none":
            return per_sample
        if reduction == "sum":
            return np.asarray(per_sample.sum())
        divisor = {"weights": (w[y_safe] * kept).sum(), "kept": kept.sum(), "all": n}[divide_by]
        return np.asarray(per_sample.sum() / divisor)


def cross_entropy_cases(rng: np.random.Generator) -> list[Case]:
    def batch(n, c, scale=2.0):
        return rng.normal(size=(n, c)) * scale, rng.integers(0, c, size=n)

    def weights(c):
        return rng.uniform(0.2, 5.0, size=c)

    z1, y1 = batch(8, 5)
    z2, y2 = batch(10, 4)
    z3, y3 = batch(9, 5)
    y3[rng.choice(9, size=3, replace=False)] = IGNORE_INDEX
    z4, y4 = batch(10, 4)
    ignored_class = int(rng.integers(0, 4))
    y4[:4] = ignored_class  # make sure some samples carry the ignored class
    z5, y5 = batch(8, 6)
    z6, y6 = batch(12, 4)
    z7, y7 = batch(7, 3)
    z8, y8 = batch(9, 4)
    y8[rng.choice(9, size=3, replace=False)] = IGNORE_INDEX
    z9, y9 = batch(6, 4, scale=1.0)
    wrong = (y9 + 1 + rng.integers(0, 3, size=6)) % 4
    z9[np.arange(6), wrong] = rng.uniform(900, 1000, size=6)  # confidently wrong by ~1000
    z9[np.arange(6), y9] = -rng.uniform(900, 1000, size=6)
    z10, y10 = batch(8, 5, scale=40.0)
    y10[:] = IGNORE_INDEX
    y10[int(rng.integers(0, 8))] = int(rng.integers(0, 5))
    eps = float(rng.choice([0.1, 0.2, 0.3]))
    return [
        Case("8 samples, 5 classes, all defaults", {"logits": z1, "labels": y1}),
        Case("class weights, reduction='mean'", {"logits": z2, "labels": y2, "class_weights": weights(4)}),
        Case("3 of 9 labels are ignore_index=-100", {"logits": z3, "labels": y3}),
        Case(f"ignore_index={ignored_class} is a real class (weights too)",
             {"logits": z4, "labels": y4, "ignore_index": ignored_class, "class_weights": weights(4)}),
        Case(f"label_smoothing={eps}, no weights", {"logits": z5, "labels": y5, "label_smoothing": eps}),
        Case(f"label_smoothing={eps} with class weights (Keras and torch differ)",
             {"logits": z6, "labels": y6, "label_smoothing": eps, "class_weights": weights(4)}),
        Case("reduction='sum' with class weights",
             {"logits": z7, "labels": y7, "class_weights": weights(3), "reduction": "sum"}),
        Case("reduction='none' with class weights and ignored samples",
             {"logits": z8, "labels": y8, "class_weights": weights(4), "reduction": "none"}),
        Case("confidently wrong: logits of ±1000, class weights",
             {"logits": z9, "labels": y9, "class_weights": weights(4)}),
        Case("float32 logits up to ~±120, all samples ignored but one, weights and smoothing",
             {"logits": z10.astype(np.float32), "labels": y10, "class_weights": weights(5).astype(np.float32),
              "label_smoothing": eps}),
    ]


KERAS_DIVIDES_BY_N = ("you matched Keras' sum_over_batch_size semantics (sum of w·loss ÷ number of samples); "
                      "this exercise asks for torch's weighted mean (÷ the sum of the kept samples' weights)")
KERAS_SMOOTHS_ROW = ("you matched Keras (mean_with_sample_weight): w[label] scales the whole smoothed row; torch "
                     "weights each class's smoothing term by that class's own weight")


def judge_cross_entropy(case: Case, outputs: Plain) -> Verdict:
    args = _ce_inputs(case)
    z, y, w, ignore, eps, reduction = args
    expected = torch_cross_entropy(*args)
    if eps == 0.0:  # here Keras and torch agree: make sure the oracle does
        keras_reduction = {"mean": "mean_with_sample_weight"}.get(reduction, reduction)
        assert_frameworks_agree(expected, keras_cross_entropy(*args[:-1], keras_reduction), "weighted cross-entropy")

    def mistake(**switches):
        return numpy_cross_entropy(*args, **switches)

    mistakes = {}
    if reduction == "mean":
        mistakes[KERAS_DIVIDES_BY_N] = keras_cross_entropy(*args[:-1], "sum_over_batch_size")
        mistakes[KERAS_SMOOTHS_ROW] = keras_cross_entropy(*args[:-1], "mean_with_sample_weight")
        mistakes["divided by the number of kept samples instead of the sum of their weights"] = mistake(
            divide_by="kept")
        mistakes["divided by all N samples: ignored samples must leave the denominator too"] = mistake(
            divide_by="all")
    else:
        mistakes[KERAS_SMOOTHS_ROW] = keras_cross_entropy(*args[:-1], reduction)
        mistakes["ignored `reduction`: 'sum' adds the per-sample losses, 'none' returns one per sample"] = \
            numpy_cross_entropy(*args[:-1], "mean")
    mistakes.update({
        "ignored class_weights: each sample's loss is weighted by its label's class weight": mistake(
            use_weights=False),
        "removed the ignored class from the softmax: ignore_index drops the samples with that label, the class "
        "stays in every softmax": mistake(drop_ignored_class=True),
        "spread ε over the other C−1 classes: smoothing spreads ε over all C classes, the label included":
            mistake(smoothing="others"),
        "forgot to divide ε by the number of classes in the smoothing term": mistake(smoothing="no_divide"),
        "smoothed the wrong term: label smoothing keeps a (1−ε) share of the label's term and adds a uniform "
        "term over all classes": mistake(
            smoothing="target_only"),
        "log of clipped probabilities: confident mistakes are capped; the logits never need to become "
        "probabilities": mistake(
            clip=1e-7),
    })
    if w is not None and eps > 0:
        mistakes["smoothing and class weights not combined: in torch the smoothing term weighs each class's part by "
                 "that class's weight too (you left it unweighted)"] = mistake(smoothing="unweighted")
    if 0 <= ignore < z.shape[-1]:  # a real class id: forgetting to drop its samples gives a number
        mistakes["did not drop the samples whose label equals ignore_index"] = mistake(drop_ignored=False)
    if reduction == "none":
        kept = y != ignore
        mistakes["returned only the kept samples: reduction='none' keeps one entry per sample (0 if ignored)"] = \
            numpy_cross_entropy(*args)[kept]
    return compare(outputs["result"], expected, mistakes=mistakes, what="cross-entropy")


# --- question 2: binary focal loss from logits --------------------------------------------------------------------

def _focal_inputs(case: Case) -> tuple[np.ndarray, np.ndarray, float, float | None]:
    get = case.inputs.get
    alpha = get("alpha")
    return (np.asarray(get("logits"), dtype=np.float64), np.asarray(get("targets"), dtype=np.float64),
            float(get("gamma", 2.0)), None if alpha is None else float(alpha))


def framework_focal_loss(logits, targets, gamma, alpha) -> np.ndarray:
    """Mean binary focal loss by Keras' ``BinaryFocalCrossentropy`` and by torch primitives, checked to agree."""
    import keras
    import torch

    loss = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=alpha is not None,
                                                alpha=0.25 if alpha is None else alpha, gamma=gamma,
                                                from_logits=True, dtype="float64")
    # Keras averages over the last axis, then over the batch: give it a column so every element counts once.
    by_keras = float(loss(targets.reshape(-1, 1), logits.reshape(-1, 1)))
    z, t = torch.from_numpy(logits), torch.from_numpy(targets)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, t, reduction="none")
    p = torch.sigmoid(z)
    p_true = p * t + (1 - p) * (1 - t)
    by_torch = bce * (1 - p_true) ** gamma
    if alpha is not None:
        by_torch = by_torch * (alpha * t + (1 - alpha) * (1 - t))
    by_torch = by_torch.mean().item()
    assert_frameworks_agree(np.array(by_keras), np.array(by_torch), "binary focal loss")
    return np.asarray(by_torch)


@quiet
def numpy_focal_loss(z, t, gamma, alpha, *, factor="p_true", alpha_mode="normal", bce="stable", reduce="mean"):
    """NumPy focal loss with switches for the usual mistakes (the defaults give the right answer)."""
    p = 1 / (1 + np.exp(-z))
    if bce == "stable":
        ce = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    else:  # "clipped": log of clipped probabilities (Keras on probabilities)
        q = np.clip(p, 1e-7, 1 - 1e-7)
        ce = -(t * np.log(q) + (1 - t) * np.log(1 - q))
    p_true = p * t + (1 - p) * (1 - t)
    modulating = {"p_true": (1 - p_true) ** gamma, "p": (1 - p) ** gamma, "none": 1.0,
                  "times": (1 - p_true) * gamma}[factor]
    loss = ce * modulating
    if alpha is not None:
        a = {"normal": alpha * t + (1 - alpha) * (1 - t), "swapped": (1 - alpha) * t + alpha * (1 - t),
             "all": alpha, "positives_only": alpha * t + (1 - t)}[alpha_mode]
        loss = loss * a
    return loss.mean() if reduce == "mean" else (loss.sum() if reduce == "sum" else loss)


def focal_cases(rng: np.random.Generator) -> list[Case]:
    def targets(shape, rate=0.3):
        return (rng.random(shape) < rate).astype(np.float64)

    confident = rng.normal(size=(8, 1))
    t_conf = targets((8, 1), 0.5)
    t_conf[:2] = [[1.0], [0.0]]  # at least one of each label
    signs = np.where(rng.random((8, 1)) < 0.5, 1.0, -1.0)  # right or wrong, by ~1000
    confident = signs * (2 * t_conf - 1) * rng.uniform(900, 1000, size=(8, 1))
    alpha = float(rng.choice([0.25, 0.4, 0.75]))
    return [
        Case("16 samples, one output, gamma=2", {"logits": rng.normal(scale=2, size=(16, 1)),
                                                  "targets": targets((16, 1))}),
        Case(f"multi-label (8×5), gamma=2, alpha={alpha}",
             {"logits": rng.normal(scale=2, size=(8, 5)), "targets": targets((8, 5)), "alpha": alpha}),
        Case("gamma=0 without alpha (this is plain BCE)",
             {"logits": rng.normal(size=(10, 2)), "targets": targets((10, 2)), "gamma": 0.0}),
        Case("gamma=5, a 1-D vector of 12 logits", {"logits": rng.normal(scale=3, size=12),
                                                     "targets": targets(12, 0.5), "gamma": 5.0}),
        Case("logits of ±1000, right and wrong, alpha=0.25",
             {"logits": confident, "targets": t_conf, "alpha": 0.25}),
        Case("float32 logits of ±20 to ±40 (float32 sigmoid saturates to 1)",
             {"logits": (rng.uniform(20, 40, size=(6, 2)) * np.where(rng.random((6, 2)) < 0.5, 1, -1)
                         ).astype(np.float32), "targets": targets((6, 2), 0.5).astype(np.float32)}),
    ]


def judge_focal(case: Case, outputs: Plain) -> Verdict:
    z, t, gamma, alpha = _focal_inputs(case)
    expected = framework_focal_loss(z, t, gamma, alpha)

    def mistake(**switches):
        return numpy_focal_loss(z, t, gamma, alpha, **switches)

    mistakes = {
        "forgot the modulating factor (1 − p_t)^γ: that is plain binary cross-entropy": mistake(factor="none"),
        "used (1 − p)^γ for every sample: p_t is the probability of the TRUE label (p if y=1, 1 − p if y=0)":
            mistake(factor="p"),
        "multiplied by γ instead of raising to the power γ": mistake(factor="times"),
        "swapped alpha: alpha weighs the positives (y=1), 1 − alpha the negatives": mistake(alpha_mode="swapped"),
        "multiplied every sample by alpha: negatives get 1 − alpha": mistake(alpha_mode="all"),
        "weighted only the positives by alpha: negatives get 1 − alpha, not 1": mistake(alpha_mode="positives_only"),
        "log of clipped probabilities: confident mistakes are capped; binary cross-entropy can be computed "
        "stably from the logits themselves": mistake(bce="clipped"),
        "summed over the elements: the loss is the mean": mistake(reduce="sum"),
        "returned one loss per element: average them": mistake(reduce="none"),
        "applied the sigmoid twice: the inputs are logits; your formula treats sigmoid(logits) as logits "
        "(or as probabilities after a second sigmoid)": numpy_focal_loss(
            quiet(lambda: 1 / (1 + np.exp(-z)))(), t, gamma, alpha),
    }
    return compare(outputs["result"], expected, mistakes=mistakes, what="focal loss")


# --- question 3: Huber loss ---------------------------------------------------------------------------------------

def framework_huber(y_true, y_pred, delta) -> np.ndarray:
    """Mean Huber loss by ``keras.losses.Huber`` and ``torch.nn.functional.huber_loss``, checked to agree."""
    import keras
    import torch

    by_keras = float(keras.losses.Huber(delta=delta, dtype="float64")(y_true.reshape(-1, 1),
                                                                        y_pred.reshape(-1, 1)))
    by_torch = torch.nn.functional.huber_loss(torch.from_numpy(y_pred), torch.from_numpy(y_true),
                                              delta=delta).item()
    assert_frameworks_agree(np.array(by_keras), np.array(by_torch), "Huber loss")
    return np.asarray(by_torch)


def numpy_huber(y_true, y_pred, delta, *, half=True, offset=True, swapped=False, reduce="mean"):
    """NumPy Huber with switches for the usual mistakes (the defaults give the right answer)."""
    e = np.abs(y_pred - y_true)
    quadratic = (0.5 if half else 1.0) * e ** 2
    linear = delta * e - (0.5 * delta ** 2 if offset else 0.0)
    small = e > delta if swapped else e <= delta
    loss = np.where(small, quadratic, linear)
    return loss.mean() if reduce == "mean" else (loss.sum() if reduce == "sum" else loss)


def huber_cases(rng: np.random.Generator) -> list[Case]:
    def pair(shape, spread):
        y_true = rng.normal(size=shape)
        return {"y_true": y_true, "y_pred": y_true + rng.normal(scale=spread, size=shape)}

    delta = float(rng.choice([0.3, 0.5, 2.5, 4.0]))
    return [
        Case("20 errors on both sides of delta=1 (the default)", pair(20, 1.5)),
        Case(f"a non-default delta ({delta})", {**pair(16, 2.0), "delta": delta}),
        Case("all errors below delta=1 (the quadratic part only)", pair(10, 0.1)),
        Case("all errors far above delta=0.5 (the linear part only)",
             {"y_true": np.zeros(8), "y_pred": rng.uniform(5, 50, 8) * np.where(rng.random(8) < 0.5, 1, -1),
              "delta": 0.5}),
        Case("a (4×3) batch, delta=2", {**pair((4, 3), 3.0), "delta": 2.0}),
        Case("float32 targets around 1000", {"y_true": (1000 + rng.normal(size=12)).astype(np.float32),
                                             "y_pred": (1000 + rng.normal(scale=2, size=12)).astype(np.float32)}),
    ]


def judge_huber(case: Case, outputs: Plain) -> Verdict:
    y_true = np.asarray(case.inputs["y_true"], dtype=np.float64)
    y_pred = np.asarray(case.inputs["y_pred"], dtype=np.float64)
    delta = float(case.inputs.get("delta", 1.0))
    expected = framework_huber(y_true, y_pred, delta)

    def mistake(**switches):
        return numpy_huber(y_true, y_pred, delta, **switches)

    mistakes = {
        "computed torch's SmoothL1Loss(beta=delta): the two differ by a factor": np.asarray(expected / delta),
        "forgot the 1/2 in the quadratic part": mistake(half=False),
        "forgot −delta²/2 in the linear part: the two parts must meet at |e| = delta":
            mistake(offset=False),
        "swapped the branches: small errors are the quadratic ones": mistake(swapped=True),
        "that is the mean squared error: Huber is quadratic only up to delta": np.mean((y_pred - y_true) ** 2),
        "that is the mean absolute error: Huber is quadratic for small errors": np.mean(np.abs(y_pred - y_true)),
        "summed over the elements: the loss is the mean": mistake(reduce="sum"),
        "returned one loss per element: average them": mistake(reduce="none"),
    }
    return compare(outputs["result"], expected, mistakes=mistakes, what="Huber loss")


#: (part of a case label, weight, what the case tests).
CROSS_ENTROPY_WEIGHTS = [
    ("class weights, reduction='mean'", 2, "the weighted mean (÷ the sum of the kept samples' weights)"),
    ("is a real class", 2, "ignore_index on a real class"),
    ("with class weights (Keras and torch differ)", 2, "combining label smoothing with class weights"),
    ("confidently wrong", 2, "numerical stability at logits of ±1000"),
    ("all samples ignored but one", 2, "float32 inputs with ignored samples, weights and smoothing together"),
    ("ignore_index=-100", 1, "dropping ignored samples"),
    ("label_smoothing", 1, "label smoothing"),
    ("reduction=", 1, "the reduction argument"),
]
FOCAL_WEIGHTS = [
    ("±1000", 3, "binary cross-entropy from logits at extreme logits"),
    ("alpha=", 2, "class balancing by alpha"),
    ("float32", 2, "stability in float32, where the sigmoid saturates"),
    ("gamma=0", 1, "the focal loss reducing to BCE"),
]
HUBER_WEIGHTS = [
    ("non-default delta", 2, "honouring delta"),
    ("linear part only", 2, "the linear branch delta·(|e| − delta/2)"),
    ("float32", 1, "precision of float32 inputs"),
]

CHAPTER = Chapter(
    id=ID,
    title="Loss functions",
    questions=(
        PROBES.question(
            "weighted_cross_entropy", 5, weighted(cross_entropy_cases, CROSS_ENTROPY_WEIGHTS,
                                                "the cross-entropy of ordinary logits"),
            judge_cross_entropy, trivial=trivial_functions(the_loss_of_a_uniform_prediction=uniform_cross_entropy),
            hint="Match torch's F.cross_entropy: start from log-softmax, and read how weight, ignore_index, "
                 "label_smoothing and reduction combine, in particular what a weighted 'mean' divides by (sections "
                 "\"Label smoothing\", \"Class weights and sample weights\" and \"`ignore_index` and `ignore_class` "
                 "drop samples, not classes\")."),
        PROBES.question(
            "binary_focal_loss", 3, weighted(focal_cases, FOCAL_WEIGHTS, "the focal loss formula"),
            judge_focal,
            hint="Focal loss is binary cross-entropy turned down where the model is already right: compute the BCE "
                 "part from the logits, never from clipped probabilities, and mind which label the modulating "
                 "factor and alpha refer to (section \"Focal loss: built into Keras, a few lines in PyTorch\")."),
        PROBES.question(
            "huber_loss", 2, weighted(huber_cases, HUBER_WEIGHTS, "the Huber formula"),
            judge_huber,
            hint="Huber is quadratic for small errors and linear for large ones, the two pieces meeting smoothly "
                 "at delta; torch's SmoothL1Loss is a close relative, not the same (section \"Regression: MSE, MAE "
                 "(L1) and Huber\")."),
    ),
)
