"""Chapter 06: data pipelines (Keras ``PyDataset``, torch ``Dataset``/``DataLoader``/``Sampler``).

What the three questions share: a pipeline is judged by *what it yields*, epoch by epoch. The probes run the
student's object for two epochs (plus one epoch of a second object built with the same seed) and return the batches
as padded arrays; the judges rebuild the batches and check, in this order, what a reader would check by hand:
the number of batches, the shape of every batch, that every row is a real sample, coverage (each sample exactly once
per epoch), that labels travel with their samples, that the order is shuffled, reshuffled between epochs and
reproducible from the seed.

The case inputs make this checkable: every row of ``x`` is filled with its sample id plus one (so a row of zeros or
of uninitialised memory is never a valid sample), and the targets are a permutation, so a label that does not belong
to its sample is always visible.

Oracles are the frameworks' own batching: the batch sizes an epoch must have come from
``torch.utils.data.BatchSampler`` and from ``tf.data.Dataset.range(n).batch(b)``, checked to agree.
"""
from __future__ import annotations

import math
import warnings
from functools import cache

import numpy as np

from ..questions import Case, Chapter, Plain, Verdict, compare, weighted
from ..probes.data_pipelines import PROBES

ID = "06_data_pipelines"
#: The probes run two epochs of the student's object plus the first epoch of a twin built with the same seed.
RUNS = ("epoch 1", "epoch 2", "epoch 1 of a second object built with the same seed")


# --- oracles: the frameworks' own batching -----------------------------------------------------------------------

def framework_batch_sizes(n: int, batch_size: int, drop_last: bool = False) -> np.ndarray:
    """Sizes of the batches of one epoch over ``n`` samples, by torch's BatchSampler and by tf.data, checked to agree."""
    import tensorflow as tf
    import torch

    sampler = torch.utils.data.BatchSampler(range(n), batch_size, drop_last=drop_last)
    by_torch = np.array([len(batch) for batch in sampler])
    dataset = tf.data.Dataset.range(n).batch(batch_size, drop_remainder=drop_last)
    by_tf = np.array([int(batch.shape[0]) for batch in dataset])
    if by_torch.shape != by_tf.shape or not np.array_equal(by_torch, by_tf):
        raise AssertionError("torch and tf.data disagree on batch sizes: the oracle itself is broken")
    return by_torch


# --- cases ---------------------------------------------------------------------------------------------------------

def id_rows(n: int, feature_shape: tuple[int, ...]) -> np.ndarray:
    """Features whose every entry is the sample id plus one: a batch shows which samples it holds."""
    ids = np.arange(1, n + 1, dtype=np.float32)
    return np.broadcast_to(ids.reshape((n,) + (1,) * len(feature_shape)), (n,) + feature_shape).copy()


def batch_cases(rng: np.random.Generator) -> list[Case]:
    """Ordinary and extreme epochs: a remainder of one, no remainder, one short batch, batches of one, images."""
    def case(label, n, batch_size, feature_shape=(3,), two_targets=False):
        perm = rng.permutation(n)  # targets: a permutation, so a misplaced label is always visible
        y = np.stack([perm, perm + n], axis=1).astype(np.float32) if two_targets else perm.astype(np.int64)
        return Case(label, {"x": id_rows(n, feature_shape), "y": y, "batch_size": batch_size,
                            "seed": int(rng.integers(0, 2**31 - 1))})

    b = int(rng.integers(6, 11))
    k = int(rng.integers(4, 7))
    short = int(rng.integers(10, 15))
    return [
        case(f"{b * k + 3} samples in batches of {b} (a short last batch)", b * k + 3, b),
        case(f"{b * k + 1} samples in batches of {b} (the last batch holds one sample)", b * k + 1, b),
        case(f"{b * k} samples in batches of {b} (no remainder)", b * k, b),
        case(f"{short} samples, batch_size 32 (a single short batch)", short, 32),
        case("12 samples in batches of 1", 12, 1),
        case(f"images (n, 4, 4, 1) and two-column targets, batches of {b}", b * 3 + 2, b, (4, 4, 1), True),
    ]


