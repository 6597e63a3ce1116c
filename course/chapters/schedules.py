"""Chapter 04: learning-rate schedules.

Two questions:

* ``warmup_cosine_restarts(step, *, peak_lr, warmup_steps, first_decay_steps, t_mul, m_mul, alpha)``: linear
  warm-up from 0 to ``peak_lr``, then cosine decay with warm restarts. The oracle is Keras
  (``CosineDecay(0, ..., warmup_target=peak_lr, warmup_steps=W)`` during the warm-up, ``CosineDecayRestarts`` after
  it) and, where torch can express the schedule (``m_mul == 1`` and an integer ``t_mul``), also torch
  (``SequentialLR([LinearLR, CosineAnnealingWarmRestarts])``); the judge refuses to answer if the two disagree.
* ``plateau_epochs(val_losses, *, patience, threshold, cooldown, framework)``: the epochs (counted from 1) at whose
  end ``ReduceLROnPlateau`` cuts the learning rate. The oracle drives the real ``keras.callbacks.ReduceLROnPlateau``
  (``on_epoch_end`` with the case's logs, on a one-layer model) or the real ``torch.optim.lr_scheduler.
  ReduceLROnPlateau`` (``step(val_loss)``).

The ``mistakes`` are plain-Python versions of the usual wrong answers, used only to name a mistake in feedback.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..questions import Case, Chapter, Plain, Verdict, compare, per_case, trivial_functions, weighted
from ..probes.schedules import PROBES, PLATEAU_PARAMS, SCHEDULE_PARAMS

ID = "04_schedules"


# --- oracles: the frameworks' own schedules -------------------------------------------------------------------

def keras_warmup_cosine_restarts(steps, *, peak_lr, warmup_steps, first_decay_steps, t_mul, m_mul, alpha):
    """Keras' learning rate at each step: CosineDecay's built-in warm-up, then CosineDecayRestarts."""
    import keras

    schedules = keras.optimizers.schedules
    steps = np.asarray(steps, dtype=np.int64)
    rates = np.empty(len(steps))
    in_warmup = steps < warmup_steps
    if in_warmup.any():
        # CosineDecay branches with a scalar `cond`, so it is called one step at a time (warm-ups are short).
        warmup = schedules.CosineDecay(0.0, first_decay_steps, alpha=alpha, warmup_target=peak_lr,
                                       warmup_steps=warmup_steps)
        rates[in_warmup] = [float(warmup(int(step))) for step in steps[in_warmup]]
    if (~in_warmup).any():
        restarts = schedules.CosineDecayRestarts(peak_lr, first_decay_steps, t_mul=t_mul, m_mul=m_mul, alpha=alpha)
        rates[~in_warmup] = np.asarray(restarts(steps[~in_warmup] - warmup_steps), dtype=np.float64)
    return rates


def torch_can_express(*, t_mul, m_mul, **_) -> bool:
    """torch's CosineAnnealingWarmRestarts has no m_mul and accepts only an integer T_mult."""
    return m_mul == 1 and float(t_mul).is_integer()


