"""Chapter 05: custom training loops in Keras 3 (a ``train_step`` override) and PyTorch (a hand-written loop).

Two questions, both judged by re-running training with the frameworks' own machinery:

* ``WeightedModel``: a ``keras.Model`` subclass whose ``train_step`` honours sample weights and logs the loss the
  way ``fit`` does. The oracle is the stock ``keras.Model.fit`` on the same model, data and initial weights, checked
  against an independent PyTorch loop with Keras' weighting (sum of w·loss over the batch size).
* ``train_torch``: a PyTorch loop with gradient-norm clipping and a learning-rate scheduler stepped after every
  batch. The oracle is the same loop written here with ``torch.nn.utils.clip_grad_norm_`` and torch's schedulers;
  the learning rates are checked against the equivalent Keras schedules.

The usual mistakes are the same training runs with one thing changed, so feedback can name the mistake.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from functools import cache

import numpy as np

from ..questions import Case, Chapter, Plain, Verdict, assert_frameworks_agree, compare, weighted
from ..probes.training_loops import PROBES, _keras_metric, _total_steps, fit_keras, run_recorded

ID = "05_training_loops"
#: float32 training runs: the same arithmetic in another order differs in the 6th digit, never more.
RTOL, ATOL = 1e-4, 1e-5


# --- shared helpers ----------------------------------------------------------------------------------------------

def _first_failure(checks) -> Verdict:
    """Compare (got, expected, mistakes, what) tuples in order; the first failure is the verdict.

    ``mistakes`` maps a diagnosis to a function computing what that mistake gives: each is a whole training run, and
    ``compare`` only runs them when the answer is wrong, one at a time, until one matches.
    """
    for got, expected, mistakes, what in checks:
        verdict = compare(got, expected, mistakes=mistakes, rtol=RTOL, atol=ATOL, what=what)
        if not verdict.passed:
            return verdict
    return Verdict(True, "")




def _mlp_weights(rng: np.random.Generator, n_in: int, hidden: int, n_out: int, scale: float = 0.5) -> dict:
    """Initial weights of a one-hidden-layer MLP in Keras layout (kernels are (in, out))."""
    return {"w1": rng.normal(scale=scale, size=(n_in, hidden)), "b1": rng.normal(scale=0.1, size=hidden),
            "w2": rng.normal(scale=scale, size=(hidden, n_out)), "b2": rng.normal(scale=0.1, size=n_out)}


# --- question 1: a Keras train_step that honours sample weights ---------------------------------------------------

def weighted_model_cases(rng: np.random.Generator) -> list[Case]:
    def case(label, n, batch_size, task, weights, epochs=3, lr=0.05, scale=1.0):
        n_in, n_out = 4, (3 if task == "classification" else 1)
        x = rng.normal(scale=scale, size=(n, n_in))
        if task == "classification":
            y = rng.integers(0, n_out, size=n)
        else:
            y = (x @ rng.normal(size=(n_in, 1)) + rng.normal(scale=0.1, size=(n, 1)) + 2.0)
        return Case(label, {"x": x, "y": y, "sample_weight": weights, "task": task, "batch_size": batch_size,
                            "epochs": epochs, "lr": lr, **_mlp_weights(rng, n_in, 5, n_out)})

    return [
        case("regression, 32 samples in batches of 8, weights in [0.2, 3]", 32, 8, "regression",
             rng.uniform(0.2, 3.0, 32)),
        case("classification, 24 samples in batches of 6, weights in [0.2, 3]", 24, 6, "classification",
             rng.uniform(0.2, 3.0, 24)),
        case("a smaller last batch (30 samples in batches of 8)", 30, 8, "regression", rng.uniform(0.5, 2.0, 30)),
        case("half the weights are 0 (those samples must not count)", 32, 16, "classification",
             rng.permutation(np.r_[np.zeros(16), rng.uniform(1.0, 4.0, 16)])),
        case("large weights (up to 1000) with a small learning rate", 20, 10, "regression",
             rng.uniform(100.0, 1000.0, 20), lr=1e-4),
        case("one batch per epoch (batch size = all 16 samples)", 16, 16, "classification", rng.uniform(0.2, 3.0, 16),
             epochs=4),
    ]










def _mistaken_models():
    """train_step overrides with one usual mistake each (built lazily: they need Keras)."""
    import keras
    import tensorflow as tf

    class _Base(keras.Model):
        def _update(self, loss, x, y, y_pred, sample_weight, unweighted_tracker=False):
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss, sample_weight=None if unweighted_tracker else tf.shape(x)[0])
                else:
                    metric.update_state(y, y_pred, sample_weight=sample_weight)
            return {m.name: m.result() for m in self.metrics}

    class MeanOfPredictions(keras.Model):
        """The seed's pattern with the deprecated shims (sample weights passed): logs mean(y_pred) as 'loss'."""

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the shims' deprecation warnings are the point, not news
                with tf.GradientTape() as tape:
                    y_pred = self(x, training=True)
                    loss = self.compiled_loss(y, y_pred, sample_weight=sample_weight)
                grads = tape.gradient(loss, self.trainable_variables)
                self.optimizer.apply(grads, self.trainable_variables)
                self.compiled_metrics.update_state(y, y_pred, sample_weight=sample_weight)
            return {m.name: m.result() for m in self.metrics}

    class UnweightedTracker(_Base):
        """Correct training, but each batch's loss counts once in the epoch mean whatever its size."""

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
            return self._update(loss, x, y, y_pred, sample_weight, unweighted_tracker=True)

    class NoTrainingFlag(_Base):
        """Correct, except that the forward pass does not say training=True."""

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred = self(x)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
            return self._update(loss, x, y, y_pred, sample_weight)

    return MeanOfPredictions, UnweightedTracker, NoTrainingFlag


