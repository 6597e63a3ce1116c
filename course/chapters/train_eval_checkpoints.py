"""Chapter 07: train and eval modes, checkpoints and early stopping, in PyTorch with Keras' rules.

Three questions:

* ``EarlyStopping``: a class with exactly the rules of ``keras.callbacks.EarlyStopping``. The oracle is Keras' own
  callback, driven over the same sequence of monitored values with a stand-in model whose "weights" are the epoch
  number; a plain re-implementation of the rules must agree with it before anything is judged.
* ``train_resumable``: a training function that checkpoints after every epoch and, interrupted and called again
  with fresh objects, ends exactly where an uninterrupted run ends. The oracle is the reference function run
  through the same probe.
* ``evaluate``: ``model(x)`` in eval mode and without a graph, leaving the model's mode as it was. The oracle is the
  reference function through the same probe, checked against the same network in Keras (``training=False``).

The usual mistakes are the reference with one thing changed, run through the same probe, so feedback names them.
"""
from __future__ import annotations

import copy
import os

import numpy as np

from ..probes import train_eval_checkpoints as probes
from ..probes.train_eval_checkpoints import PROBES
from ..questions import Case, Chapter, Plain, Verdict, assert_frameworks_agree, compare

ID = "07_train_eval_checkpoints"


def _first_failure(checks) -> Verdict:
    """Compare (got, expected, mistakes, what, rtol, atol) tuples in order; the first failure is the verdict."""
    for got, expected, mistakes, what, rtol, atol in checks:
        verdict = compare(got, expected, mistakes=mistakes, rtol=rtol, atol=atol, what=what)
        if not verdict.passed:
            return verdict
    return Verdict(True, "")


# --- question 1: EarlyStopping ------------------------------------------------------------------------------------

#: Monitored values live on a grid of 1/64, so value ± min_delta is exact in float32 and float64 alike.
GRID = 1 / 64


def _grid(values) -> np.ndarray:
    return np.round(np.asarray(values, dtype=float) / GRID) * GRID


def early_stopping_cases(rng: np.random.Generator) -> list[Case]:
    def case(label, values, patience, min_delta=0.0, mode="min", restore=False):
        return Case(label, {"values": _grid(values), "patience": patience, "min_delta": min_delta, "mode": mode,
                            "restore_best_weights": restore})

    def falling(n, start=3.0):
        """n values that fall by at least 2/64 each (each an improvement even with min_delta below that)."""
        return start - np.cumsum(rng.integers(4, 12, size=n)) * GRID

    best_at = int(rng.integers(3, 6))
    down = falling(best_at + 1)
    worse = down[-1] + rng.integers(1, 20, size=8) * GRID
    plateau = case("falls, then only gets worse (patience 2)", np.r_[down, worse], 2)

    # After the best, a few values that fall from one epoch to the next but never below the best.
    above = down[-1] + np.array([10, 6, 3, 12, 8, 5, 9]) * GRID
    not_best = case("values fall again but stay above the best (patience 3)",
                    np.r_[down, above], 3, restore=True)

    # Two non-improving epochs, then a new best: the wait must start over.
    late = np.r_[down, down[-1] + 3 * GRID, down[-1] + 2 * GRID, down[-1] - 5 * GRID,
                 down[-1] + rng.integers(1, 9, size=6) * GRID]
    reset = case("a late improvement resets the wait (patience 3)", late, 3, restore=True)

    delta = 4 * GRID
    small = np.r_[down, down[-1] - np.arange(1, 8) * GRID]  # improves by 1/64 per epoch: below min_delta
    gains = case("gains below min_delta=4/64 do not count (patience 2)", small, 2,
                 min_delta=delta, restore=True)

    ties = case("a tie with the best is no improvement (patience 1)",
                np.r_[down, down[-1], down[-1], down[-1] - 8 * GRID, down[-1]], 1)

    accuracy = np.minimum(0.25 + np.cumsum(rng.integers(3, 9, size=best_at + 1)) * GRID, 0.9)
    acc_after = accuracy[-1] - rng.integers(1, 6, size=6) * GRID
    maximise = case("mode='max' on an accuracy, min_delta=1/64 (patience 2)", np.r_[accuracy, acc_after],
                    2, min_delta=GRID, mode="max", restore=True)

    impatient = case("patience 0: stop at the first epoch without improvement", np.r_[down, down[-1] + GRID,
                                                                                      down[-1] - GRID], 0)

    start = falling(3)
    # A new best somewhere in the middle, never last: the restored weights must differ from the last epoch's.
    tail = np.insert(rng.permutation([2, 5, 7]), rng.integers(0, 3), -3)
    never = np.r_[start, start[-1] + tail * GRID]
    never_stops = case("never stops (patience 10): best weights restored at end", never, 10,
                       restore=True)

    negative = case("a negative min_delta=-4/64 counts as 4/64 (patience 2)",
                    small, 2, min_delta=-delta, restore=True)
    return [plateau, not_best, reset, gains, ties, maximise, impatient, never_stops, negative]