def sampler_cases(rng: np.random.Generator) -> list[Case]:
    """Imbalanced labels: mild and severe imbalance, a class of one sample, labels that are not 0..k-1."""
    def case(label, counts, batch_size, values=None):
        values = np.arange(len(counts)) if values is None else np.asarray(values)
        labels = rng.permutation(np.repeat(values, counts)).astype(np.int64)  # classes interleaved, not grouped
        return Case(label, {"labels": labels, "batch_size": batch_size, "seed": int(rng.integers(0, 2**31 - 1))})

    big, mid, small = int(rng.integers(50, 70)), int(rng.integers(20, 30)), int(rng.integers(5, 9))
    tiny = int(rng.integers(3, 6))
    ten = np.concatenate([rng.integers(30, 40, 5), rng.integers(3, 8, 5)])
    return [
        case(f"3 classes of {big}/{mid}/{small} samples, batches of 6", [big, mid, small], 6),
        case(f"2 classes of {big + 40}/{tiny} samples (severe imbalance), batches of 4", [big + 40, tiny], 4),
        case(f"labels 2, 5 and 9 (not 0..k-1), {mid}/{small}/{mid} samples, batches of 3",
             [mid, small, mid], 3, values=[2, 5, 9]),
        case(f"a class with a single sample ({big}/{mid}/1), batches of 6", [big, mid, 1], 6),
        case("10 classes, five of them rare, batches of 20", ten, 20),
    ]


# --- probes (the only code that runs next to the student's object) -------------------------------------------------



















# --- rebuilding what the probe saw ---------------------------------------------------------------------------------

def _unpad(values: np.ndarray, shapes: np.ndarray, run: int, count: int) -> list[np.ndarray]:
    batches = []
    for j in range(count):
        shape = tuple(int(s) for s in shapes[run, j] if s >= 0)
        size = math.prod(shape)
        batches.append(values[run, j, :size].reshape(shape))
    return batches


def _row_ids(xb: np.ndarray, n: int) -> np.ndarray | None:
    """The sample id of every row of a batch of ``id_rows`` features, or None if a row is no sample at all."""
    rows = xb.reshape(len(xb), -1)
    first = rows[:, :1]
    ok = np.isfinite(rows).all() and (rows == first).all()
    ids = first[:, 0] - 1
    if not ok or not np.all((ids == np.round(ids)) & (ids >= 0) & (ids < n)):
        return None
    return ids.astype(int)


class _Fail(Exception):
    """Raised inside a judge to return the first failing verdict."""


def _fail(message: str) -> None:
    raise _Fail(message)


def _check_order(orders: list[np.ndarray], n: int, batch_size: int, sizes: np.ndarray, advice: dict) -> None:
    """Shuffled, not just by batch, reshuffled for epoch 2, reproducible from the seed."""
    first, second, twin = orders
    if np.array_equal(first, np.arange(n)):
        _fail(advice["unshuffled"])
    if batch_size > 1 and _only_batches_moved(first, sizes, batch_size):
        _fail("only the order of the batches is shuffled, each batch still holds consecutive samples: "
              "shuffle the sample indices, then cut them into batches")
    if np.array_equal(first, second):
        _fail(advice["same_every_epoch"])
    if not np.array_equal(first, twin):
        _fail(advice["seed"])


def _only_batches_moved(order: np.ndarray, sizes: np.ndarray, batch_size: int) -> bool:
    start = 0
    for size in sizes:
        block = order[start: start + size]
        if block[0] % batch_size or not np.array_equal(block, np.arange(block[0], block[0] + size)):
            return False
        start += size
    return True


# --- judge of questions 1 and 2: batches of (x, y) -----------------------------------------------------------------