def torch_weighted_reference(inputs: dict) -> np.ndarray:
    """Final weights of the same training in PyTorch: per batch, sum(w * loss_i) / batch size, then plain SGD."""
    import torch

    x = torch.tensor(inputs["x"], dtype=torch.float64)
    y = torch.tensor(inputs["y"], dtype=torch.long if inputs["task"] == "classification" else torch.float64)
    w = torch.tensor(inputs["sample_weight"], dtype=torch.float64)
    params = [torch.tensor(inputs[k], dtype=torch.float64, requires_grad=True) for k in ("w1", "b1", "w2", "b2")]
    optimizer = torch.optim.SGD(params, lr=inputs["lr"])
    n, size = len(x), inputs["batch_size"]
    for _ in range(inputs["epochs"]):
        for start in range(0, n, size):
            xb, yb, wb = x[start:start + size], y[start:start + size], w[start:start + size]
            out = torch.tanh(xb @ params[0] + params[1]) @ params[2] + params[3]
            if inputs["task"] == "classification":
                per_sample = torch.nn.functional.cross_entropy(out, yb, reduction="none")
            else:
                per_sample = ((out - yb) ** 2).mean(dim=1)
            optimizer.zero_grad()
            ((wb * per_sample).sum() / len(xb)).backward()
            optimizer.step()
    return np.concatenate([p.detach().numpy().ravel() for p in params])


def _flat(outputs: Plain) -> np.ndarray:
    return np.concatenate([outputs["loss"].ravel(), outputs["weights"].ravel()])


def weighted_model_mistakes(inputs: dict) -> dict:
    """How to compute what the usual wrong train_step overrides log and learn on these inputs (one fit each)."""
    import keras

    mean_of_predictions, unweighted_tracker, no_training_flag = _mistaken_models()  # class definitions: cheap

    def run(model_class=None, **options):
        return lambda: _flat(fit_keras(model_class or keras.Model, inputs, **options))

    return {
        "sample weights were ignored: fit passes them inside `data`, and neither the loss nor the metrics "
        "received them": run(use_weights=False),
        "the logged 'loss' is the mean of the predictions (what the compiled_loss/compiled_metrics shims log), "
        "not the loss": run(mean_of_predictions),
        "divided by the sum of the weights: Keras' default reduction divides sum(w * loss) by the batch size":
            run(reduction="mean_with_sample_weight"),
        "summed the weighted losses over the batch: divide by the batch size (compute_loss does)":
            run(reduction="sum"),
        "every batch counts once in the epoch's loss, whatever its size: fit weights each batch's loss by its "
        "size": run(unweighted_tracker),
        "called the model without training=True: layers such as dropout and batch norm then run in inference "
        "mode during training": run(no_training_flag),
    }


