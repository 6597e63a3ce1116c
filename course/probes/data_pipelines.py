"""Chapter 06 (data pipelines), probe side: build the student's PyDataset, DataLoader or batch sampler and
read two epochs from it, the way ``fit`` or a training loop would.

Nothing here computes an expected value: the judge side is :mod:`course.chapters.data_pipelines`.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..questions import Case
from . import ChapterProbes, Probe


PAD = -1.0


def _copies(case: Case) -> dict:
    return {key: np.array(value, copy=True) if isinstance(value, np.ndarray) else value
            for key, value in case.inputs.items()}


def _pad(arrays: list[list[np.ndarray]], fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Ragged runs of ragged arrays -> (values padded with ``fill``, shapes padded with -1), both float arrays."""
    n_runs = len(arrays)
    n_batches = max((len(run) for run in arrays), default=0)
    size = max((a.size for run in arrays for a in run), default=0)
    ndim = max((a.ndim for run in arrays for a in run), default=0)
    values = np.full((n_runs, n_batches, size), fill)
    shapes = np.full((n_runs, n_batches, ndim), -1.0)
    for r, run in enumerate(arrays):
        for j, a in enumerate(run):
            values[r, j, : a.size] = a.ravel()
            shapes[r, j, : a.ndim] = a.shape
    return values, shapes


def _as_array(value) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # tf tensor
        value = value.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # garbage from np.empty may not fit in float64 quietly: that is the point
        return np.asarray(value, dtype=np.float64)


def _xy_batches(batches) -> tuple[list[np.ndarray], list[np.ndarray]]:
    xs, ys = [], []
    for batch in batches:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError(f"each batch must be a pair (x, y), got {type(batch).__name__}")
        xs.append(_as_array(batch[0]))
        ys.append(_as_array(batch[1]))
    return xs, ys


def _pack_runs(runs: list[list], lengths: list[int], flags: dict) -> dict:
    xs, ys = zip(*(_xy_batches(run) for run in runs))
    x_values, x_shapes = _pad(list(xs), np.nan)
    y_values, y_shapes = _pad(list(ys), np.nan)
    return {"length": np.array(lengths, dtype=float), "yielded": np.array([len(run) for run in runs], dtype=float),
            "x_values": x_values, "x_shapes": x_shapes, "y_values": y_values, "y_shapes": y_shapes,
            **{key: np.array(float(value)) for key, value in flags.items()}}


def _limit(n: int) -> int:
    """At most this many batches are read per epoch (a wrong ``__len__`` must not make the probe run forever)."""
    return n + 2


def probe_pydataset(cls, case: Case) -> dict:
    """Build the student's PyDataset, read two epochs the way ``fit`` does (epoch hooks included), and a twin's first."""
    import keras

    inputs = _copies(case)
    n = len(inputs["x"])

    def build():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = cls(**inputs)
            getattr(dataset, "workers", None)  # Keras warns here if __init__ did not call super().__init__()
        warned = any("super().__init__" in str(w.message) for w in caught)
        return dataset, warned

    def epoch(dataset):
        dataset.on_epoch_begin()
        length = len(dataset)
        batches = [dataset[i] for i in range(min(length, _limit(n)))]
        dataset.on_epoch_end()
        return batches, length

    dataset, warned = build()
    if not isinstance(dataset, keras.utils.PyDataset):
        return {"is_pydataset": 0.0}
    (first, len1), (second, len2) = epoch(dataset), epoch(dataset)
    twin_first, len3 = epoch(build()[0])
    flags = {"is_pydataset": True, "skipped_super": warned}
    return _pack_runs([first, second, twin_first], [len1, len2, len3], flags)


def probe_loader(make_loader, case: Case) -> dict:
    """Call the student's ``make_loader`` and iterate its DataLoader for two epochs, and a second loader's first."""
    import torch

    inputs = _copies(case)
    n = len(inputs["x"])

    def epoch(loader):
        batches = []
        for batch in loader:
            batches.append(batch)
            if len(batches) >= _limit(n):
                break
        return batches

    loader = make_loader(**inputs)
    if not isinstance(loader, torch.utils.data.DataLoader):
        return {"is_dataloader": 0.0}
    first, second = epoch(loader), epoch(loader)
    twin = make_loader(**_copies(case))
    return _pack_runs([first, second, epoch(twin)], [len(loader), len(loader), len(twin)], {"is_dataloader": True})


def probe_sampler(cls, case: Case) -> dict:
    """Build the student's batch sampler, list two epochs of index batches, and a twin's first epoch."""
    import torch

    inputs = _copies(case)
    n = len(inputs["labels"])

    def epoch(sampler):
        batches = []
        for batch in sampler:
            batches.append(np.asarray([int(i) for i in batch], dtype=np.float64))
            if len(batches) >= _limit(n):
                break
        return batches

    sampler = cls(**inputs)
    if not isinstance(sampler, torch.utils.data.Sampler):
        return {"is_sampler": 0.0}
    first, second = epoch(sampler), epoch(sampler)
    twin = cls(**_copies(case))
    runs = [first, second, epoch(twin)]
    values, shapes = _pad(runs, PAD)
    return {"length": np.array([len(sampler), len(sampler), len(twin)], dtype=float),
            "yielded": np.array([len(run) for run in runs], dtype=float), "batches": values, "sizes": shapes,
            "is_sampler": np.array(1.0)}


PROBES = ChapterProbes("06_data_pipelines", (
    Probe("ShuffledBatches", probe_pydataset, kind="class"),
    Probe("make_loader", probe_loader),
    Probe("BalancedBatchSampler", probe_sampler, kind="class"),
))