class _EpochStamp:
    """A stand-in model for Keras' callback: its only "weights" are the current epoch number."""

    def __init__(self):
        self.epoch, self.stop_training = 0, False

    def get_weights(self):
        return [np.array(self.epoch)]

    def set_weights(self, weights):
        self.epoch = int(np.asarray(weights[0]))


def keras_early_stopping(inputs: dict) -> np.ndarray:
    """Keras' ``EarlyStopping`` over the case's values: [stop epoch (-1: none), best epoch, restored epoch]."""
    import keras

    stopper = keras.callbacks.EarlyStopping(
        monitor="val_metric", patience=int(inputs["patience"]), min_delta=float(inputs["min_delta"]),
        mode=inputs["mode"], restore_best_weights=bool(inputs["restore_best_weights"]))
    model = _EpochStamp()
    stopper.set_model(model)
    stopper.on_train_begin()
    stopped = -1
    for epoch, value in enumerate(inputs["values"]):
        model.epoch = epoch
        stopper.on_epoch_end(epoch, {"val_metric": float(value)})
        if model.stop_training:
            stopped = epoch
            break
    stopper.on_train_end()
    return np.array([stopped, stopper.best_epoch, model.epoch], dtype=float)


class ReferenceEarlyStopping:
    """Keras' rules in plain Python; keyword switches turn on one usual mistake each (for the diagnoses).

    ``late``: stop when wait > patience; ``previous``: compare with the previous value, not the best;
    ``no_reset``: count all epochs without improvement (never reset); ``delta_sign``: ``value < best + min_delta``;
    ``ties``: ``<=``;
    ``min_only``: ignore mode; ``no_abs``: use min_delta as given; ``alias``: keep the live state dict;
    ``restore_if_stopped``: restore only after an early stop (Keras 2); ``one_based``: best_epoch from 1;
    ``always_restore``: restore the best weights even with ``restore_best_weights=False``.
    """

    def __init__(self, patience=0, min_delta=0.0, mode="min", restore_best_weights=False, **mistakes):
        self.patience, self.mode, self.restore_best_weights = patience, mode, restore_best_weights
        self.mistakes = {key for key, on in mistakes.items() if on}
        self.min_delta = min_delta if "no_abs" in self.mistakes else abs(min_delta)
        self.best = self.previous = self.best_state = None
        self.best_epoch, self.wait, self.epoch, self.stopped = 0, 0, -1, False

    def _improves(self, value, reference):
        if reference is None:
            return True
        sign = 1.0 if self.mode == "min" or "min_only" in self.mistakes else -1.0
        delta = -self.min_delta if "delta_sign" in self.mistakes else self.min_delta
        if "ties" in self.mistakes:
            return sign * value <= sign * reference - delta
        return sign * value < sign * reference - delta

    def step(self, value, model):
        self.epoch += 1
        self.wait += 1
        reference = self.previous if "previous" in self.mistakes else self.best
        self.previous = value
        if self._improves(value, reference):
            self.best, self.best_epoch = value, self.epoch + ("one_based" in self.mistakes)
            # no_reset: the wait counts every epoch without improvement so far, never set back to 0
            self.wait = self.wait - 1 if "no_reset" in self.mistakes else 0
            if self.restore_best_weights or "always_restore" in self.mistakes:
                state = model.state_dict()
                self.best_state = state if "alias" in self.mistakes else copy.deepcopy(state)
            return False
        limit = self.patience + 1 if "late" in self.mistakes else self.patience
        self.stopped = self.wait >= limit and self.epoch > 0
        return self.stopped

    def restore(self, model):
        if "restore_if_stopped" in self.mistakes and not self.stopped:
            return
        if (self.restore_best_weights or "always_restore" in self.mistakes) and self.best_state is not None:
            model.load_state_dict(self.best_state)