def judge_weighted_model(case: Case, outputs: Plain) -> Verdict:
    import keras

    inputs = case.inputs
    expected = fit_keras(keras.Model, inputs)
    # float32 training in two frameworks: agreement to a few float32 steps, not to the last bit.
    assert_frameworks_agree(expected["weights"], torch_weighted_reference(inputs), "the weights after weighted training",
                            rtol=1e-3, atol=1e-4)
    metric = _keras_metric(inputs["task"])
    if np.isnan(outputs["metric"]).any():
        return Verdict(False, f"fit logged no '{metric}': every metric in self.metrics must be updated and "
                              "returned, not only the loss")
    return _first_failure([
        (_flat(outputs), _flat(expected), weighted_model_mistakes(inputs), "logged losses and final weights"),
        (outputs["metric"], expected["metric"], {}, f"logged {metric}"),
    ])


# --- question 2: a PyTorch loop with gradient clipping and a per-step scheduler -----------------------------------

def train_torch_cases(rng: np.random.Generator) -> list[Case]:
    def case(label, n, batch_size, max_norm, schedule, epochs=2, lr=0.1, scale=1.0):
        n_in, n_out = 4, 3
        return Case(label, {"x": rng.normal(scale=scale, size=(n, n_in)), "y": rng.integers(0, n_out, size=n),
                            "batch_size": batch_size, "epochs": epochs, "lr": lr, "max_norm": max_norm,
                            "schedule": schedule, **_mlp_weights(rng, n_in, 6, n_out, scale=1.0)})

    return [
        case("cosine schedule, 24 samples in batches of 6, max_norm 0.5", 24, 6, 0.5, "cosine"),
        case("step schedule (halve every 3 steps), max_norm 1", 24, 8, 1.0, "step", epochs=3),
        case("tiny max_norm (0.01): every update is clipped", 20, 5, 0.01, "cosine", lr=0.5),
        case("inputs ×100: huge gradients, clipped to norm 2", 18, 6, 2.0, "step", scale=100.0),
        case("a smaller last batch (22 samples in batches of 8)", 22, 8, 0.3, "cosine", epochs=3),
        case("huge max_norm (1e6): clipping never bites", 16, 4, 1e6, "step", lr=0.05),
    ]






def keras_learning_rates(inputs: dict) -> np.ndarray:
    """The learning rate of each step by the equivalent Keras schedule (an independent oracle for torch's)."""
    import keras

    lr, steps = inputs["lr"], _total_steps(inputs)
    if inputs["schedule"] == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps)
    else:
        schedule = keras.optimizers.schedules.ExponentialDecay(lr, decay_steps=3, decay_rate=0.5, staircase=True)
    return np.array([float(schedule(step)) for step in range(steps)])






def reference_loop(model, loader, optimizer, scheduler, max_norm, epochs, *, clip="norm", zero_grad=True,
                   schedule_at="step", train_mode=True):
    """The loop the exercise asks for; the keyword arguments switch on one usual mistake each."""
    import torch

    losses = []
    for _ in range(epochs):
        if train_mode:
            model.train()
        for x, y in loader:
            if zero_grad:
                optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            if clip == "norm":
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            elif clip == "value":
                torch.nn.utils.clip_grad_value_(model.parameters(), max_norm)
            elif clip == "each":
                for p in model.parameters():
                    torch.nn.utils.clip_grad_norm_([p], max_norm)
            if schedule_at == "before":
                scheduler.step()
            optimizer.step()
            if schedule_at == "step":
                scheduler.step()
            losses.append(loss.item())
        if schedule_at == "epoch":
            scheduler.step()
    return losses


def _reference(inputs: dict, **mistake) -> dict:
    def train(*args, **kwargs):
        return reference_loop(*args, **kwargs, **mistake)

    out = run_recorded(train, inputs)
    return {key: np.asarray(value, np.float64) for key, value in out.items()}