KERAS_ADVICE = {
    "unshuffled": "epoch 1 comes in the original order: shuffle in __init__ too (fit calls on_epoch_end only "
                  "after an epoch)",
    "same_every_epoch": "epoch 2 has the same order as epoch 1: reshuffle the indices in on_epoch_end",
    "seed": "two datasets built with the same seed give different orders: the permutations are not drawn from "
            "a generator seeded with `seed` (the global np.random?)",
    "ceil": "len() rounds down, so the last partial batch is never read",
    "padded": "the last batch is padded to batch_size (rows of np.empty garbage?): size the arrays with the "
              "number of indices in this batch",
}
TORCH_ADVICE = {
    "unshuffled": "the samples come in the original order: DataLoader(..., shuffle=True)",
    "same_every_epoch": "epoch 2 has the same order as epoch 1: let DataLoader(shuffle=True) draw a new "
                        "permutation each epoch instead of fixing one",
    "seed": "two loaders made with the same seed give different orders: the DataLoader's shuffling does not "
            "draw from a generator seeded with `seed`",
    "ceil": "the last partial batch is dropped: keep drop_last=False",
    "padded": "the last batch is padded to batch_size: let the DataLoader make a shorter last batch",
}


def _judge_xy(case: Case, outputs: Plain, advice: dict) -> Verdict:
    x, y, b = case.inputs["x"], case.inputs["y"], case.inputs["batch_size"]
    n = len(x)
    sizes = framework_batch_sizes(n, b)
    floor_sizes = framework_batch_sizes(n, b, drop_last=True)
    length = outputs["length"]
    verdict = compare(length, np.full(3, len(sizes), float), what="len()",
                      mistakes={advice["ceil"]: np.full(3, len(floor_sizes), float),
                                "len() counts samples, not batches: ceil(n / batch_size)": np.full(3, n, float)})
    if not verdict.passed:
        return verdict
    yielded = outputs["yielded"]
    if not np.array_equal(yielded, length):
        return Verdict(False, f"len() says {int(length[0])} batches but {int(yielded.min())} were produced")
    try:
        orders = [_check_run(outputs, run, x, y, b, sizes, advice) for run in range(len(RUNS))]
        _check_order(orders, n, b, sizes, advice)
    except _Fail as failure:
        return Verdict(False, str(failure))
    return Verdict(True, "")


def _check_run(outputs: Plain, run: int, x: np.ndarray, y: np.ndarray, batch_size: int, sizes: np.ndarray,
               advice: dict) -> np.ndarray:
    """Shapes, real rows, aligned labels and coverage of one epoch; returns its order of sample ids."""
    n, count, where = len(x), len(sizes), RUNS[run]
    xs = _unpad(outputs["x_values"], outputs["x_shapes"], run, count)
    ys = _unpad(outputs["y_values"], outputs["y_shapes"], run, count)
    for j, (xb, yb, size) in enumerate(zip(xs, ys, sizes)):
        expected_x, expected_y = (size,) + x.shape[1:], (size,) + y.shape[1:]
        if xb.shape != expected_x:
            if j == count - 1 and xb.shape == (batch_size,) + x.shape[1:]:
                _fail(advice["padded"])
            _fail(f"{where}, batch {j}: x has shape {xb.shape}, expected {expected_x}")
        if yb.shape != expected_y:
            if yb.shape == expected_y + (1,):
                _fail(f"{where}, batch {j}: y has shape {yb.shape}, expected {expected_y}: keep integer labels "
                      "1-D, as the losses expect")
            _fail(f"{where}, batch {j}: y has shape {yb.shape}, expected {expected_y}")
    ids = [_row_ids(xb, n) for xb in xs]
    if any(batch_ids is None for batch_ids in ids):
        _fail(f"{where}: a row of x is no sample of the input (uninitialised np.empty memory, or modified rows)")
    order = np.concatenate(ids)
    if not np.array_equal(np.sort(order), np.arange(n)):
        missing = n - len(np.unique(order))
        _fail(f"{where}: {missing} samples never appear and others repeat: draw a permutation of the indices "
              "(no sampling with replacement), so each sample comes exactly once per epoch")
    y_got = np.concatenate(ys)
    if not np.array_equal(y_got, y[order].astype(np.float64)):
        if np.array_equal(y_got, y.astype(np.float64)):
            _fail(f"{where}: the labels stay in the original order while x is shuffled: index x and y with the "
                  "same indices")
        _fail(f"{where}: labels do not belong to the samples they come with: index x and y with the same indices")
    return order


