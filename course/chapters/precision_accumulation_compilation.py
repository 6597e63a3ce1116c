"""Chapter 08: precision, gradient accumulation and compilation.

Three questions:

* ``accumulate_gradients``: one PyTorch accumulation step over micro-batches that must leave in ``.grad`` exactly
  the gradient of the whole batch's loss (mean or sum reduction), whatever the micro-batch size. The oracles are the
  full-batch gradient in PyTorch (float64) and in Keras/TensorFlow (``tf.GradientTape`` on a float64 Keras model
  with the same weights), checked to agree.
* ``round_to_bfloat16``: float32 to the nearest bfloat16 in NumPy. The oracles are ``torch``'s
  ``.to(torch.bfloat16)``, ``ml_dtypes.bfloat16`` (TensorFlow's bfloat16 type) and ``keras.ops.cast``, checked to
  agree bit for bit, NaN positions included.
* ``scaled_clipped_step``: one SGD update from loss-scaled, accumulated gradients, unscaled and clipped once, with
  ``GradScaler`` deciding to step or skip. The oracle is that step in PyTorch, checked against Keras: ``SGD`` with
  ``global_clipnorm`` on the full-batch gradient, and ``LossScaleOptimizer`` skipping a step whose scaled gradients
  overflow.

The usual mistakes are computed on the same inputs so that feedback names the mistake.
"""
from __future__ import annotations

import numpy as np

from ..probes.precision_accumulation_compilation import ID, PROBES, STALE_GRADIENT, build_torch_mlp, flat_parameters
from ..questions import Case, Chapter, Plain, Verdict, assert_frameworks_agree, compare

#: The student's step runs in float32; the oracle in float64.
RTOL, ATOL = 1e-4, 1e-6


def _first_failure(checks) -> Verdict:
    """Compare (got, expected, mistakes, what, rtol, atol) tuples in order; the first failure is the verdict."""
    for got, expected, mistakes, what, rtol, atol in checks:
        verdict = compare(got, expected, mistakes=mistakes, rtol=rtol, atol=atol, what=what)
        if not verdict.passed:
            return verdict
    return Verdict(True, "")


# --- question 1: gradient accumulation ---------------------------------------------------------------------------

def accumulate_cases(rng: np.random.Generator) -> list[Case]:
    def case(label, n, micro_batch, reduction, n_in=5, hidden=6, classes=4, scale=1.0):
        f32 = np.float32
        return Case(label, {
            "x": rng.normal(scale=scale, size=(n, n_in)).astype(f32),
            "y": rng.integers(0, classes, size=n),
            "micro_batch": micro_batch, "reduction": reduction,
            "w1": rng.normal(scale=0.7, size=(n_in, hidden)).astype(f32),
            "b1": rng.normal(scale=0.1, size=hidden).astype(f32),
            "w2": rng.normal(scale=0.7, size=(hidden, classes)).astype(f32),
            "b2": rng.normal(scale=0.1, size=classes).astype(f32)})

    return [
        case("mean, 24 samples, micro-batches of 8", 24, 8, "mean"),
        case("mean, 20 samples by 8 (the last has 4)", 20, 8, "mean"),
        case("mean, 31 samples by 7 (last has 3), inputs x3", 31, 7, "mean", scale=3.0),
        case("sum, 22 samples by 5 (the last has 2)", 22, 5, "sum"),
        case("micro-batch of 16 > the batch of 10", 10, 16, "mean"),
        case("micro-batches of one sample (7 samples)", 7, 1, "mean"),
        case("sum, one micro-batch of all 12 samples", 12, 12, "sum"),
    ]


def _weights_float64(inputs: dict) -> list[np.ndarray]:
    return [np.asarray(inputs[k], np.float64) for k in ("w1", "b1", "w2", "b2")]


def _torch_gradient(inputs: dict, x: np.ndarray, y: np.ndarray, reduction: str):
    """Loss and flat gradient (torch parameter order and layout) of one batch, in float64."""
    import torch

    w1, b1, w2, b2 = (torch.tensor(w, requires_grad=True) for w in _weights_float64(inputs))
    logits = torch.tanh(torch.from_numpy(x) @ w1 + b1) @ w2 + b2
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y), reduction=reduction)
    loss.backward()
    grads = [w1.grad.T, b1.grad, w2.grad.T, b2.grad]  # Keras layout -> torch layout (out, in)
    return loss.item(), np.concatenate([g.numpy().ravel() for g in grads])


