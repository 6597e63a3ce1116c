"""Chapter 07 (train and eval modes, checkpoints), probe side: run a student's ``EarlyStopping``,
``train_resumable`` and ``evaluate`` on one case.

Nothing here computes an expected value. Each probe builds the case's objects from plain data (weights, data,
options), runs the student's code on them and returns what it observed as plain arrays. The judge side
(``course.chapters.train_eval_checkpoints``) runs the same probes with the reference answers and the known mistakes,
so the expected values come from exactly the same procedure. torch is imported inside the functions.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from ..questions import Case
from . import ChapterProbes, Probe


# --- EarlyStopping ------------------------------------------------------------------------------------------------

def probe_early_stopping(cls, case: Case) -> dict:
    """Feed the case's monitored values to a new ``cls(...)``; the model's weights are the epoch number.

    Returns the epoch at which ``step`` returned True (-1 if never), the ``best_epoch`` attribute and the weights
    of the model after ``restore`` (every entry equals the number of the epoch whose weights came back).
    """
    import torch

    inputs = case.inputs
    stopper = cls(patience=int(inputs["patience"]), min_delta=float(inputs["min_delta"]), mode=str(inputs["mode"]),
                  restore_best_weights=bool(inputs["restore_best_weights"]))
    model = torch.nn.Linear(2, 1)
    stopped = -1
    for epoch, value in enumerate(np.asarray(inputs["values"], dtype=float)):
        with torch.no_grad():  # in place, as an optimizer changes weights: aliased "copies" change too
            for parameter in model.parameters():
                parameter.fill_(float(epoch))
        if stopper.step(float(value), model):
            stopped = epoch
            break
    stopper.restore(model)
    restored = torch.cat([p.detach().ravel() for p in model.parameters()]).numpy().copy()
    return {"stopped_at": float(stopped), "best_epoch": float(stopper.best_epoch), "restored": restored}


# --- train_resumable ----------------------------------------------------------------------------------------------

def _setup(inputs, weights: str):
    """The case's network (dropout between two linear layers), optimizer and StepLR, with weights ``w_*`` or
    ``other_*`` from the case (Keras layout: kernels are (in, out))."""
    import torch

    w1, b1, w2, b2 = (np.asarray(inputs[f"{weights}_{k}"], dtype=np.float32) for k in ("w1", "b1", "w2", "b2"))
    model = torch.nn.Sequential(torch.nn.Linear(*w1.shape), torch.nn.ReLU(), torch.nn.Dropout(float(inputs["p"])),
                                torch.nn.Linear(*w2.shape))
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w1.T)), model[0].bias.copy_(torch.from_numpy(b1))
        model[3].weight.copy_(torch.from_numpy(w2.T)), model[3].bias.copy_(torch.from_numpy(b2))
    if inputs["optimizer"] == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=float(inputs["lr"]))
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=float(inputs["lr"]), momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(inputs["step_size"]), gamma=0.5)
    return model, optimizer, scheduler


def _flat(model) -> np.ndarray:
    import torch

    return torch.cat([p.detach().ravel() for p in model.parameters()]).numpy().copy()


def probe_train_resumable(fn, case: Case) -> dict:
    """Run ``fn`` once without interruption and once interrupted and resumed, in a temporary directory.

    The resumed call gets a new model with other weights, a fresh optimizer and scheduler, another random seed and
    the model in eval mode: only what the checkpoint holds can make it continue correctly.
    """
    import torch

    inputs = case.inputs
    x = torch.tensor(np.asarray(inputs["x"]), dtype=torch.float32)
    y = torch.tensor(np.asarray(inputs["y"]), dtype=torch.long)
    epochs, batch_size = int(inputs["epochs"]), int(inputs["batch_size"])
    # The grader's sandbox lets a submission write only below its working directory.
    with tempfile.TemporaryDirectory(dir=os.getcwd(), prefix=".ch07-") as tmp:
        model, optimizer, scheduler = _setup(inputs, "w")
        torch.manual_seed(int(inputs["seed"]))
        model.eval()  # the function must switch to training mode itself
        full_losses = fn(model, optimizer, scheduler, x, y, epochs, os.path.join(tmp, "full.pt"), batch_size)
        full_weights = _flat(model)

        path = os.path.join(tmp, "interrupted.pt")
        model, optimizer, scheduler = _setup(inputs, "w")
        torch.manual_seed(int(inputs["seed"]))
        model.eval()
        first = fn(model, optimizer, scheduler, x, y, epochs, path, batch_size, stop_after=int(inputs["stop_after"]))
        model, optimizer, scheduler = _setup(inputs, "other")  # "after the crash": nothing carried over
        torch.manual_seed(int(inputs["seed"]) + 1)
        model.eval()
        second = fn(model, optimizer, scheduler, x, y, epochs, path, batch_size)
        resumed_weights = _flat(model)
    return {"full_weights": full_weights, "full_losses": np.asarray(list(full_losses), dtype=float),
            "resumed_weights": resumed_weights,
            "resumed_losses": np.asarray(list(first) + list(second), dtype=float)}


# --- evaluate -----------------------------------------------------------------------------------------------------

def build_bn_net(inputs):
    """The case's network: linear, batch norm (with running statistics), ReLU, dropout, linear."""
    import torch

    w1, w2 = (np.asarray(inputs[k], dtype=np.float32) for k in ("w1", "w2"))
    model = torch.nn.Sequential(torch.nn.Linear(*w1.shape), torch.nn.BatchNorm1d(w1.shape[1]), torch.nn.ReLU(),
                                torch.nn.Dropout(float(inputs["p"])), torch.nn.Linear(*w2.shape))
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w1.T))
        model[0].bias.copy_(torch.tensor(np.asarray(inputs["b1"], dtype=np.float32)))
        model[1].weight.copy_(torch.tensor(np.asarray(inputs["gamma"], dtype=np.float32)))
        model[1].bias.copy_(torch.tensor(np.asarray(inputs["beta"], dtype=np.float32)))
        model[1].running_mean.copy_(torch.tensor(np.asarray(inputs["running_mean"], dtype=np.float32)))
        model[1].running_var.copy_(torch.tensor(np.asarray(inputs["running_var"], dtype=np.float32)))
        model[4].weight.copy_(torch.from_numpy(w2.T))
        model[4].bias.copy_(torch.tensor(np.asarray(inputs["b2"], dtype=np.float32)))
    return model


def probe_evaluate(fn, case: Case) -> dict:
    """Call ``fn(model, x)`` on the case's network in the case's starting mode; observe output and side effects."""
    import torch

    inputs = case.inputs
    model = build_bn_net(inputs)
    model.train(inputs["mode"] == "train")
    torch.manual_seed(int(inputs["seed"]))  # a forgotten eval() then drops the same units every time
    out = fn(model, torch.tensor(np.asarray(inputs["x"]), dtype=torch.float32))
    return {"output": torch.as_tensor(out).detach().numpy().copy(),
            "records_graph": float(bool(getattr(out, "requires_grad", False))),
            "running_stats": np.concatenate([model[1].running_mean.numpy(), model[1].running_var.numpy()]),
            "modes": np.array([float(m.training) for m in model.modules()])}


PROBES = ChapterProbes("07_train_eval_checkpoints", (
    Probe("EarlyStopping", probe_early_stopping, kind="class"),
    Probe("train_resumable", probe_train_resumable),
    Probe("evaluate", probe_evaluate),
))