def judge_train_torch(case: Case, outputs: Plain) -> Verdict:
    inputs = case.inputs
    expected = _reference(inputs)
    assert_frameworks_agree(expected["lr"], keras_learning_rates(inputs), "the learning-rate schedule",
                            rtol=1e-5, atol=1e-9)

    def run(part, **mistake):
        return lambda: _reference(inputs, **mistake)[part]

    lr_mistakes = {
        "the scheduler was stepped once per epoch: here it steps with every optimizer step":
            run("lr", schedule_at="epoch"),
        "scheduler.step() came before optimizer.step(): the first update skipped the initial learning rate":
            run("lr", schedule_at="before"),
    }
    weight_mistakes = {
        "the gradients reached optimizer.step() unclipped (clipping missing, or after the step)":
            run("weights", clip="none"),
        "clipped each gradient entry (clip_grad_value_): the limit is on the norm of all gradients together":
            run("weights", clip="value"),
        "gradients accumulate across batches: no optimizer.zero_grad() before each backward()":
            run("weights", zero_grad=False),
        "clipped each parameter's gradient to max_norm separately: the limit is on the total norm of all the "
        "gradients together": run("weights", clip="each"),
        "never called model.train(): the model arrives in evaluation mode, so batch norm used its running "
        "statistics instead of the batch's":
            run("weights", train_mode=False),
    }
    per_batch = expected["losses"]
    loss_mistakes = {} if per_batch.size % inputs["epochs"] else {
        "returned one loss per epoch: the loss of every batch is asked for":
            lambda: per_batch.reshape(inputs["epochs"], -1).mean(axis=1)}

    return _first_failure([
        (outputs["lr"], expected["lr"], lr_mistakes, "learning rate at each optimizer step"),
        (outputs["weights"], expected["weights"], weight_mistakes, "weights after each optimizer step"),
        (outputs["losses"], expected["losses"], loss_mistakes, "returned per-batch losses"),
    ])


# --- trivial answers: a case one of them passes earns nothing alone (course.questions.earning_cases) ------------

@cache
def trivial_models() -> dict:
    """A model whose train_step does nothing (no update, nothing logged)."""
    import keras

    class StandStill(keras.Model):
        def train_step(self, data):
            return {}

    return {"a train_step that does nothing": StandStill}


def never_trains(model, loader, optimizer, scheduler, max_norm, epochs):
    """Trivial answer: a loop that never runs a batch."""
    return []


def never_updates(model, loader, optimizer, scheduler, max_norm, epochs):
    """Trivial answer: a loop that computes every batch's loss and never updates anything."""
    import torch

    with torch.no_grad():
        return [torch.nn.functional.cross_entropy(model(x), y).item() for _ in range(epochs) for x, y in loader]


#: (part of a case label, weight, what the case tests).
WEIGHTED_MODEL_WEIGHTS = [
    ("half the weights are 0", 2, "honouring sample weights"),
    ("smaller last batch", 2, "weighting each batch's logged loss by its size"),
    ("large weights", 2, "Keras' reduction: sum of w·loss ÷ batch size"),
]
TRAIN_TORCH_WEIGHTS = [
    ("tiny max_norm", 3, "clipping the total gradient norm before the update"),
    ("huge gradients", 2, "clipping the total gradient norm before the update"),
    ("step schedule", 2, "stepping the scheduler after every optimizer step"),
]

CHAPTER = Chapter(
    id=ID,
    title="Custom training loops",
    questions=(
        PROBES.question(
            "WeightedModel", 5, weighted(weighted_model_cases, WEIGHTED_MODEL_WEIGHTS, "a train_step that matches fit"),
            judge_weighted_model, trivial=trivial_models,
            hint="fit hands train_step batches that may carry sample weights: unpack them with Keras' utility for "
                 "it, let the loss and the metrics use them, and log the epoch's loss the way fit's own tracker "
                 "averages batches of different sizes (section \"Overriding `train_step` the Keras 3 way\")."),
        PROBES.question(
            "train_torch", 5, weighted(train_torch_cases, TRAIN_TORCH_WEIGHTS,
                                     "the order of the steps in a training loop"),
            judge_train_torch,
            trivial=lambda: {"a loop that never runs": never_trains, "a loop that never updates": never_updates},
            hint="The order of the steps in a batch is the exercise: where clipping goes relative to backward and "
                 "the optimizer step, and how often the scheduler steps here (section \"Gradient clipping and where "
                 "the scheduler steps\").",
            hang_cause="a `while` loop over the batches (iterate `for x, y in loader` inside "
                       "`for epoch in range(epochs)`)"),
    ),
)