def _keras_gradient(inputs: dict, reduction: str, dtype: str = "float64"):
    """The full-batch loss and gradient (torch layout) by tf.GradientTape on Keras variables with the case's
    weights: the same Dense-tanh-Dense model, written with the ops (building a Keras model per case costs more)."""
    import keras
    import tensorflow as tf

    variables = [keras.Variable(np.asarray(inputs[k], dtype), dtype=dtype) for k in ("w1", "b1", "w2", "b2")]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction={"mean": "sum_over_batch_size", "sum": "sum"}[reduction], dtype=dtype)
    x = tf.constant(np.asarray(inputs["x"], dtype))
    with tf.GradientTape() as tape:
        w1, b1, w2, b2 = variables
        logits = keras.ops.matmul(keras.ops.tanh(keras.ops.matmul(x, w1) + b1), w2) + b2
        loss = loss_fn(np.asarray(inputs["y"]), logits)
    kernel1, bias1, kernel2, bias2 = (np.asarray(g) for g in tape.gradient(loss, variables))
    grads = [kernel1.T, bias1, kernel2.T, bias2]
    return float(loss), np.concatenate([g.ravel() for g in grads])


def full_batch_gradient(inputs: dict) -> tuple[float, np.ndarray]:
    """The oracle: the whole batch's loss and gradient by PyTorch, checked against Keras/TensorFlow."""
    x, y = np.asarray(inputs["x"], np.float64), np.asarray(inputs["y"], np.int64)
    loss, grads = _torch_gradient(inputs, x, y, inputs["reduction"])
    keras_loss, keras_grads = _keras_gradient(inputs, inputs["reduction"])
    assert_frameworks_agree(grads, keras_grads, "the full-batch gradient", rtol=1e-9, atol=1e-12)
    assert_frameworks_agree(loss, keras_loss, "the full-batch loss", rtol=1e-9, atol=1e-12)
    return loss, grads


def accumulated(inputs: dict, weighting: str, reduction: str | None = None, only_last: bool = False):
    """What an accumulation loop gives (loss parts and summed gradient), each micro-batch's loss times a factor.

    ``weighting``: "size" (n_k / N, right for a mean), "one" (no factor: right for a sum), "plain mean" (1 / k),
    "nominal" (micro_batch / N even for a smaller last micro-batch). ``reduction`` of each micro-batch's loss
    defaults to the case's. ``only_last`` keeps the last micro-batch's contribution only (gradients zeroed inside
    the loop).
    """
    x, y = np.asarray(inputs["x"], np.float64), np.asarray(inputs["y"], np.int64)
    n, size = len(x), int(inputs["micro_batch"])
    starts = list(range(0, n, size))
    losses, total = [], 0.0
    for start in starts:
        xm, ym = x[start:start + size], y[start:start + size]
        factor = {"size": len(xm) / n, "one": 1.0, "plain mean": 1 / len(starts), "nominal": size / n}[weighting]
        loss, grads = _torch_gradient(inputs, xm, ym, reduction or inputs["reduction"])
        losses.append(loss)
        total = factor * grads + (0.0 if only_last else total)
    return np.array(losses), total


def _right_weighting(inputs: dict) -> str:
    return "size" if inputs["reduction"] == "mean" else "one"


def accumulate_mistakes(inputs: dict) -> dict:
    """How to compute the gradients of the usual wrong accumulation loops (lazily: only on a wrong answer)."""
    right = _right_weighting(inputs)

    def grads(*args, **kwargs):
        return lambda: accumulated(inputs, *args, **kwargs)[1]

    mistakes = {
        "the gradients of an earlier step were still in .grad: nothing cleared them before the first "
        "micro-batch": lambda: accumulated(inputs, right)[1] + STALE_GRADIENT,
        "only the last micro-batch's gradient is left: the gradients were cleared inside the loop":
            grads(right, only_last=True),
    }
    if inputs["reduction"] == "mean":
        mistakes.update({
            "a plain mean of the micro-batch means (each divided by the number of micro-batches): a smaller last "
            "micro-batch then counts as much as a full one": grads("plain mean"),
            "summed the micro-batch means without dividing: the result is several times the batch's mean "
            "gradient": grads("one"),
            "weighted every micro-batch by micro_batch / N, also the last, smaller one (and a micro-batch larger "
            "than the batch): its actual size is what counts": grads("nominal"),
            "summed the per-sample losses (reduction='sum') for a mean loss: the whole batch's loss is a mean "
            "here": grads("one", reduction="sum"),
        })
    else:
        mistakes.update({
            "divided a sum loss by the number of samples: with reduction='sum' the micro-batch sums just add up":
                grads("size", reduction="mean"),
            "averaged the micro-batch sums: with reduction='sum' they just add up": grads("plain mean"),
            "weighted each micro-batch's sum by its share of the samples: that is for mean losses; with "
            "reduction='sum' the sums just add up": grads("size"),
        })
    return mistakes