def judge_pydataset(case: Case, outputs: Plain) -> Verdict:
    if not outputs["is_pydataset"]:
        return Verdict(False, "not a keras.utils.PyDataset: subclass it, so fit() knows how to read it")
    if outputs["skipped_super"]:
        return Verdict(False, "Keras warns that __init__ never called super().__init__(**kwargs): call it, it sets "
                              "workers, use_multiprocessing and max_queue_size")
    return _judge_xy(case, outputs, KERAS_ADVICE)


def judge_loader(case: Case, outputs: Plain) -> Verdict:
    if not outputs["is_dataloader"]:
        return Verdict(False, "make_loader must return a torch.utils.data.DataLoader (wrap the Dataset in one)")
    return _judge_xy(case, outputs, TORCH_ADVICE)


# --- judge of question 3: balanced index batches ------------------------------------------------------------------

def judge_sampler(case: Case, outputs: Plain) -> Verdict:
    if not outputs["is_sampler"]:
        return Verdict(False, "not a torch.utils.data.Sampler: subclass it, so DataLoader(batch_sampler=...) accepts "
                              "it for what it is")
    labels, b = case.inputs["labels"], case.inputs["batch_size"]
    n = len(labels)
    count = len(framework_batch_sizes(n, b, drop_last=True))
    verdict = compare(outputs["length"], np.full(3, count, float), what="len()", mistakes={
        "len() counts a partial last batch: an epoch is n // batch_size full batches":
            np.full(3, math.ceil(n / b), float),
        "len() counts samples, not batches: n // batch_size": np.full(3, n, float)})
    if not verdict.passed:
        return verdict
    if not np.array_equal(outputs["yielded"], outputs["length"]):
        return Verdict(False, f"len() says {count} batches but {int(outputs['yielded'].min())} were produced")
    try:
        epochs = [_check_sampler_run(outputs, run, labels, b, count) for run in range(len(RUNS))]
    except _Fail as failure:
        return Verdict(False, str(failure))
    if np.array_equal(epochs[0], epochs[1]):
        return Verdict(False, "epoch 2 repeats the batches of epoch 1: draw new permutations in __iter__, "
                              "not once in __init__")
    if not np.array_equal(epochs[0], epochs[2]):
        return Verdict(False, "two samplers built with the same seed give different batches: keep a "
                              "np.random.default_rng(seed) (or torch.Generator) in the sampler")
    return Verdict(True, "")


def _positions_within_classes(batches: list[np.ndarray], labels: np.ndarray, classes: np.ndarray,
                              per_class: int) -> bool:
    """Whether every batch reads as ``per_class`` positions within each class in turn (what a sampler yields when it
    permutes ``range(len(members))`` and forgets to map the positions back to the members' dataset indices)."""
    sizes = np.array([(labels == c).sum() for c in classes])
    for batch in batches:
        if batch.size != per_class * len(classes):
            return False
        chunks = batch.reshape(len(classes), per_class)
        if not np.all(chunks < sizes[:, None]):
            return False
    return bool(batches)


def _check_sampler_run(outputs: Plain, run: int, labels: np.ndarray, b: int, count: int) -> np.ndarray:
    """Full, valid, class-balanced batches that use every class's samples evenly; returns the epoch's indices."""
    where, n = RUNS[run], len(labels)
    classes = np.unique(labels)
    per_class = b // len(classes)
    batches = _unpad(outputs["batches"], outputs["sizes"], run, count)
    for j, batch in enumerate(batches):
        if batch.shape != (b,):
            _fail(f"{where}, batch {j} holds {batch.size} indices, expected batch_size={b}")
        if not np.all((batch >= 0) & (batch < n) & (batch == np.round(batch))):
            _fail(f"{where}, batch {j}: {batch.max():.0f} is not an index of the {n} labels")
        counts = np.array([(labels[batch.astype(int)] == c).sum() for c in classes])
        if not np.all(counts == per_class) and _positions_within_classes(batches, labels, classes, per_class):
            _fail(f"{where}, batch {j} holds positions within each class (0 to n_c - 1), not dataset indices: they "
                  "were never mapped back to the class's own samples")
        if not np.all(counts == per_class):
            _fail(f"{where}, batch {j} holds {counts.tolist()} samples of classes {classes.tolist()}, expected "
                  f"{per_class} of each")
    indices = np.concatenate(batches).astype(int) if batches else np.zeros(0, int)
    for c in classes:
        members = np.flatnonzero(labels == c)
        uses = np.bincount(indices, minlength=n)[members]
        if uses.max() - uses.min() > 1:
            _fail(f"{where}: in class {c}, some samples are used {uses.max()} times and others {uses.min()}: draw "
                  "without replacement, cycling through a fresh permutation of each class")
    return indices