def torch_warmup_cosine_restarts(steps, *, peak_lr, warmup_steps, first_decay_steps, t_mul, m_mul, alpha):
    """torch's learning rate at each step: SequentialLR([LinearLR, CosineAnnealingWarmRestarts])."""
    import torch

    assert torch_can_express(t_mul=t_mul, m_mul=m_mul)
    schedulers = torch.optim.lr_scheduler
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak_lr)
    restarts = schedulers.CosineAnnealingWarmRestarts(optimizer, T_0=int(first_decay_steps), T_mult=int(t_mul),
                                                      eta_min=alpha * peak_lr)
    if warmup_steps > 0:
        # LinearLR refuses start_factor=0; 1e-10 of the peak is far below the judge's tolerance.
        warmup = schedulers.LinearLR(optimizer, start_factor=1e-10, end_factor=1.0, total_iters=int(warmup_steps))
        scheduler = schedulers.SequentialLR(optimizer, [warmup, restarts], milestones=[int(warmup_steps)])
    else:
        scheduler = restarts
    rates = []
    for _ in range(int(np.max(steps)) + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # before scheduler.step(), or torch warns that the first value is skipped
        scheduler.step()
    return np.asarray(rates)[np.asarray(steps, dtype=np.int64)]


def framework_plateau_epochs(val_losses, *, patience, threshold, cooldown, framework):
    """The epochs (from 1) at whose end the framework's ReduceLROnPlateau lowers the learning rate."""
    rates = (_keras_plateau_rates if framework == "keras" else _torch_plateau_rates)(
        [float(v) for v in val_losses], patience=patience, threshold=threshold, cooldown=cooldown)
    before = np.concatenate([[1.0], rates[:-1]])
    return np.flatnonzero(rates < before) + 1


def _keras_plateau_rates(values, *, patience, threshold, cooldown):
    """Drive keras.callbacks.ReduceLROnPlateau by hand: one on_epoch_end per value, as fit() would call it."""
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="mse")
    callback = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode="min", factor=0.5, patience=patience,
                                                 min_delta=threshold, cooldown=cooldown)
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    with warnings.catch_warnings():
        # Keras' own callback reads the rate with np.array(variable), which NumPy 2 reports as a
        # DeprecationWarning ("__array__ implementation doesn't accept a copy keyword"): not the student's doing.
        warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
        for epoch, value in enumerate(values):
            callback.on_epoch_end(epoch, logs={"val_loss": value})
            rates.append(float(model.optimizer.learning_rate))
    return np.asarray(rates)


def _torch_plateau_rates(values, *, patience, threshold, cooldown):
    """Drive torch's ReduceLROnPlateau with the default relative threshold, one step(value) per epoch."""
    import torch

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=patience,
                                                           threshold=threshold, threshold_mode="rel",
                                                           cooldown=cooldown)
    rates = []
    for value in values:
        optimizer.step()
        scheduler.step(value)
        rates.append(optimizer.param_groups[0]["lr"])
    return np.asarray(rates)


# --- the usual wrong answers, used only to name a mistake --------------------------------------------------------

def schedule_variant(steps, *, peak_lr, warmup_steps, first_decay_steps, t_mul, m_mul, alpha, mistake=None):
    """Warm-up + cosine restarts in NumPy, with one deliberate ``mistake`` (or none) to recognise wrong answers."""
    s = np.asarray(steps, dtype=np.float64)
    with np.errstate(all="ignore"):
        ramp_length = warmup_steps - 1 if mistake == "linspace warm-up" else warmup_steps
        ramp_step = s + 1 if mistake == "warm-up early" else s
        warm = peak_lr * ramp_step / ramp_length
        t = s - warmup_steps
        if mistake == "no shift":
            t = s
        elif mistake == "decay early":
            t = s - warmup_steps + 1
        length_growth = 1.0 if mistake == "no t_mul" else t_mul
        cycle, fraction = _cycle_and_fraction(np.maximum(t, 0), first_decay_steps, length_growth)
        angle = {"no pi": fraction, "degrees": 180 * fraction, "full period": 2 * math.pi * fraction}.get(
            mistake, math.pi * fraction)
        cosine = 0.5 * (1 + np.cos(angle))
        shrink = np.ones_like(cycle) if mistake == "no m_mul" else float(m_mul) ** cycle
        floor = alpha * peak_lr
        if mistake == "m_mul on floor":
            decayed = peak_lr * shrink * ((1 - alpha) * cosine + alpha)
        elif mistake == "absolute floor":
            decayed = alpha + (peak_lr - alpha) * shrink * cosine
        elif mistake == "no floor":
            decayed = peak_lr * shrink * cosine
        else:
            decayed = floor + (peak_lr - floor) * shrink * cosine
        return np.where(s < warmup_steps, warm, decayed)


