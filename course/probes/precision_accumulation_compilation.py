"""Chapter 08 (precision, accumulation, compilation), probe side: run the student's accumulation step and the
student's loss-scaled, clipped update step on a small PyTorch model, and the student's NumPy bfloat16 rounding.

Nothing here computes an expected value: the judge side is :mod:`course.chapters.precision_accumulation_compilation`.
"""
from __future__ import annotations

import numpy as np

from ..questions import Case
from . import ChapterProbes, Probe

ID = "08_precision_accumulation_compilation"
#: What the probe leaves in every ``.grad`` before calling the student's step: gradients of an earlier step, which
#: an accumulation step must not add to.
STALE_GRADIENT = 0.5


def build_torch_mlp(inputs: dict):
    """A Linear-Tanh-Linear float32 model with the case's weights (given in Keras layout: kernels (in, out))."""
    import torch

    n_in, hidden = inputs["w1"].shape
    model = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.Tanh(),
                                torch.nn.Linear(hidden, inputs["w2"].shape[1]))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(inputs["w1"].T)), model[0].bias.copy_(torch.tensor(inputs["b1"]))
        model[2].weight.copy_(torch.tensor(inputs["w2"].T)), model[2].bias.copy_(torch.tensor(inputs["b2"]))
    return model


def flat_parameters(model, attribute: str = "data") -> np.ndarray:
    """Every parameter (or its ``.grad``) of ``model``, flattened in the order of ``model.parameters()``."""
    parts = []
    for p in model.parameters():
        value = getattr(p, attribute)
        parts.append(np.full(p.numel(), np.nan) if value is None else value.detach().double().numpy().ravel())
    return np.concatenate(parts)


def probe_accumulate_gradients(fn, case: Case) -> dict:
    """Run the student's accumulation step; return its loss, the gradients it left and the weights afterwards."""
    import torch

    inputs = case.inputs
    model = build_torch_mlp(inputs)
    for p in model.parameters():  # an earlier step's gradients, still there
        p.grad = torch.full_like(p, STALE_GRADIENT)
    x = torch.tensor(inputs["x"], dtype=torch.float32)
    y = torch.tensor(inputs["y"], dtype=torch.long)
    loss = fn(model, x, y, micro_batch=int(inputs["micro_batch"]), reduction=str(inputs["reduction"]))
    if loss is None:
        raise TypeError("accumulate_gradients returned None: return the loss over the whole batch (a float)")
    return {"loss": float(loss), "grads": flat_parameters(model, "grad"), "weights": flat_parameters(model)}


def probe_round_to_bfloat16(fn, case: Case) -> dict:
    """Call the student's function on a copy of the float32 input; keep NaN positions apart from the values."""
    x = np.array(case.inputs["x"], dtype=np.float32, copy=True)
    result = np.asarray(fn(x), dtype=np.float64)
    if result.shape != x.shape:
        raise ValueError(f"round_to_bfloat16 returned shape {result.shape} for an input of shape {x.shape}")
    nan = np.isnan(result)
    # NaN never compares equal, so the judge gets where the NaNs are and the values elsewhere.
    return {"is_nan": nan.astype(np.float64), "values": np.where(nan, 0.0, result)}


def probe_scaled_clipped_step(fn, case: Case) -> dict:
    """Run the student's update step with a fresh SGD optimizer and GradScaler; return weights, norm and scale."""
    import torch

    inputs = case.inputs
    model = build_torch_mlp(inputs)
    for p in model.parameters():  # an earlier step's gradients, still there
        p.grad = torch.full_like(p, STALE_GRADIENT)
    optimizer = torch.optim.SGD(model.parameters(), lr=float(inputs["lr"]))
    scaler = torch.amp.GradScaler("cpu", init_scale=float(inputs["scale"]))
    x = torch.tensor(inputs["x"], dtype=torch.float32)
    y = torch.tensor(inputs["y"], dtype=torch.long)
    norm = fn(model, optimizer, scaler, x, y, micro_batch=int(inputs["micro_batch"]),
              max_norm=float(inputs["max_norm"]))
    if norm is None:
        raise TypeError("scaled_clipped_step returned None: return the gradient norm that clip_grad_norm_ returned")
    return {"weights": flat_parameters(model), "norm": float(norm), "scale": float(scaler.get_scale())}


PROBES = ChapterProbes(ID, (
    Probe("accumulate_gradients", probe_accumulate_gradients),
    Probe("round_to_bfloat16", probe_round_to_bfloat16, apis="numpy"),
    Probe("scaled_clipped_step", probe_scaled_clipped_step),
))
