"""Chapter 03: optimizers, and writing your own (AdaBelief) in Keras 3 and in PyTorch.

The two questions ask for the same algorithm twice: ``AdaBeliefKeras`` (a ``keras.optimizers.Optimizer`` subclass)
and ``AdaBeliefTorch`` (a ``torch.optim.Optimizer`` subclass). Neither framework ships AdaBelief, so the expected
trajectory comes from a float64 NumPy reference, :func:`adabelief_reference`. That reference is not trusted blindly:
switched to Adam's second moment (g² instead of (g - m)², no ε inside s) it must reproduce ``torch.optim.Adam`` and,
with the step-size form Keras uses, ``keras.optimizers.Adam``, on the very case being judged (see
:func:`check_reference_against_adam`). The usual mistakes are the same reference with one switch flipped, so a
failing answer is named.

Why float64 and float32-representable hyper-parameters: Keras casts Python floats through float32 (``ops.cast(0.9,
"float64")`` is 0.8999999761581421) and keeps the learning rate in a float32 variable. With hyper-parameters that
float32 holds exactly, a correct Keras or torch optimizer run on float64 weights matches the reference to ~1e-15,
so the tolerance can stay tight (rtol 1e-6) and still tell an ε placement apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from ..questions import Case, Chapter, Plain, Verdict, compare, weighted
from ..probes.optimizers import (PROBES, _drive, _keras_step, _torch_step, gradients_at, initial_weights, lr_scales,
                                 n_steps, variable_names)

ID = "03_optimizers"
RTOL, ATOL = 1e-6, 1e-9


# --- the problems an optimizer is run on --------------------------------------------------------------------------









# --- the NumPy reference and its usual wrong variants -------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    """Switches of :func:`adabelief_reference`; the defaults are AdaBelief as the exercise defines it."""

    belief: bool = True            # s tracks (g - m)²; False: g² as in Adam
    new_m: bool = True             # (g - m_t)² with the updated m; False: the previous m
    eps_in_s: bool = True          # s gets + ε at every step
    eps_out: bool = True           # the denominator is sqrt(ŝ) + ε
    bias_correction: bool = True
    keras_step_size: bool = False  # lr·sqrt(1-β2ᵗ)/(1-β1ᵗ)·m/(sqrt(s)+ε), the form keras.optimizers.Adam uses
    first_step: int = 1            # the t of the first update (0 is the off-by-one of using Keras' iterations)
    keep_state: bool = True        # False: m and s restart from zero at every step (state never stored)
    swap_betas: bool = False
    sign: float = -1.0             # descent
    sqrt: bool = True
    eps_under_root: bool = False   # sqrt(ŝ + ε) instead of sqrt(ŝ) + ε
    shared_counter: bool = False   # one t for all variables, advanced once per variable (t = step·n + i + 1)
    fixed_lr: bool = False         # the constructor's rate: per-group rates and schedules ignored


def learning_rate_at(inputs, step: int, index: int) -> float:
    """The learning rate variable ``index`` gets at ``step`` (0-based): its group's rate, halved every
    ``halve_every`` steps when the case has a schedule (torch ``StepLR(gamma=0.5)``, Keras ``ExponentialDecay``
    with ``staircase=True``; 0.5 and float32-exact rates keep both exact)."""
    every = int(inputs.get("halve_every", 0))
    decay = 0.5 ** (step // every) if every else 1.0
    return inputs["learning_rate"] * lr_scales(inputs)[index] * decay


def adabelief_reference(inputs, variant: Variant = Variant()) -> dict[str, np.ndarray]:
    """Run AdaBelief (or a variant) in float64 on a case; returns each variable's trajectory, steps+1 rows.

    AdaBelief (Zhuang et al., 2020), at step t = 1, 2, ...::

        m = β1·m + (1-β1)·g
        s = β2·s + (1-β2)·(g - m)² + ε
        w = w - lr · [m / (1-β1ᵗ)] / (sqrt(s / (1-β2ᵗ)) + ε)
    """
    eps = inputs["epsilon"]
    b1, b2 = inputs["beta_1"], inputs["beta_2"]
    if variant.swap_betas:
        b1, b2 = b2, b1
    weights = initial_weights(inputs)
    m = [np.zeros_like(w) for w in weights]
    s = [np.zeros_like(w) for w in weights]
    paths = [[w.copy()] for w in weights]
    with np.errstate(all="ignore"):  # the off-by-one variant divides by zero on purpose
        for step in range(n_steps(inputs)):
            t = step + variant.first_step
            grads = gradients_at(inputs, step, weights)
            if not variant.keep_state:
                m = [np.zeros_like(w) for w in weights]
                s = [np.zeros_like(w) for w in weights]
            for i, g in enumerate(grads):
                lr = inputs["learning_rate"] if variant.fixed_lr else learning_rate_at(inputs, step, i)
                if variant.shared_counter:
                    t = step * len(grads) + i + 1
                old_m = m[i]
                m[i] = b1 * m[i] + (1 - b1) * g
                centre = (m[i] if variant.new_m else old_m) if variant.belief else 0.0
                s[i] = b2 * s[i] + (1 - b2) * (g - centre) ** 2 + (eps if variant.eps_in_s else 0.0)
                root = np.sqrt if variant.sqrt else (lambda x: x)
                if variant.keras_step_size:
                    size = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                    update = size * m[i] / (root(s[i]) + eps)
                else:
                    bc1, bc2 = (1 - b1 ** t, 1 - b2 ** t) if variant.bias_correction else (1.0, 1.0)
                    if variant.eps_under_root:
                        update = lr * (m[i] / bc1) / root(s[i] / bc2 + eps)
                    else:
                        update = lr * (m[i] / bc1) / (root(s[i] / bc2) + (eps if variant.eps_out else 0.0))
                weights[i] = weights[i] + variant.sign * update
                paths[i].append(weights[i].copy())
    return {name: np.stack(path) for name, path in zip(variable_names(inputs), paths)}


#: diagnosis -> the variant that produces it. Order matters: the first variant a wrong answer matches is named.
MISTAKES: dict[str, Variant] = {
    "NaN from the first step: the step count t was 0 at the first update, where 1 - β**t is 0 (Keras' "
    "iterations counts the updates already done)": Variant(first_step=0),
    "the weights move up the gradient: the update has the wrong sign": Variant(sign=+1.0),
    "m and s are not kept between steps: they start from zero at every step instead of living in the "
    "optimizer's state": Variant(keep_state=False),
    "used g² like Adam: AdaBelief's s tracks (g - m)², the gradient's deviation from its mean": Variant(belief=False),
    "used the previous m in (g - m)²: AdaBelief's s uses the m of the current step": Variant(new_m=False),
    "no bias correction of m and s: the first steps are then far too small": Variant(bias_correction=False),
    "swapped β1 and β2: β1 (≈0.9) averages m, β2 (≈0.999) averages s": Variant(swap_betas=True),
    "forgot the square root of ŝ in the denominator": Variant(sqrt=False),
    "forgot the ε that AdaBelief adds to s at every step: it matters when gradients are tiny":
        Variant(eps_in_s=False),
    "forgot the ε added after the square root, in the denominator": Variant(eps_out=False),
    "put ε under the square root: AdaBelief adds ε inside s at every step AND again after the root":
        Variant(eps_under_root=True),
    "one step counter shared by all variables, advanced once per variable: t counts the steps of each parameter "
    "(torch: self.state[p]['step']; Keras: self.iterations + 1, which advances once per apply)":
        Variant(shared_counter=True),
    "used a fixed learning rate: per-group rates and schedules never reached the update (the framework "
    "rewrites or passes the current rate at every step)": Variant(fixed_lr=True),
    "folded the bias correction into the step size (Keras-Adam style), which moves ε relative to the "
    "bias-corrected s": Variant(keras_step_size=True),
}


# --- the reference's own check: in Adam mode it must be the frameworks' Adam ---------------------------------------

ADAM_MODE = Variant(belief=False, eps_in_s=False)


def torch_adam_trajectory(inputs) -> dict[str, np.ndarray]:
    """``torch.optim.Adam`` run on the case (float64)."""
    import torch

    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in initial_weights(inputs)]
    groups = [{"params": [p], "lr": inputs["learning_rate"] * scale} for p, scale in zip(params, lr_scales(inputs))]
    optimizer = torch.optim.Adam(groups, lr=inputs["learning_rate"], betas=(inputs["beta_1"], inputs["beta_2"]),
                                 eps=inputs["epsilon"], foreach=False)
    scheduler = None
    if inputs.get("halve_every"):
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(inputs["halve_every"]), gamma=0.5)
    return _drive(inputs, lambda: [p.detach().numpy().copy() for p in params],
                  lambda grads: _torch_step(optimizer, params, grads),
                  after_step=None if scheduler is None else scheduler.step)


def keras_adam_trajectory(inputs) -> dict[str, np.ndarray]:
    """``keras.optimizers.Adam`` run on the case (float64 variables); Keras has no parameter groups."""
    import keras

    variables = [keras.Variable(w, dtype="float64") for w in initial_weights(inputs)]
    learning_rate = inputs["learning_rate"]
    if inputs.get("halve_every"):
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=int(inputs["halve_every"]), decay_rate=0.5, staircase=True)
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=inputs["beta_1"],
                                      beta_2=inputs["beta_2"], epsilon=inputs["epsilon"])
    return _drive(inputs, lambda: [np.array(v.numpy()) for v in variables],
                  lambda grads: _keras_step(optimizer, variables, grads))


def check_reference_against_adam(inputs) -> None:
    """Raise if the NumPy reference, switched to Adam, departs from torch's or Keras' Adam on this case."""
    pairs = [("torch.optim.Adam", torch_adam_trajectory(inputs), adabelief_reference(inputs, ADAM_MODE))]
    if "lr_scale" not in inputs:
        pairs.append(("keras.optimizers.Adam", keras_adam_trajectory(inputs),
                      adabelief_reference(inputs, Variant(belief=False, eps_in_s=False, keras_step_size=True))))
    for name, by_framework, by_reference in pairs:
        for key, path in by_framework.items():
            if not np.allclose(path, by_reference[key], rtol=1e-9, atol=1e-12):
                raise AssertionError(f"the NumPy reference in Adam mode departs from {name}: the oracle is broken")


# --- running a student's optimizer --------------------------------------------------------------------------------













# --- judging -------------------------------------------------------------------------------------------------------

def _flat(paths: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """All variables side by side: one row per step (row 0 holds the initial weights)."""
    return np.concatenate([np.asarray(paths[name]).reshape(len(paths[name]), -1) for name in names], axis=1)


def _where(column: int, inputs, names: list[str]) -> str:
    """Which variable and element a column of :func:`_flat` is."""
    for name in names:
        shape = np.shape(inputs[name])
        size = int(np.prod(shape))
        if column < size:
            index = np.unravel_index(column, shape) if shape else ()
            return f"{name}[{', '.join(str(int(i)) for i in index)}]"
        column -= size
    return f"column {column}"


def first_departure(got: np.ndarray, expected: np.ndarray, inputs, names: list[str]) -> str:
    """One line: the first step at which the student's trajectory leaves the reference, where and by how much."""
    close = np.isclose(got, expected, rtol=RTOL, atol=ATOL)
    step = int(np.argmin(close.all(axis=1)))
    column = int(np.argmin(close[step]))
    if step == 0:
        return f"the initial weights changed before the first step ({_where(column, inputs, names)})"
    before = "the first step already" if step == 1 else f"steps 1 to {step - 1} match, then step {step}"
    return (f"{before} departs from the reference: {_where(column, inputs, names)} = {got[step, column]:.6g}, "
            f"expected {expected[step, column]:.6g} (error {abs(got[step, column] - expected[step, column]):.2g})")