def _cycle_and_fraction(t, first_length, growth):
    """Index of the restart cycle each ``t`` falls in, and the fraction of that cycle already done."""
    starts, lengths = [0.0], [float(first_length)]
    while starts[-1] + lengths[-1] <= t.max():
        starts.append(starts[-1] + lengths[-1])
        lengths.append(lengths[-1] * growth)
    cycle = np.searchsorted(np.asarray(starts), t, side="right") - 1
    return cycle.astype(np.float64), (t - np.asarray(starts)[cycle]) / np.asarray(lengths)[cycle]


SCHEDULE_MISTAKES = {
    "warm-up early": "off by one at the warm-up end: the warm-up reaches peak_lr one step early "
                     "(step 0 must give 0)",
    "linspace warm-up": "off by one at the warm-up end: divided by warmup_steps - 1 (like np.linspace), "
                        "so the ramp reaches peak_lr a step before the warm-up ends",
    "no shift": "the cosine part ignores the warm-up: its steps count from the end of the warm-up, not "
                "from step 0",
    "decay early": "off by one at the warm-up end: the cosine starts one step early; at step == warmup_steps "
                   "the rate must be exactly peak_lr",
    "no t_mul": "restarts are not lengthened by t_mul: each cycle is t_mul times as long as the one before",
    "no m_mul": "ignored m_mul: each restart's height above the floor shrinks by m_mul",
    "m_mul on floor": "applied m_mul to the floor too: it shrinks only the part above the floor",
    "absolute floor": "used alpha as an absolute floor (torch's eta_min); the floor is alpha * peak_lr",
    "no floor": "ignored alpha: the rate never goes below alpha * peak_lr",
    "no pi": "forgot pi: the cosine should fall through half a period per cycle",
    "degrees": "cosine of 180 * fraction: np.cos and math.cos take radians, not degrees",
    "full period": "a full cosine period per cycle (2 * pi * fraction): it should fall once, from the "
                   "peak to the floor",
}


def plateau_variant(values, *, patience, threshold, cooldown, framework, mistake=None):
    """Both ReduceLROnPlateau rules in plain Python, with one deliberate ``mistake`` (or none)."""
    other = {"keras": "torch", "torch": "keras"}[framework]
    patience_rule = other if mistake in ("other framework", "other patience") else framework
    threshold_rule = other if mistake in ("other framework", "other threshold") else framework
    cooldown_rule = other if mistake in ("other framework", "other cooldown") else framework
    # Keras takes the first value as the best whatever it is (even NaN); torch starts from +inf, where a NaN first
    # epoch is a bad one.
    start_rule = other if mistake in ("other framework", "other start") else framework
    best = None if start_rule == "keras" else math.inf
    previous = None
    bad = cool = 0
    drops = []
    for epoch, value in enumerate(values, start=1):
        reference = previous if mistake == "previous" else best
        if reference is None:
            bound = None
        elif mistake == "no threshold":
            bound = reference
        elif threshold_rule == "keras":
            bound = reference - threshold  # absolute: better means below best - min_delta
        else:
            bound = reference * (1 - threshold)  # relative: below best * (1 - threshold)
        if bound is None:
            improved = True
        elif mistake == "nan improves":
            improved = not value >= bound  # True for NaN
        elif mistake == "at most":
            improved = value <= bound
        else:
            improved = value < bound
        previous = value
        if cooldown_rule == "keras" and mistake != "no cooldown":
            # Keras counts the cooldown down first and ignores bad epochs while it is still running.
            if cool > 0:
                cool -= 1
                bad = 0
            counted = not improved and cool == 0
        else:
            counted = not improved
        if improved:
            best, bad = value, 0
        elif counted:
            bad += 1
        if cooldown_rule == "torch" and cool > 0 and mistake != "no cooldown":
            cool -= 1
            bad = 0  # torch counts the epoch first, then forgets it while cooling down
        # Keras only tests patience on a counted bad epoch; torch tests it after every epoch.
        fires = counted and bad >= patience if patience_rule == "keras" else bad > patience
        if fires:
            drops.append(epoch)
            cool = cooldown
            if mistake != "no reset":
                bad = 0
    drops = np.asarray(drops, dtype=np.float64)
    return drops - 1 if mistake == "from zero" else drops


