"""Chapter 05 (training loops), probe side: fit the student's Keras model class, run the student's torch loop,
and record what happened.

Nothing here computes an expected value: the judge side is :mod:`course.chapters.training_loops`.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import warnings

import numpy as np

from ..questions import Case
from . import ChapterProbes, Probe


@contextlib.contextmanager
def _no_retracing_notes():
    """Silence TensorFlow's "triggered tf.function retracing" note while fitting many small models.

    Every fit of a new model traces a new function, so after a few fits TensorFlow logs a warning on stderr about
    "expensive retracing". Here the retracing is expected (one trace per model) and the note would only alarm.
    """
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _keras_metric(task: str) -> str:
    return "accuracy" if task == "classification" else "mae"


@functools.cache
def training_mode_layer():
    """A layer that passes its input through in training and halves it otherwise.

    Like dropout or batch norm it makes a forward pass without ``training=True`` compute something else, but
    deterministically, so a run can be compared with ``fit``'s to the last digits. It has no weights.
    """
    import keras

    class TrainingMode(keras.layers.Layer):
        def call(self, x, training=None):
            return x if training else 0.5 * x

    return TrainingMode


def build_keras_model(model_class, inputs: dict, reduction: str = "sum_over_batch_size"):
    """A compiled one-hidden-layer MLP of ``model_class`` with the case's initial weights and plain SGD; its hidden
    layer behaves differently in training (see :func:`training_mode_layer`)."""
    import keras

    task = inputs["task"]
    x_in = keras.Input((inputs["w1"].shape[0],))
    hidden = keras.layers.Dense(inputs["w1"].shape[1], activation="tanh")(x_in)
    hidden = training_mode_layer()()(hidden)
    out = keras.layers.Dense(inputs["w2"].shape[1])(hidden)
    model = model_class(inputs=x_in, outputs=out)
    model.set_weights([np.asarray(inputs[k], np.float32) for k in ("w1", "b1", "w2", "b2")])
    if task == "classification":
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)
    else:
        loss = keras.losses.MeanSquaredError(reduction=reduction)
    model.compile(optimizer=keras.optimizers.SGD(inputs["lr"]), loss=loss, metrics=[_keras_metric(task)])
    return model


def fit_keras(model_class, inputs: dict, use_weights: bool = True, reduction: str = "sum_over_batch_size") -> Plain:
    """Train like ``fit`` does (in order, no shuffling); return the logged loss, metric and final weights."""
    model = build_keras_model(model_class, inputs, reduction)
    weights = np.asarray(inputs["sample_weight"], np.float32) if use_weights else None
    with _no_retracing_notes():
        history = model.fit(np.asarray(inputs["x"], np.float32), np.asarray(inputs["y"]), sample_weight=weights,
                            batch_size=inputs["batch_size"], epochs=inputs["epochs"], shuffle=False,
                            verbose=0).history
    metric = _keras_metric(inputs["task"])
    return {"loss": np.array(history.get("loss", [np.nan] * inputs["epochs"]), np.float64),
            "metric": np.array(history.get(metric, [np.nan] * inputs["epochs"]), np.float64),
            "weights": np.concatenate([w.ravel() for w in model.get_weights()]).astype(np.float64)}


def probe_weighted_model(model_class, case: Case) -> dict:
    """Fit the student's class on the case (the only part that runs student code)."""
    try:
        return fit_keras(model_class, case.inputs)
    except ValueError as exc:  # two Keras errors whose cause is not obvious from their text
        if "unpack" in str(exc):  # the seed's `x, y = data` meets (x, y, sample_weight)
            raise ValueError(f"{exc}: fit passes (x, y, sample_weight); use "
                             "keras.utils.unpack_x_y_sample_weight(data)") from None
        if "not yet been built" in str(exc):  # fit reads every metric at the end of an epoch
            raise ValueError("a compiled metric was never updated: every metric in self.metrics must be updated, "
                             "not only the loss") from None
        raise


def _total_steps(inputs: dict) -> int:
    return inputs["epochs"] * -(-len(inputs["x"]) // inputs["batch_size"])


def make_torch_setup(inputs: dict):
    """The model (case weights, with batch norm, in evaluation mode), loader (in order), SGD with momentum and the
    case's scheduler."""
    import torch

    hidden, n_in = inputs["w1"].shape[1], inputs["w1"].shape[0]
    # Batch norm behaves differently in training and evaluation mode, so a loop that never calls model.train()
    # (the model arrives in evaluation mode) trains another model.
    model = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.BatchNorm1d(hidden), torch.nn.Tanh(),
                                torch.nn.Linear(hidden, inputs["w2"].shape[1]))
    with torch.no_grad():  # Keras layout (in, out) -> torch layout (out, in)
        model[0].weight.copy_(torch.tensor(inputs["w1"].T)), model[0].bias.copy_(torch.tensor(inputs["b1"]))
        model[3].weight.copy_(torch.tensor(inputs["w2"].T)), model[3].bias.copy_(torch.tensor(inputs["b2"]))
    model.eval()
    data = torch.utils.data.TensorDataset(torch.tensor(inputs["x"], dtype=torch.float32),
                                          torch.tensor(inputs["y"], dtype=torch.long))
    loader = torch.utils.data.DataLoader(data, batch_size=inputs["batch_size"], shuffle=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=inputs["lr"], momentum=0.9)
    if inputs["schedule"] == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=_total_steps(inputs))
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    return model, loader, optimizer, scheduler


def run_recorded(train, inputs: dict) -> dict:
    """Run ``train`` on a fresh setup, recording the learning rate and the weights after every optimizer step."""
    import torch

    model, loader, optimizer, scheduler = make_torch_setup(inputs)
    lrs, trajectory = [], []

    def record(opt, args, kwargs):
        lrs.append(opt.param_groups[0]["lr"])
        trajectory.append(torch.cat([p.detach().ravel() for p in model.parameters()]).numpy().copy())

    optimizer.register_step_post_hook(record)
    with warnings.catch_warnings():
        # torch warns when scheduler.step() comes before optimizer.step(); the judge names that mistake instead.
        warnings.simplefilter("ignore", UserWarning)
        losses = train(model, loader, optimizer, scheduler, max_norm=inputs["max_norm"], epochs=inputs["epochs"])
    return {"lr": np.array(lrs), "weights": np.array(trajectory), "losses": losses}


def probe_train_torch(train, case: Case) -> dict:
    """Run the student's loop on the case (the only part that runs student code)."""
    return run_recorded(train, case.inputs)


PROBES = ChapterProbes("05_training_loops", (
    Probe("WeightedModel", probe_weighted_model, kind="class"),
    Probe("train_torch", probe_train_torch),
))