def judge_accumulate(case: Case, outputs: Plain) -> Verdict:
    inputs = case.inputs
    loss, grads = full_batch_gradient(inputs)
    weights = np.concatenate([w.ravel() for w in (inputs["w1"].T, inputs["b1"], inputs["w2"].T, inputs["b2"])])
    if not np.array_equal(outputs["weights"], weights.astype(np.float64)):
        return Verdict(False, "the weights changed: an accumulation step only fills .grad; leave "
                              "optimizer.step() to the caller")
    if np.isnan(outputs["grads"]).all():
        return Verdict(False, "no gradient in .grad: no backward() reached the parameters")

    losses = lambda weighting: accumulated(inputs, weighting)[0]  # noqa: E731 (lazy mistakes below)
    n, size = len(inputs["x"]), int(inputs["micro_batch"])
    sizes = np.array([len(range(s, min(s + size, n))) for s in range(0, n, size)])
    loss_mistakes = {
        "returned the last micro-batch's loss, not the whole batch's": lambda: losses("one")[-1],
    }
    if inputs["reduction"] == "mean":
        loss_mistakes.update({
            "returned the plain mean of the micro-batch losses: a smaller last micro-batch counts less":
                lambda: losses("one").mean(),
            "returned the sum of the micro-batch mean losses, not the whole batch's mean":
                lambda: losses("one").sum(),
        })
    else:
        loss_mistakes.update({
            "returned the mean per sample: with reduction='sum' the loss is a sum":
                lambda: losses("one").sum() / sizes.sum(),
            "returned the plain mean of the micro-batch sums: with reduction='sum' the loss is their sum":
                lambda: losses("one").mean(),
        })
    return _first_failure([
        (outputs["grads"], grads, accumulate_mistakes(inputs), "the gradient left in .grad", RTOL, ATOL),
        (outputs["loss"], np.float64(loss), loss_mistakes, "the returned loss", RTOL, ATOL),
    ])


# --- question 2: rounding float32 to bfloat16 ---------------------------------------------------------------------