# Checked in this order: a single-rule mix-up is named before "the other framework's answer" as a whole.
PLATEAU_MISTAKES = {
    "other patience": "patience off by one: Keras cuts when the bad-epoch count reaches patience, "
                      "torch when it exceeds patience",
    "other threshold": "threshold read the wrong way: it is absolute in Keras (best - min_delta) and relative in "
                       "torch (best * (1 - threshold))",
    "other framework": "that is the other framework's answer: Keras cuts after `patience` bad epochs with an "
                       "absolute min_delta, torch after patience + 1 with a relative threshold",
    "no threshold": "ignored the threshold: an epoch improves only if it beats the best by the threshold",
    "at most": "an epoch equal to best - threshold counted as an improvement: the comparison is strict (<)",
    "other start": "started `best` the other framework's way: Keras takes the first epoch's loss as the best "
                   "whatever it is (a NaN first epoch then blocks every improvement), torch starts from +inf",
    "previous": "compared with the previous epoch: compare with the best value so far",
    "no reset": "did not reset the bad-epoch count after a cut: the count restarts from 0",
    "other cooldown": "cooldown off by one: Keras ignores cooldown - 1 epochs after a cut, torch ignores cooldown",
    "no cooldown": "ignored cooldown: after a cut, bad epochs are not counted for a while",
    "from zero": "counted epochs from 0: the first validation value is epoch 1",
    "nan improves": "a NaN epoch counted as an improvement (`not loss >= best` is True for NaN): a NaN loss is a "
                    "bad epoch, and every comparison with NaN is False",
}


# --- question 1: warm-up + cosine with restarts -------------------------------------------------------------------

def schedule_cases(rng: np.random.Generator) -> list[Case]:
    def case(label, *, peak_lr, warmup_steps, first_decay_steps, t_mul, m_mul, alpha, cycles):
        length = first_decay_steps * sum(t_mul ** i for i in range(cycles))
        n_steps = int(warmup_steps + math.ceil(length) + rng.integers(1, 4))
        return Case(label, {"steps": np.arange(n_steps), "peak_lr": float(peak_lr), "warmup_steps": int(warmup_steps),
                            "first_decay_steps": int(first_decay_steps), "t_mul": float(t_mul),
                            "m_mul": float(m_mul), "alpha": float(alpha)})

    warmup, first = int(rng.integers(3, 9)), int(rng.integers(6, 13))
    return [
        case("warm-up, then cycles that double (t_mul=2): Keras and torch",
             peak_lr=rng.uniform(0.05, 0.5), warmup_steps=warmup, first_decay_steps=first, t_mul=2.0,
             m_mul=1.0, alpha=0.0, cycles=3),
        case("equal cycles (t_mul=1) above a floor alpha: Keras and torch",
             peak_lr=rng.uniform(0.01, 0.1), warmup_steps=int(rng.integers(2, 6)),
             first_decay_steps=int(rng.integers(5, 10)), t_mul=1.0, m_mul=1.0, alpha=rng.uniform(0.05, 0.3), cycles=4),
        case("shrinking restarts (m_mul < 1) above a floor: Keras only (torch has no m_mul)",
             peak_lr=rng.uniform(0.05, 0.5), warmup_steps=warmup, first_decay_steps=first, t_mul=2.0,
             m_mul=rng.uniform(0.4, 0.9), alpha=rng.uniform(0.1, 0.3), cycles=3),
        case("non-integer t_mul=1.5: Keras only (torch needs an integer T_mult)",
             peak_lr=rng.uniform(0.05, 0.5), warmup_steps=int(rng.integers(2, 6)),
             first_decay_steps=2 * int(rng.integers(4, 8)), t_mul=1.5, m_mul=1.0, alpha=0.0, cycles=4),
        case("no warm-up (warmup_steps=0): Keras and torch",
             peak_lr=rng.uniform(0.05, 0.5), warmup_steps=0, first_decay_steps=first, t_mul=2.0,
             m_mul=1.0, alpha=rng.uniform(0.0, 0.2), cycles=3),
        case("one-step warm-up, tiny peak (1e-5) and t_mul=3",
             peak_lr=1e-5 * rng.uniform(0.5, 2), warmup_steps=1, first_decay_steps=int(rng.integers(3, 6)),
             t_mul=3.0, m_mul=1.0, alpha=0.0, cycles=3),
        case("a long warm-up (60-100 steps) and a large peak (10)",
             peak_lr=10.0 * rng.uniform(0.5, 1.0), warmup_steps=int(rng.integers(60, 101)),
             first_decay_steps=int(rng.integers(20, 40)), t_mul=2.0, m_mul=rng.uniform(0.5, 0.9),
             alpha=rng.uniform(0.0, 0.1), cycles=2),
        case("very short cycles (2 steps, t_mul=1), many restarts",
             peak_lr=rng.uniform(0.05, 0.5), warmup_steps=int(rng.integers(2, 5)), first_decay_steps=2, t_mul=1.0,
             m_mul=rng.uniform(0.8, 0.95), alpha=rng.uniform(0.0, 0.2), cycles=12),
    ]