def judge_adabelief(case: Case, outputs: Plain) -> Verdict:
    """Compare a trajectory with the NumPy reference step by step; name the mistake when a variant matches."""
    inputs = case.inputs
    names = variable_names(inputs)
    missing = [name for name in names if name not in outputs]
    if missing:
        return Verdict(False, f"no trajectory for {', '.join(missing)}")
    check_reference_against_adam(inputs)
    expected = _flat(adabelief_reference(inputs), names)
    got = _flat(outputs, names)
    mistakes = {diagnosis: _flat(adabelief_reference(inputs, variant), names)
                for diagnosis, variant in MISTAKES.items()}
    verdict = compare(got, expected, mistakes=mistakes, rtol=RTOL, atol=ATOL, what="weights")
    if verdict.passed or verdict.message in mistakes or got.shape != expected.shape:
        return verdict
    if not np.isfinite(got).all():
        return verdict  # compare's own message already says where the NaN/inf appeared
    return Verdict(False, first_departure(got, expected, inputs, names))


# --- cases ----------------------------------------------------------------------------------------------------------

def f32(x: float) -> float:
    """``x`` rounded to the nearest float32, as a Python float (Keras casts hyper-parameters through float32)."""
    return float(np.float32(x))


def _hyper(lr: float, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-16, steps: int = 10) -> dict:
    return {"learning_rate": f32(lr), "beta_1": f32(beta_1), "beta_2": f32(beta_2), "epsilon": f32(epsilon),
            "steps": steps}


