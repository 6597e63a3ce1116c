"""Chapter 03 (optimizers), probe side: build the student's optimizer class and drive it over a case's gradients.

Nothing here computes an expected value: the judge side is :mod:`course.chapters.optimizers`.
"""
from __future__ import annotations

import numpy as np

from ..questions import Case
from . import ChapterProbes, Probe


def variable_names(inputs) -> list[str]:
    """The weight keys of a case (``w0``, ``w1`` ...), in order."""
    return sorted((key for key in inputs if key[0] == "w" and key[1:].isdigit()), key=lambda k: int(k[1:]))


def initial_weights(inputs) -> list[np.ndarray]:
    """Float64 copies of a case's initial weights."""
    return [np.array(inputs[name], dtype=np.float64, copy=True) for name in variable_names(inputs)]


def n_steps(inputs) -> int:
    """How many optimizer steps a case runs."""
    return int(inputs["steps"])


def gradients_at(inputs, step: int, weights: list[np.ndarray]) -> list[np.ndarray]:
    """The gradients fed at ``step`` (0-based): given ones (``g0``...), or a quadratic bowl's at ``weights``.

    A bowl ``sum c * (w - target)**2 / 2`` has gradient ``c * (w - target)``, so a wrong step changes every later
    gradient: this is the case where errors compound as they do in training.
    """
    grads = []
    for i, w in enumerate(weights):
        if f"g{i}" in inputs:
            grads.append(np.array(inputs[f"g{i}"][step], dtype=np.float64))
        else:
            grads.append(np.asarray(inputs[f"c{i}"], np.float64) * (np.asarray(w, np.float64) - inputs[f"t{i}"]))
    return grads


def lr_scales(inputs) -> list[float]:
    """Each variable's learning rate as a multiple of the case's (torch: one parameter group per variable)."""
    scales = inputs.get("lr_scale")
    return [1.0] * len(variable_names(inputs)) if scales is None else [float(x) for x in scales]


def _drive(inputs, read, step, after_step=None) -> dict[str, np.ndarray]:
    """Run ``step(grads)`` for every step of a case, recording ``read()`` before and after each step."""
    paths = [[w] for w in read()]
    for index in range(n_steps(inputs)):
        step(gradients_at(inputs, index, read()))
        if after_step is not None:
            after_step()
        for path, w in zip(paths, read()):
            path.append(np.array(w, dtype=np.float64))
    return {name: np.stack(path) for name, path in zip(variable_names(inputs), paths)}


def _torch_step(optimizer, params, grads) -> None:
    import torch

    for p, g in zip(params, grads):
        p.grad = torch.tensor(g, dtype=p.dtype)
    optimizer.step()


def _keras_step(optimizer, variables, grads) -> None:
    import keras

    tensors = [keras.ops.convert_to_tensor(g, dtype="float64") for g in grads]
    optimizer.apply_gradients(zip(tensors, variables))


def _require_subclass(cls, base, base_name: str) -> None:
    if not isinstance(cls, type) or not issubclass(cls, base):
        raise TypeError(f"expected a class that subclasses {base_name}, got {type(cls).__name__} {cls!r}")


def probe_keras(cls, case: Case) -> dict:
    """Build the student's Keras optimizer with the case's hyper-parameters and run it on float64 variables."""
    import keras

    _require_subclass(cls, keras.optimizers.Optimizer, "keras.optimizers.Optimizer")
    if getattr(cls, "update_step") is keras.optimizers.Optimizer.update_step:
        legacy = [name for name in ("_resource_apply_dense", "_create_slots") if hasattr(cls, name)]
        why = f" (it defines {', '.join(legacy)}: that is the Keras 2 API, which Keras 3 never calls)" if legacy else ""
        raise TypeError(f"{cls.__name__} does not override update_step{why}; "
                        "Keras 3 optimizers implement build(var_list) and update_step(gradient, variable, lr)")
    inputs = case.inputs
    learning_rate = inputs["learning_rate"]
    if inputs.get("halve_every"):  # a schedule object instead of a number, as in model.compile(optimizer=...)
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=int(inputs["halve_every"]), decay_rate=0.5, staircase=True)
    optimizer = cls(learning_rate=learning_rate, beta_1=inputs["beta_1"], beta_2=inputs["beta_2"],
                    epsilon=inputs["epsilon"])
    variables = [keras.Variable(w, dtype="float64", name=name)
                 for name, w in zip(variable_names(inputs), initial_weights(inputs))]
    try:
        return _drive(inputs, lambda: [np.array(v.numpy()) for v in variables],
                      lambda grads: _keras_step(optimizer, variables, grads))
    except Exception as exc:
        if learning_rate is inputs["learning_rate"] or isinstance(exc, NotImplementedError):
            raise
        raise TypeError("here learning_rate is a LearningRateSchedule, not a number: use the learning_rate "
                        f"argument of update_step, which Keras evaluates at each step ({exc})") from None


def probe_torch(cls, case: Case) -> dict:
    """Build the student's torch optimizer with the case's hyper-parameters and run it on float64 tensors."""
    import torch

    _require_subclass(cls, torch.optim.Optimizer, "torch.optim.Optimizer")
    inputs = case.inputs
    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in initial_weights(inputs)]
    lr = inputs["learning_rate"]
    # One parameter group per variable when the case gives them different rates (as for a fine-tuned backbone).
    groups = params if "lr_scale" not in inputs else [
        {"params": [p], "lr": lr * scale} for p, scale in zip(params, lr_scales(inputs))]
    optimizer = cls(groups, lr=lr, betas=(inputs["beta_1"], inputs["beta_2"]), eps=inputs["epsilon"])
    scheduler = None
    if inputs.get("halve_every"):  # torch schedulers write group["lr"]; the optimizer must read it there
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(inputs["halve_every"]), gamma=0.5)
    return _drive(inputs, lambda: [p.detach().numpy().copy() for p in params],
                  lambda grads: _torch_step(optimizer, params, grads),
                  after_step=None if scheduler is None else scheduler.step)


PROBES = ChapterProbes("03_optimizers", (
    Probe("AdaBeliefKeras", probe_keras, kind="class"),
    Probe("AdaBeliefTorch", probe_torch, kind="class"),
))