def judge_schedule(case: Case, outputs: Plain) -> Verdict:
    params = {key: case.inputs[key] for key in SCHEDULE_PARAMS}
    steps = np.asarray(case.inputs["steps"])
    expected = keras_warmup_cosine_restarts(steps, **params)
    oracle = "Keras"
    if torch_can_express(**params):
        by_torch = torch_warmup_cosine_restarts(steps, **params)
        if not np.allclose(by_torch, expected, rtol=1e-5, atol=1e-6 * params["peak_lr"]):
            raise AssertionError("torch and Keras disagree on the schedule: the oracle itself is broken")
        oracle = "Keras and torch"
    mistakes = {message: schedule_variant(steps, **params, mistake=key) for key, message in SCHEDULE_MISTAKES.items()}
    got = _result(outputs)
    tolerance = {"rtol": 1e-5, "atol": 1e-6 * params["peak_lr"]}  # Keras computes in float32
    verdict = compare(got, expected, mistakes=mistakes, what="learning rate", **tolerance)
    if verdict.passed or got.shape != expected.shape or not np.isfinite(got).all():
        return verdict  # compare's message already says what is wrong with the shape or the NaN
    where = _departure(steps, got, expected, oracle, tolerance)
    return Verdict(False, f"{verdict.message}; {where}" if verdict.message in mistakes else where)


def _departure(steps, got, expected, oracle, tolerance) -> str:
    """Where the student's curve first leaves the frameworks' one, and by how much at worst."""
    off = ~np.isclose(got, expected, **tolerance)
    first = int(np.argmax(off))
    worst = int(np.argmax(np.abs(got - expected)))
    return (f"departs from {oracle} at step {int(steps[first])} (got {got[first]:.6g}, expected "
            f"{expected[first]:.6g}); largest gap {abs(got[worst] - expected[worst]):.3g} at step {int(steps[worst])}")


# --- question 2: when does ReduceLROnPlateau fire? ----------------------------------------------------------------