def _given(rng: np.random.Generator, shapes, steps: int, scale: float = 1.0, offset: float = 0.0) -> dict:
    """Initial weights and a fixed gradient sequence per variable (a non-zero mean so m has something to track)."""
    out = {}
    for i, shape in enumerate(shapes):
        out[f"w{i}"] = rng.normal(size=shape)
        out[f"g{i}"] = scale * (offset + rng.normal(size=(steps, *shape)))
    return out


def adabelief_cases(rng: np.random.Generator, framework: str = "torch") -> list[Case]:
    """Ordinary and extreme runs: shapes, gradient scales, betas, ε, a constant gradient, a quadratic bowl, and a
    learning rate that is not one fixed number (torch: parameter groups and a scheduler; Keras: a schedule)."""
    lr = rng.uniform(0.005, 0.05)
    tiny = rng.uniform(0.5, 2.0) * 1e-8
    huge = rng.uniform(0.5, 2.0) * 1e4
    betas = (rng.uniform(0.5, 0.8), rng.uniform(0.9, 0.99))
    constant = {"w0": rng.normal(size=5), "g0": np.tile(rng.normal(size=5), (12, 1))}
    bowl = {"w0": rng.normal(size=(2, 3)), "c0": rng.uniform(0.5, 4.0, size=(2, 3)), "t0": rng.normal(size=(2, 3)),
            "w1": rng.normal(size=4), "c1": rng.uniform(0.5, 4.0, size=4), "t1": rng.normal(size=4)}
    if framework == "torch":
        changing = Case("two parameter groups (rates lr and lr/4), both halved every 3 steps by StepLR",
                        {**_hyper(lr), "lr_scale": np.array([1.0, 0.25]), "halve_every": 3,
                         **_given(rng, [(3,), (2, 2)], 10, offset=0.5)})
    else:
        changing = Case("a learning-rate schedule (ExponentialDecay halving every 3 steps) as learning_rate",
                        {**_hyper(lr), "halve_every": 3, **_given(rng, [(3,), (2, 2)], 10, offset=0.5)})
    return [
        Case("one vector of 6 weights, ordinary gradients, default betas (10 steps)",
             {**_hyper(lr), **_given(rng, [(6,)], 10, offset=0.5)}),
        Case("three variables: a 3×4 kernel, a bias of 4 and a scalar",
             {**_hyper(lr), **_given(rng, [(3, 4), (4,), ()], 10, offset=0.3)}),
        Case(f"tiny gradients (~{tiny:.1e}), where the ε added to s dominates",
             {**_hyper(lr), **_given(rng, [(5,)], 10, scale=tiny, offset=0.5)}),
        Case(f"large gradients (~{huge:.1e})", {**_hyper(lr), **_given(rng, [(5,)], 10, scale=huge, offset=0.5)}),
        Case(f"non-default betas (β1={betas[0]:.2f}, β2={betas[1]:.3f})",
             {**_hyper(lr, *betas), **_given(rng, [(2, 3)], 10, offset=0.5)}),
        Case("a large ε (1e-3), where both places of ε matter",
             {**_hyper(lr, epsilon=1e-3), **_given(rng, [(6,)], 10, scale=0.1, offset=0.5)}),
        Case("the same gradient at every step (12 steps)", {**_hyper(lr, steps=12), **constant}),
        Case("a quadratic bowl: each gradient comes from the current weights (25 steps)",
             {**_hyper(4 * lr, beta_2=0.99, epsilon=1e-8, steps=25), **bowl}),
        changing,
    ]