def _stopper_with(**mistakes):
    def make(**options):
        return ReferenceEarlyStopping(**options, **mistakes)
    return make


def _early_stopping_vector(outputs: Plain) -> np.ndarray:
    return np.r_[outputs["stopped_at"], outputs["best_epoch"], outputs["restored"]]


def _when_alike(first, second):
    """A mistake entry for two mistakes that give the same result on this case (else it matches nothing)."""
    def both():
        result = first()
        return result if np.array_equal(result, second()) else np.full(1, np.nan)
    return both


def early_stopping_mistakes(case: Case) -> dict:
    def run(**mistake):
        return lambda: _early_stopping_vector(probes.probe_early_stopping(_stopper_with(**mistake), case))

    aliased, only_if_stopped = run(alias=True), run(restore_if_stopped=True)
    sign, as_given = run(delta_sign=True), run(no_abs=True)
    return {
        "stopped one epoch late: patience=2 stops at the 2nd epoch in a row without improvement, not the 3rd":
            run(late=True),
        # When training runs out of epochs, these two look the same: name both.
        "the last epoch's weights remained: either the best weights were not restored when training ends "
        "without an early stop, or the stored state_dict was no deepcopy (it holds the live tensors)":
            _when_alike(aliased, only_if_stopped),
        "the last epoch's weights came back: model.state_dict() holds the live tensors, so a stored one that "
        "is no deepcopy changes with the model": aliased,
        "the best weights were not restored because training did not stop early: Keras 3 restores them when "
        "training ends either way": only_if_stopped,
        # With a negative min_delta, these two look the same: name both.
        "min_delta has the wrong sign or was used as given: Keras uses abs(min_delta), and an improvement must "
        "beat the best by that much": _when_alike(sign, as_given),
        "compared each value with the previous epoch's: an improvement must beat the best value so far":
            run(previous=True),
        "the wait was not reset by an improvement: it counted every epoch without improvement so far":
            run(no_reset=True),
        "min_delta has the wrong sign: it makes an improvement harder, not easier": sign,
        "a tie with the best counted as an improvement: an improvement must be strictly better": run(ties=True),
        "mode='max' was ignored: for an accuracy, higher is better": run(min_only=True),
        "a negative min_delta was used as given: Keras uses abs(min_delta)": as_given,
        "best_epoch counts from 1: the loop counts epochs from 0": run(one_based=True),
        "the best weights came back although restore_best_weights=False: then the last epoch's weights stay":
            run(always_restore=True),
    }


def judge_early_stopping(case: Case, outputs: Plain) -> Verdict:
    expected_keras = keras_early_stopping(case.inputs)
    reference = _early_stopping_vector(probes.probe_early_stopping(ReferenceEarlyStopping, case))
    assert_frameworks_agree(reference[:3], expected_keras, "the early-stopping rules")
    return compare(_early_stopping_vector(outputs), reference, mistakes=early_stopping_mistakes(case), rtol=0, atol=0,
                   what="[stop epoch, best_epoch, restored weights]")


# --- question 2: train_resumable ----------------------------------------------------------------------------------