def plateau_cases(rng: np.random.Generator) -> list[Case]:
    def case(label, values, framework, *, patience, threshold=1e-4, cooldown=0):
        return Case(f"[{framework}] {label}", {"val_losses": np.asarray(values, dtype=np.float64),
                                               "patience": int(patience), "threshold": float(threshold),
                                               "cooldown": int(cooldown), "framework": framework})

    def noisy_plateau(n_down, n_flat, level):
        down = level * (1 + np.linspace(1, 0, n_down)) + rng.normal(0, 0.02 * level, n_down)
        flat = level * (1 + rng.normal(0, 0.03, n_flat))
        return np.concatenate([down, flat])

    noisy = noisy_plateau(int(rng.integers(5, 9)), int(rng.integers(14, 20)), rng.uniform(0.3, 2.0))
    big = rng.uniform(1000, 2000) - np.arange(int(rng.integers(8, 13))) * rng.uniform(0.01, 0.03)
    small = rng.uniform(1e-3, 5e-3) - np.arange(int(rng.integers(8, 13))) * rng.uniform(1e-5, 3e-5)
    # drops of 0.3, 3 and 30 times an absolute threshold of 0.01 on a loss near 10 (where a relative one is 0.1),
    # in shuffled runs, so that ignoring the threshold, or reading it the other way, each gives another answer
    runs = [[0.003] * 3, [0.03] * 2, [0.3], [0.003] * 2, [0.03], [0.3], [0.003] * 3]
    mixed = rng.uniform(8, 12) - np.cumsum(np.concatenate([[0.0]] + [runs[i] for i in rng.permutation(len(runs))]))
    rising = rng.uniform(0.5, 1.5) + np.cumsum(rng.uniform(0.001, 0.05, int(rng.integers(10, 15))))
    falling = rng.uniform(1, 3) * np.exp(-np.arange(int(rng.integers(8, 14))) * rng.uniform(0.1, 0.3))
    flat = np.full(int(rng.integers(6, 10)), rng.uniform(0.1, 1.0))
    diverged = noisy_plateau(4, 6, rng.uniform(0.3, 2.0))
    diverged[int(rng.integers(5, 8))] = np.nan
    nan_first = np.concatenate([[np.nan], falling[:4], np.full(4, falling[3])])
    patience = int(rng.integers(2, 4))
    return [
        case("a noisy curve that falls, then flattens", noisy, "keras", patience=patience),
        case("a noisy curve that falls, then flattens", noisy, "torch", patience=patience),
        case(f"losses near {big[0]:.0f} falling by less than 0.1 per epoch", big, "keras", patience=2),
        case(f"losses near {big[0]:.0f} falling by less than 0.1 per epoch", big, "torch", patience=2),
        case("losses near 0.003 falling by less than 1e-4 per epoch", small, "keras", patience=2),
        case("losses near 0.003 falling by less than 1e-4 per epoch", small, "torch", patience=2),
        case("drops of three sizes around the threshold 0.01", mixed, "keras", patience=1, threshold=0.01),
        case("drops of three sizes around the threshold 0.01", mixed, "torch", patience=1, threshold=0.01),
        case("a rising curve with cooldown=2", rising, "keras", patience=1, cooldown=2),
        case("a rising curve with cooldown=2", rising, "torch", patience=1, cooldown=2),
        case("an exactly flat curve, threshold 0, patience 1", flat, "keras", patience=1, threshold=0.0),
        case("an exactly flat curve, threshold 0, patience 1", flat, "torch", patience=1, threshold=0.0),
        case("patience 0 on a rising curve", rising[:6], "keras", patience=0),
        case("a steadily falling curve (no plateau)", falling, "torch", patience=patience),
        case("a NaN (diverged) epoch in the middle", diverged, "torch", patience=1, threshold=0.01),
        case("a NaN (diverged) epoch in the middle", diverged, "keras", patience=1, threshold=0.01),
        case("the first epoch is NaN, then the loss falls", nan_first, "keras", patience=2),
        case("the first epoch is NaN, then the loss falls", nan_first, "torch", patience=2),
    ]




def judge_plateau(case: Case, outputs: Plain) -> Verdict:
    values = np.asarray(case.inputs["val_losses"])
    params = {key: case.inputs[key] for key in PLATEAU_PARAMS}
    # the frameworks' callbacks once per case and grading run, however many students' answers are judged on it
    expected = per_case(("expected",), lambda: framework_plateau_epochs(values, **params).astype(np.float64))
    mistakes = {message: plateau_variant(values, **params, mistake=key) for key, message in PLATEAU_MISTAKES.items()}
    got = _result(outputs).ravel()
    verdict = compare(got, expected, mistakes=mistakes, rtol=0, atol=1e-9, what="epochs")
    if verdict.passed or verdict.message in mistakes:
        return verdict
    return Verdict(False, _first_difference(got, expected, "Keras" if params["framework"] == "keras" else "torch"))