# --- trivial answers: a case one of them passes earns nothing alone (course.questions.earning_cases) ------------

@cache
def trivial_pipelines() -> dict:
    """Pipelines that hand back their input unchanged: in its order, cut into batches (all three questions)."""
    import keras
    import torch

    class InOrder(keras.utils.PyDataset):
        def __init__(self, x, y, batch_size, seed, **kwargs):
            super().__init__(**kwargs)
            self.x, self.y, self.batch_size = x, y, batch_size

        def __len__(self):
            return math.ceil(len(self.x) / self.batch_size)

        def __getitem__(self, index):
            rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
            return self.x[rows], self.y[rows]

    def loader_in_order(x, y, batch_size, seed):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)),
                                           batch_size=batch_size)

    class IndicesInOrder(torch.utils.data.Sampler):
        def __init__(self, labels, batch_size, seed):
            self.n, self.batch_size = len(labels), batch_size

        def __len__(self):
            return self.n // self.batch_size

        def __iter__(self):
            return iter([list(range(i * self.batch_size, (i + 1) * self.batch_size)) for i in range(len(self))])

    return {"ShuffledBatches": {"the input in its order": InOrder},
            "make_loader": {"the input in its order": loader_in_order},
            "BalancedBatchSampler": {"the indices in their order": IndicesInOrder}}


#: (part of a case label, weight, what the case tests).
BATCH_WEIGHTS = [
    ("short last batch", 2, "keeping the last partial batch (ceil(n / batch_size))"),
    ("last batch holds one sample", 2, "keeping a last batch of one sample"),
    ("images", 1, "batches of multi-dimensional samples and targets"),
]
SAMPLER_WEIGHTS = [
    ("not 0..k-1", 3, "classes that are the distinct labels, not 0..k-1"),
    ("single sample", 2, "a class that must repeat within an epoch"),
    ("severe imbalance", 2, "drawing without replacement, a fresh permutation per pass"),
]

CHAPTER = Chapter(
    id=ID,
    title="Data pipelines: PyDataset, tf.data and DataLoader",
    questions=(
        PROBES.question(
            "ShuffledBatches", 4, weighted(batch_cases, BATCH_WEIGHTS, "one epoch of shuffled batches"),
            judge_pydataset, trivial=lambda: trivial_pipelines()["ShuffledBatches"],
            hint="Mind the last partial batch, when fit calls the epoch hooks (epoch 1 must be shuffled too), x "
                 "and y staying aligned, and a generator seeded with `seed` (sections \"The last batch of the "
                 "popular generator template\" and \"When `fit` calls the epoch hooks\")."),
        PROBES.question(
            "make_loader", 3, weighted(batch_cases, BATCH_WEIGHTS, "one epoch of shuffled batches"),
            judge_loader, trivial=lambda: trivial_pipelines()["make_loader"],
            hint="DataLoader does the batching and the shuffling; give it a dataset of the dtypes the losses "
                 "expect, keep the last partial batch, and seed it so that two loaders agree (section \"`tf.data` "
                 "and `DataLoader` side by side\")."),
        PROBES.question(
            "BalancedBatchSampler", 4, weighted(sampler_cases, SAMPLER_WEIGHTS, "class-balanced batches"),
            judge_sampler, trivial=lambda: trivial_pipelines()["BalancedBatchSampler"],
            hint="Balanced means the same number of indices of every class in every batch: the classes are the "
                 "distinct labels, small classes repeat, and within a class every sample comes once before any "
                 "comes twice (section \"Class imbalance, part 2: resampling versus class weights\").",
            hang_cause="an endless permutation stream over a class with no members (classes taken as "
                       "range(max(labels) + 1) or range(n_classes) when the labels are not 0..k-1): take the "
                       "classes from np.unique(labels)"),
    ),
)