def keras_cases(rng: np.random.Generator) -> list[Case]:
    return adabelief_cases(rng, "keras")


def torch_cases(rng: np.random.Generator) -> list[Case]:
    return adabelief_cases(rng, "torch")


# --- trivial answers: a case one of them passes earns nothing alone (course.questions.earning_cases) ------------

@cache
def trivial_keras_optimizers() -> dict:
    """An optimizer whose update step does nothing (the weights never move)."""
    import keras

    class StandStill(keras.optimizers.Optimizer):
        def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-16, **kwargs):
            super().__init__(learning_rate=learning_rate, **kwargs)

        def update_step(self, gradient, variable, learning_rate):
            pass

    return {"an optimizer whose step does nothing": StandStill}


@cache
def trivial_torch_optimizers() -> dict:
    """An optimizer whose step does nothing (the weights never move)."""
    import torch

    class StandStill(torch.optim.Optimizer):
        def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-16):
            super().__init__(params, {"lr": lr})

        def step(self, closure=None):
            return None

    return {"an optimizer whose step does nothing": StandStill}


#: (part of a case label, weight, what the case tests).
ADABELIEF_WEIGHTS = [
    ("parameter groups", 3, "reading each group's learning rate, which schedulers rewrite"),
    ("learning-rate schedule", 3, "using the learning rate Keras passes to update_step"),
    ("tiny gradients", 2, "the ε added to s at every step"),
    ("a large ε", 2, "both places of ε"),
    ("quadratic bowl", 2, "a whole run where errors compound"),
    ("three variables", 2, "state kept per variable"),
]

CHAPTER = Chapter(
    id=ID,
    title="Optimizers",
    questions=(
        PROBES.question(
            "AdaBeliefKeras", 5, weighted(keras_cases, ADABELIEF_WEIGHTS, "the AdaBelief update rule"),
            judge_adabelief, trivial=trivial_keras_optimizers,
            hint="A Keras 3 optimizer creates its state in build() (add_variable_from_reference) and changes it "
                 "with the optimizer's assign methods in update_step(); mind where the step count starts and which "
                 "learning rate Keras hands you (sections \"The Keras 3 way and the PyTorch way\" and \"A new "
                 "optimizer: AdaBelief\")."),
        PROBES.question(
            "AdaBeliefTorch", 5, weighted(torch_cases, ADABELIEF_WEIGHTS, "the AdaBelief update rule"),
            judge_adabelief, trivial=trivial_torch_optimizers,
            hint="A torch optimizer keeps per-parameter state (moments, step count) in self.state, reads the "
                 "learning rate of each parameter group (schedulers rewrite it) and updates tensors in place "
                 "without recording a graph (sections \"The Keras 3 way and the PyTorch way\" and \"A new optimizer: "
                 "AdaBelief\")."),
    ),
)