def train_resumable_cases(rng: np.random.Generator) -> list[Case]:
    def weights(prefix, n_in, hidden, n_out):
        return {f"{prefix}_w1": rng.normal(scale=0.7, size=(n_in, hidden)),
                f"{prefix}_b1": rng.normal(scale=0.1, size=hidden),
                f"{prefix}_w2": rng.normal(scale=0.7, size=(hidden, n_out)),
                f"{prefix}_b2": rng.normal(scale=0.1, size=n_out)}

    def case(label, n, batch_size, epochs, stop_after, optimizer="adam", step_size=1, p=0.3, lr=0.05):
        n_in, hidden, n_out = 4, 8, 3
        return Case(label, {"x": rng.normal(size=(n, n_in)), "y": rng.integers(0, n_out, size=n),
                            "batch_size": batch_size, "epochs": epochs, "stop_after": stop_after,
                            "optimizer": optimizer, "step_size": step_size, "p": p, "lr": lr,
                            "seed": int(rng.integers(0, 2**31 - 1)),
                            **weights("w", n_in, hidden, n_out), **weights("other", n_in, hidden, n_out)})

    return [
        case("Adam, dropout 0.3, interrupted after 2 of 5 epochs", 32, 8, 5, 2),
        case("SGD + momentum, stopped after 1 of 4, short last batch", 30, 8, 4, 1,
             optimizer="sgd", lr=0.1),
        case("Adam, lr halved every 2 epochs, stopped after 3 of 5", 24, 6, 5, 3, step_size=2),
        case("dropout 0.5, interrupted after 2 of 3 epochs", 20, 5, 3, 2, p=0.5),
        case("stopped after the last epoch: nothing left to resume", 16, 8, 3, 3),
    ]


def reference_train_resumable(model, optimizer, scheduler, x, y, epochs, path, batch_size, stop_after=None, *,
                              train_mode=True, save=("optimizer", "scheduler", "rng"), next_epoch=1,
                              scheduler_per="epoch", save_before_schedule=False, resume=True):
    """The function the exercise asks for; the keyword arguments switch on one usual mistake each."""
    import torch

    start = 0
    if resume and os.path.exists(path):
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        if "optimizer" in save:
            optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in save:
            scheduler.load_state_dict(state["scheduler"])
        if "rng" in save:
            torch.set_rng_state(state["rng"])
        start = state["epoch"]
    losses = []
    for done, epoch in enumerate(range(start, epochs)):
        if stop_after is not None and done == stop_after:
            break
        if train_mode:
            model.train()
        for idx in torch.randperm(len(x)).split(batch_size):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            if scheduler_per == "batch":
                scheduler.step()
            losses.append(loss.item())

        def checkpoint():
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "epoch": epoch + next_epoch,
                        "rng": torch.get_rng_state()}, path)

        if save_before_schedule:
            checkpoint()
        if scheduler_per == "epoch":
            scheduler.step()
        if not save_before_schedule:
            checkpoint()
    return losses


def _train_run(case: Case, **mistake) -> Plain:
    def fn(*args, **kwargs):
        return reference_train_resumable(*args, **kwargs, **mistake)

    return {key: np.asarray(value, dtype=float) for key, value in probes.probe_train_resumable(fn, case).items()}