def _from_bits(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def bfloat16_cases(rng: np.random.Generator) -> list[Case]:
    def random_bits(n, exponent_low=1, exponent_high=254):
        sign = rng.integers(0, 2, n, dtype=np.uint64) << 31
        exponent = rng.integers(exponent_low, exponent_high + 1, n, dtype=np.uint64) << 23
        mantissa = rng.integers(0, 1 << 23, n, dtype=np.uint64)
        return sign | exponent | mantissa

    ties = (random_bits(24, 100, 154) & ~np.uint64(0xFFFF)) | np.uint64(0x8000)  # exactly halfway, both parities
    ties[:2] = [0x3F808000, 0x3F818000]  # 1 + 2**-8 (tie, even below) and 1 + 3 * 2**-8 (tie, odd below)
    nan_bits = [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF, 0xFFFFFFFF, 0x7FBFFFFF]
    special = np.concatenate([_from_bits(nan_bits), np.float32([np.inf, -np.inf, 0.0, -0.0]),
                              rng.normal(size=6).astype(np.float32)])
    subnormals = random_bits(20, 0, 0)
    subnormals[:3] = [0x00008000, 0x00018000, 0x80007FFF]  # ties and a just-below-half negative one
    huge = np.concatenate([[0x7F7F8000, 0x7F7F7FFF, 0x7F7FFFFF, 0xFF7F8001, 0x7F7F0000, 0x7F7E8001, 0xFF7EC000],
                           rng.integers(0x7F7F8000, 0x7F800000, 5)])
    near_one = np.float32(1.0) + np.arange(-8, 9, dtype=np.float32) * np.float32(2.0 ** -10)
    return [
        Case("ordinary values, both signs", {"x": rng.normal(scale=50.0, size=40).astype(np.float32)}),
        Case("exact ties (even and odd neighbours)", {"x": _from_bits(ties)}),
        Case("NaN payloads, +-inf, +-0 among others", {"x": rng.permutation(special)}),
        Case("subnormals (below 1.18e-38), ties", {"x": _from_bits(subnormals)}),
        Case("overflow: past the largest rounds to inf", {"x": _from_bits(huge)}),
        Case("a 3x17 array near 1, steps of 2**-10",
             {"x": np.tile(near_one, (3, 1)) * np.float32([[1.0], [-1.0], [2.0 ** 100]])}),
    ]


def framework_bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 -> float32 by torch, checked bit for bit against ml_dtypes and keras.ops.cast."""
    import keras
    import ml_dtypes
    import torch

    x = np.asarray(x, np.float32)
    by_torch = torch.from_numpy(x.copy()).to(torch.bfloat16).to(torch.float32).numpy()
    with np.errstate(invalid="ignore"):  # NumPy warns on casting NaN to bfloat16; NaN is a case here
        by_ml_dtypes = x.astype(ml_dtypes.bfloat16).astype(np.float32)
        by_keras = keras.ops.convert_to_numpy(keras.ops.cast(x, "bfloat16")).astype(np.float32)
    for other, name in [(by_ml_dtypes, "ml_dtypes"), (by_keras, "keras.ops.cast")]:
        same_nan = np.array_equal(np.isnan(by_torch), np.isnan(other))
        same_values = np.array_equal(np.nan_to_num(by_torch, nan=0.0), np.nan_to_num(other, nan=0.0))
        if not (same_nan and same_values):
            raise AssertionError(f"torch and {name} disagree on float32 -> bfloat16: the oracle itself is broken")
    return by_torch


def _bits64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)


def _to_float(bits: np.ndarray) -> np.ndarray:
    return (bits & np.uint64(0xFFFF0000)).astype(np.uint32).view(np.float32)


def _round_nearest_even_bits(x: np.ndarray) -> np.ndarray:
    bits = _bits64(x)
    return bits + np.uint64(0x7FFF) + ((bits >> np.uint64(16)) & np.uint64(1))


def bfloat16_mistakes(x: np.ndarray) -> dict:
    """What the usual wrong roundings give on ``x`` (float32 results)."""
    x = np.asarray(x, np.float32)
    nan = np.isnan(x)
    keep_nan = lambda values: np.where(nan, np.float32(np.nan), values)  # noqa: E731
    right = framework_bfloat16(x)
    tiny = np.float32(2.0 ** -126)
    with np.errstate(over="ignore", invalid="ignore"):  # the float16 mistake overflows on purpose
        largest = np.float32(3.3895313892515355e38)
        mistakes = {
            "truncated the low 16 bits: the conversion rounds to nearest":
                keep_nan(_to_float(_bits64(x))),
            "rounded ties away from zero: a value exactly halfway goes to the even neighbour (ties to even)": keep_nan(_to_float(_bits64(x) + np.uint64(0x8000))),
            "NaN came out as a number: the rounding carry turns some NaN payloads into inf or -0":
                _to_float(_round_nearest_even_bits(x) & np.uint64(0xFFFFFFFF)),
            "flushed subnormal values to 0: bfloat16 has float32's subnormals":
                np.where(np.abs(x) < tiny, np.copysign(np.float32(0.0), x), right),
            "saturated at the largest bfloat16: values that round beyond it become inf":
                np.where(np.isinf(right) & np.isfinite(x), np.copysign(largest, x), right),
            "rounded to float16, not bfloat16: bfloat16 keeps float32's 8 exponent bits and 7 mantissa bits":
                x.astype(np.float16).astype(np.float32),
        }
    return mistakes


def _split(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore"):
        values = np.asarray(values, np.float64)
    nan = np.isnan(values)
    return nan.astype(np.float64), np.where(nan, 0.0, values)


def judge_bfloat16(case: Case, outputs: Plain) -> Verdict:
    x = np.asarray(case.inputs["x"], np.float32)
    expected_nan, expected = _split(framework_bfloat16(x))
    mistakes = {name: _split(wrong) for name, wrong in bfloat16_mistakes(x).items()}
    nan_verdict = compare(outputs["is_nan"], expected_nan, mistakes={k: v[0] for k, v in mistakes.items()},
                          rtol=0.0, atol=0.0, what="where the NaNs are")
    if not nan_verdict.passed and nan_verdict.message.startswith("where the NaNs are"):
        return Verdict(False, "a NaN input came out as a number (or a number as NaN): the rounding carry can "
                              "turn a NaN payload into inf or 0")
    return _first_failure([
        (outputs["is_nan"], expected_nan, {k: v[0] for k, v in mistakes.items()}, "where the NaNs are", 0.0, 0.0),
        (outputs["values"], expected, {k: v[1] for k, v in mistakes.items()}, "the rounded values", 0.0, 0.0),
    ])


# --- question 3: a loss-scaled, accumulated, clipped update -------------------------------------------------------

def step_cases(rng: np.random.Generator) -> list[Case]:
    def case(label, n, micro_batch, max_norm, scale, lr=0.5, x_scale=1.0, w1_scale=0.7, w2_scale=0.7):
        f32 = np.float32
        n_in, hidden, classes = 5, 6, 4
        return Case(label, {
            "x": rng.normal(scale=x_scale, size=(n, n_in)).astype(f32), "y": rng.integers(0, classes, size=n),
            "micro_batch": micro_batch, "max_norm": max_norm, "scale": scale, "lr": lr,
            "w1": rng.normal(scale=w1_scale, size=(n_in, hidden)).astype(f32),
            "b1": rng.normal(scale=0.1, size=hidden).astype(f32),
            "w2": rng.normal(scale=w2_scale, size=(hidden, classes)).astype(f32),
            "b2": rng.normal(scale=0.1, size=classes).astype(f32)})

    return [
        case("20 samples by 8, max_norm 0.1, scale 2**16", 20, 8, 0.1, 2.0 ** 16),
        case("24 samples by 6, max_norm 0.05, scale 2**10", 24, 6, 0.05, 2.0 ** 10),
        case("31 samples by 7, max_norm 1e6 (never clips)", 31, 7, 1e6, 2.0 ** 16),
        case("micro-batch of 16 > the batch of 10, max_norm 0.02", 10, 16, 0.02, 2.0 ** 20),
        case("scale 2**127: the scaled gradients overflow", 20, 8, 0.1, 2.0 ** 127, x_scale=10.0, w1_scale=0.01,
             w2_scale=100.0),
    ]


def reference_step(inputs: dict, *, clip="once", unscale=True, weighting="size", zero=True, use_scaler=True,
                   update=True, norm_after=False) -> dict:
    """The update step the question asks for, in PyTorch; each keyword switches on one usual mistake."""
    import torch

    model = build_torch_mlp(inputs)
    params = list(model.parameters())
    for p in params:
        p.grad = torch.full_like(p, STALE_GRADIENT)
    optimizer = torch.optim.SGD(params, lr=float(inputs["lr"]))
    scaler = torch.amp.GradScaler("cpu", init_scale=float(inputs["scale"]))
    x, y = torch.tensor(inputs["x"], dtype=torch.float32), torch.tensor(inputs["y"], dtype=torch.long)
    n, size, max_norm = len(x), int(inputs["micro_batch"]), float(inputs["max_norm"])
    starts = list(range(0, n, size))
    if zero:
        optimizer.zero_grad()
    for start in starts:
        xm, ym = x[start:start + size], y[start:start + size]
        factor = len(xm) / n if weighting == "size" else 1 / len(starts)
        if clip == "each":  # clip this micro-batch's piece only
            before = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
            optimizer.zero_grad()
        scaler.scale(torch.nn.functional.cross_entropy(model(xm), ym) * factor).backward()
        if clip == "each":
            torch.nn.utils.clip_grad_norm_(params, max_norm)
            for p, b in zip(params, before):
                p.grad += b
    if unscale:
        scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if clip == "once" else float("inf"))
    if norm_after:
        norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params))
    if use_scaler:
        scaler.step(optimizer)
    else:
        optimizer.step()
    if update:
        scaler.update()
    return {"weights": flat_parameters(model), "norm": float(norm), "scale": float(scaler.get_scale())}


def keras_step(inputs: dict) -> tuple[np.ndarray, float]:
    """The same update by Keras: the full-batch float64 gradient, scaled and cast to float32 as a float32 backward
    pass would hold it, applied by ``LossScaleOptimizer(SGD(global_clipnorm=max_norm))`` to Keras variables.
    Returns the weights afterwards (torch layout) and the scale."""
    import keras

    _, grads = _keras_gradient({**inputs, "reduction": "mean"}, "mean")
    shapes = [inputs["w1"].T.shape, inputs["b1"].shape, inputs["w2"].T.shape, inputs["b2"].shape]
    variables = [keras.Variable(np.asarray(inputs[k], np.float32).T) for k in ("w1", "b1", "w2", "b2")]
    scale = float(inputs["scale"])
    pieces, start = [], 0
    with np.errstate(over="ignore"):  # an overflow is one of the cases
        for shape in shapes:
            size = int(np.prod(shape))
            pieces.append((grads[start:start + size].reshape(shape) * scale).astype(np.float32))
            start += size
    optimizer = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(float(inputs["lr"]), global_clipnorm=float(inputs["max_norm"])), initial_scale=scale)
    optimizer.apply(pieces, variables)
    weights = np.concatenate([np.asarray(v).ravel() for v in variables]).astype(np.float64)
    return weights, float(optimizer.scale_loss(1.0))


def judge_step(case: Case, outputs: Plain) -> Verdict:
    inputs = case.inputs
    expected = reference_step(inputs)
    keras_weights, keras_scale = keras_step(inputs)
    assert_frameworks_agree(expected["weights"], keras_weights, "the updated weights", rtol=1e-4, atol=1e-5)
    assert_frameworks_agree(expected["scale"], keras_scale, "the loss scale after the step", rtol=0, atol=0)

    def run(part, **mistake):
        return lambda: np.float64(reference_step(inputs, **mistake)[part])

    weight_mistakes = {
        "the gradients of an earlier step were still in .grad: nothing cleared them before the first "
        "micro-batch": run("weights", zero=False),
        "clipped the scaled gradients (no unscale_ before clipping): the threshold then applies to gradients "
        "multiplied by the scale": run("weights", unscale=False),
        "clipped each micro-batch's gradient: the limit is on the accumulated gradient, once":
            run("weights", clip="each"),
        "the update was not clipped": run("weights", clip="never"),
        "a plain mean of the micro-batch means: a smaller last micro-batch then counts as much as a full one":
            run("weights", weighting="plain mean"),
        "the step ran although the scaled gradients overflowed: optimizer.step() was called directly, not "
        "through scaler.step(optimizer), which skips it": run("weights", use_scaler=False),
    }
    checks = [(outputs["weights"], expected["weights"], weight_mistakes, "the weights after the step", RTOL, ATOL),
              (outputs["scale"], np.float64(expected["scale"]), {
                  "the loss scale never changed: without scaler.update() an overflow does not halve it":
                      run("scale", update=False)}, "the loss scale after the step", 0.0, 0.0)]
    if np.isfinite(expected["norm"]):
        checks.append((outputs["norm"], np.float64(expected["norm"]), {
            "returned the norm after clipping: the norm asked for is the one before clipping":
                run("norm", norm_after=True),
            "returned the norm of the scaled gradients (no unscale_ before clipping)":
                run("norm", unscale=False),
        }, "the returned gradient norm", RTOL, ATOL))
    return _first_failure(checks)


# --- trivial answers: a case one of them passes earns nothing alone (course.questions.earning_cases) ------------

def accumulates_nothing(model, x, y, micro_batch, reduction):
    """Trivial answer: no backward pass, a loss of 0."""
    return 0.0


def steps_nothing(model, optimizer, scaler, x, y, micro_batch, max_norm):
    """Trivial answer: no step, a norm of 0."""
    return 0.0


CHAPTER = Chapter(
    id=ID,
    title="Precision, gradient accumulation and compilation",
    questions=(
        PROBES.question(
            "accumulate_gradients", 5, accumulate_cases, judge_accumulate,
            trivial=lambda: {"a step that does nothing": accumulates_nothing},
            hint="Gradients of micro-batches add up in .grad: weigh each micro-batch's loss so that the sum is the "
                 "whole batch's, for both reductions and a shorter last micro-batch, and start from clean "
                 "gradients (section \"Gradient accumulation\")."),
        PROBES.question(
            "round_to_bfloat16", 5, bfloat16_cases, judge_bfloat16,
            hint="bfloat16 keeps the top half of a float32's bits: work on the bit pattern as unsigned integers, "
                 "round to nearest with ties to even instead of truncating, and treat NaN apart (section \"Three "
                 "floating-point formats\")."),
        PROBES.question(
            "scaled_clipped_step", 5, step_cases, judge_step,
            trivial=lambda: {"a step that does nothing": steps_nothing},
            hint="With a GradScaler the order is the exercise: gradients are unscaled before they are clipped, "
                 "clipping happens once on the accumulated gradient, and the scaler decides whether the step runs "
                 "and how its scale changes (section \"Clipping with accumulation and loss scaling\")."),
    ),
)