def _first_difference(got: np.ndarray, expected: np.ndarray, name: str) -> str:
    """The first epoch where the student's list and the framework's differ (not the whole answer)."""
    if not np.isfinite(got).all():
        return "returned NaN or inf: return the epoch numbers (1, 2, ...) at whose end the rate is cut"
    differ = set(got.tolist()) ^ set(expected.tolist())
    if not differ:
        return "the right epochs, but repeated or out of order: list each epoch once, in increasing order"
    epoch = min(differ)
    verb = "cuts" if epoch in expected else "does not cut"
    listed = ", ".join(f"{v:g}" for v in got)
    return f"first difference at epoch {epoch:g}: {name} {verb} the learning rate at its end (you said [{listed}])"


def _result(outputs: Plain) -> np.ndarray:
    return outputs["result"]


# --- trivial answers: a case one of them passes earns nothing alone (course.questions.earning_cases) ------------

def constant_peak(step, *, peak_lr, **params):
    """Trivial answer: the initial learning rate at every step."""
    return peak_lr


def constant_floor(step, *, peak_lr, alpha, **params):
    """Trivial answer: the floor alpha * peak_lr at every step."""
    return alpha * peak_lr


def never_cuts(val_losses, **params):
    """Trivial answer: no epoch cuts the rate."""
    return []


def always_cuts(val_losses, **params):
    """Trivial answer: every epoch cuts the rate."""
    return np.arange(1, len(val_losses) + 1)


#: (part of a case label, weight, what the case tests).
SCHEDULE_WEIGHTS = [
    ("no warm-up", 2, "a schedule without warm-up (no division by warmup_steps)"),
    ("shrinking restarts", 2, "m_mul applied above the floor only"),
    ("non-integer t_mul", 2, "cycle lengths growing by a non-integer t_mul"),
    ("very short cycles", 2, "many restarts in a row"),
]
PLATEAU_WEIGHTS = [
    ("NaN", 2, "non-finite losses (a NaN is never an improvement)"),
    ("threshold", 2, "the threshold: absolute in Keras, relative in torch"),
    ("cooldown", 2, "the cooldown rule of each framework"),
    ("patience 0", 1, "patience 0"),
]

CHAPTER = Chapter(
    id=ID,
    title="Learning-rate schedules",
    questions=(
        PROBES.question(
            "warmup_cosine_restarts", 6, weighted(schedule_cases, SCHEDULE_WEIGHTS, "warm-up and cosine restarts"),
            judge_schedule, trivial=trivial_functions(the_initial_rate=constant_peak, the_floor=constant_floor),
            hint="Two phases: a linear warm-up from 0, then cosine restarts counted from the end of the warm-up. "
                 "Work out which cycle a step falls in (cycles grow by t_mul, peaks shrink by m_mul) and keep the "
                 "floor in mind; compare with Keras' CosineDecay and CosineDecayRestarts (sections \"Warm-up, then "
                 "cosine decay\" and \"Cosine decay with warm restarts\").",
            hang_cause="a while loop over the restart cycles that does not advance (subtract each finished "
                       "cycle's length from the step and multiply the length by t_mul inside the loop)"),
        PROBES.question(
            "plateau_epochs", 4, weighted(plateau_cases, PLATEAU_WEIGHTS, "the patience rule of each framework"),
            judge_plateau, trivial=trivial_functions(no_cut=never_cuts, a_cut_every_epoch=always_cuts),
            hint="Keras and torch differ in when patience runs out, in how the threshold is measured and in how "
                 "cooldown counts: read both rules in section \"Reduce on plateau\" and trace a short curve by hand."),
    ),
)