def judge_train_resumable(case: Case, outputs: Plain) -> Verdict:
    expected = _train_run(case)

    def run(part, **mistake):
        return lambda: _train_run(case, **mistake)[part]

    full_mistakes = {
        "the model was not put in training mode (it arrives in eval mode): dropout was off":
            run("full_weights", train_mode=False),
        "the scheduler was stepped after every batch: here it steps once per epoch":
            run("full_weights", scheduler_per="batch"),
    }
    resumed_mistakes = {
        "the optimizer state was not saved or not restored (its moments or momentum started over)":
            run("resumed_weights", save=("scheduler", "rng")),
        "the scheduler state was not saved or not restored (the learning rate started over)":
            run("resumed_weights", save=("optimizer", "rng")),
        "torch's random state was not saved or not restored (the resumed run drew other shuffles and dropout "
        "masks)":
            run("resumed_weights", save=("optimizer", "scheduler")),
        "the resumed run repeated the last saved epoch: the checkpoint should say which epoch runs next":
            run("resumed_weights", next_epoch=0),
        "the checkpoint was written before scheduler.step(): it missed the schedule's last move":
            run("resumed_weights", save_before_schedule=True),
        "the second call did not resume from the checkpoint at path (it started over)":
            run("resumed_weights", resume=False),
        "the model was not put in training mode (the resumed call gets it in eval mode): dropout was off":
            run("resumed_weights", train_mode=False),
    }
    # float32 training, same operations in the same order: agreement far below these tolerances.
    return _first_failure([
        (outputs["full_weights"], expected["full_weights"], full_mistakes, "weights after the uninterrupted run",
         1e-5, 1e-6),
        (outputs["full_losses"], expected["full_losses"], {}, "batch losses of the uninterrupted run", 1e-5, 1e-6),
        (outputs["resumed_weights"], expected["resumed_weights"], resumed_mistakes,
         "weights after the interrupted and resumed run", 1e-5, 1e-6),
        (outputs["resumed_losses"], expected["resumed_losses"], {}, "batch losses of the two calls", 1e-5, 1e-6),
    ])


# --- question 3: evaluate -----------------------------------------------------------------------------------------

def evaluate_cases(rng: np.random.Generator) -> list[Case]:
    def case(label, mode, n, p=0.5, n_in=5, hidden=6, n_out=3):
        return Case(label, {"x": rng.normal(loc=1.0, scale=2.0, size=(n, n_in)), "mode": mode, "p": p,
                            "seed": int(rng.integers(0, 2**31 - 1)),
                            "w1": rng.normal(scale=0.6, size=(n_in, hidden)), "b1": rng.normal(size=hidden),
                            "gamma": rng.uniform(0.5, 2.0, hidden), "beta": rng.normal(scale=0.3, size=hidden),
                            "running_mean": rng.normal(size=hidden), "running_var": rng.uniform(0.2, 3.0, hidden),
                            "w2": rng.normal(scale=0.6, size=(hidden, n_out)), "b2": rng.normal(size=n_out)})

    return [
        case("a model in training mode, batch of 16", "train", 16),
        case("a model already in eval mode, batch of 12", "eval", 12),
        case("training mode, dropout 0.2, batch of 4", "train", 4, p=0.2),
        case("eval mode, wider layers, batch of 32", "eval", 32, n_in=8, hidden=10, n_out=4),
    ]


def keras_bn_net(inputs: dict, x: np.ndarray) -> np.ndarray:
    """The same network in Keras, called with training=False (epsilon set to torch's 1e-5)."""
    import keras

    hidden = inputs["w1"].shape[1]
    model = keras.Sequential([
        keras.Input((inputs["w1"].shape[0],)), keras.layers.Dense(hidden),
        keras.layers.BatchNormalization(epsilon=1e-5), keras.layers.ReLU(), keras.layers.Dropout(inputs["p"]),
        keras.layers.Dense(inputs["w2"].shape[1])])
    model.set_weights([np.asarray(inputs[k], dtype=np.float32) for k in
                       ("w1", "b1", "gamma", "beta", "running_mean", "running_var", "w2", "b2")])
    return np.asarray(model(x.astype(np.float32), training=False), dtype=float)


def reference_evaluate(model, x, *, eval_mode=True, no_grad=True, restore="train(was)"):
    """The function the exercise asks for; the keyword arguments switch on one usual mistake each."""
    import contextlib

    import torch

    was_training = model.training
    if eval_mode:
        model.eval()
    with torch.no_grad() if no_grad else contextlib.nullcontext():
        out = model(x)
    if restore == "train(was)":
        model.train(was_training)
    elif restore == "always train":
        model.train()
    elif restore == "attribute":
        model.training = was_training
    return out


def _evaluate_run(case: Case, **mistake) -> Plain:
    def fn(model, x):
        return reference_evaluate(model, x, **mistake)

    return {key: np.asarray(value, dtype=float) for key, value in probes.probe_evaluate(fn, case).items()}


def judge_evaluate(case: Case, outputs: Plain) -> Verdict:
    expected = _evaluate_run(case)
    assert_frameworks_agree(expected["output"], keras_bn_net(case.inputs, np.asarray(case.inputs["x"])),
                            "the eval-mode output", rtol=1e-4, atol=1e-5)

    def run(part, **mistake):
        return lambda: _evaluate_run(case, **mistake)[part]

    forgot_eval = "the model was not switched to eval mode: dropout and batch statistics were used"
    return _first_failure([
        (outputs["output"], expected["output"], {forgot_eval: run("output", eval_mode=False)}, "output", 1e-5, 1e-6),
        (outputs["records_graph"], expected["records_graph"], {
            "the output carries a graph: gradient recording was still on": run("records_graph", no_grad=False)},
         "whether the output records gradients", 0, 0),
        (outputs["running_stats"], expected["running_stats"], {forgot_eval: run("running_stats", eval_mode=False)},
         "batch norm's running statistics after the call", 1e-6, 1e-7),
        (outputs["modes"], expected["modes"], {
            "the model was left in eval mode: it should go back to the mode it came in":
                run("modes", restore="none"),
            "the model was put in training mode although it came in eval mode":
                run("modes", restore="always train"),
            "only the top module's mode was restored: setting model.training does not reach the submodules":
                run("modes", restore="attribute"),
        }, "training flags of the model and its submodules afterwards", 0, 0),
    ])


# --- trivial answers: a case one of them passes earns nothing alone (course.questions.earning_cases) ------------

class NeverStops:
    """Trivial answer: an early stopping that never stops, keeps epoch 0 as the best and restores nothing."""

    def __init__(self, patience=0, min_delta=0.0, mode="min", restore_best_weights=False):
        self.best_epoch = 0

    def step(self, value, model):
        return False

    def restore(self, model):
        pass


class AlwaysStops(NeverStops):
    """Trivial answer: an early stopping that stops at the first epoch."""

    def step(self, value, model):
        return True


def never_trains(model, optimizer, scheduler, x, y, epochs, path, batch_size, stop_after=None):
    """Trivial answer: a training function that trains nothing and saves nothing."""
    return []


def forward_as_is(model, x):
    """Trivial answer: the model called as it comes, nothing switched."""
    return model(x)


def first_input(model, x):
    """Trivial answer: the input handed back."""
    return x


CHAPTER = Chapter(
    id=ID,
    title="Train and eval modes, checkpoints, early stopping",
    questions=(
        PROBES.question(
            "EarlyStopping", 4, early_stopping_cases, judge_early_stopping,
            trivial=lambda: {"a stopper that never stops": NeverStops, "a stopper that always stops": AlwaysStops},
            hint="Follow keras.callbacks.EarlyStopping to the letter: what counts as an improvement (min_delta, "
                 "mode, ties), when the wait resets and runs out, that a stored state_dict must not change with "
                 "the model, and when the best weights come back (section \"Early stopping\")."),
        PROBES.question(
            "train_resumable", 4, train_resumable_cases, judge_train_resumable,
            trivial=lambda: {"a function that trains nothing": never_trains},
            hint="Resuming needs everything that changes during training, not only the weights: list which objects "
                 "hold state, which epoch runs next and what the random draws depend on (section \"Checkpoints: "
                 "what resuming needs\")."),
        PROBES.question(
            "evaluate", 2, evaluate_cases, judge_evaluate,
            trivial=lambda: {"the model called as it comes": forward_as_is, "the input unchanged": first_input},
            hint="Inference has two separate switches, the mode that dropout and batch norm read and gradient "
                 "recording; and the model should go back to the mode it came in, submodules included (section "
                 "\"The classic bug: evaluating in training mode\")."),
    ),
)
