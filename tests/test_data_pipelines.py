"""Chapter 06 checks: the reference answers pass on fresh seeds, realistic wrong answers fail with their diagnosis."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import course  # noqa: F401  (first: quiet TensorFlow)
from course.chapters import data_pipelines as dp
from course.questions import run_case

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

GRADER_SEEDS = [1, 2024, 777777]


def verdicts(question_name: str, obj, seed: int | None = None):
    question = dp.CHAPTER.question(question_name)
    cases = question.cases() if seed is None else question.cases(seed)
    return [(case.label, run_case(question, obj, case)) for case in cases]


def assert_all_pass(question_name: str, obj, seed: int | None = None):
    failed = [(label, v.message) for label, v in verdicts(question_name, obj, seed) if not v.passed]
    assert not failed, failed


def assert_diagnosed(question_name: str, obj, *words: str, unless: str = "\0"):
    """At least one case fails, and every failing case's message names the mistake (contains each word).

    ``unless``: a case label where the mistake cannot be told from another one (its message is not checked).
    """
    results = verdicts(question_name, obj)
    failures = [v.message for label, v in results if not v.passed and unless not in label]
    assert failures, f"no case of {question_name} fails this mutant"
    for message in failures:
        assert all(word.lower() in message.lower() for word in words), message


# --- reference answers ---------------------------------------------------------------------------------------------

class ShuffledBatches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size, seed, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def rows(self, index):
        return self.order[index * self.batch_size: (index + 1) * self.batch_size]

    def __getitem__(self, index):
        rows = self.rows(index)
        return self.x[rows], self.y[rows]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.x))


def make_loader(x, y, batch_size, seed):
    dataset = torch.utils.data.TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=False,
                                       generator=torch.Generator().manual_seed(seed))


class BalancedBatchSampler(torch.utils.data.Sampler):
    def __init__(self, labels, batch_size, seed):
        super().__init__()
        labels = np.asarray(labels)
        classes = np.unique(labels)
        self.members = [np.flatnonzero(labels == c) for c in classes]
        self.per_class = batch_size // len(classes)
        self.n_batches = len(labels) // batch_size
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return self.n_batches

    def stream(self, members):
        while True:
            yield from self.rng.permutation(members)

    def __iter__(self):
        streams = [self.stream(m) for m in self.members]
        for _ in range(self.n_batches):
            yield [int(i) for s in streams for i in itertools.islice(s, self.per_class)]


@pytest.mark.parametrize("seed", [None] + GRADER_SEEDS)
def test_references_pass(seed):
    assert_all_pass("ShuffledBatches", ShuffledBatches, seed)
    assert_all_pass("make_loader", make_loader, seed)
    assert_all_pass("BalancedBatchSampler", BalancedBatchSampler, seed)


def test_oracle_batch_sizes():
    assert dp.framework_batch_sizes(10, 4).tolist() == [4, 4, 2]
    assert dp.framework_batch_sizes(10, 4, drop_last=True).tolist() == [4, 4]


# --- PyDataset mutants ----------------------------------------------------------------------------------------------

class FloorLength(ShuffledBatches):
    def __len__(self):
        return len(self.x) // self.batch_size


class EmptyPadded(ShuffledBatches):
    """The seed's generator: fixed-size np.empty arrays, filled only as far as the batch goes."""

    def __getitem__(self, index):
        rows = self.rows(index)
        x = np.empty((self.batch_size,) + self.x.shape[1:], dtype=self.x.dtype)
        y = np.empty((self.batch_size,) + self.y.shape[1:], dtype=self.y.dtype)
        for i, row in enumerate(rows):
            x[i], y[i] = self.x[row], self.y[row]
        return x, y


class NoReshuffle(ShuffledBatches):
    def on_epoch_end(self):
        pass


class ShuffleOnlyAtEpochEnd(ShuffledBatches):
    def __init__(self, x, y, batch_size, seed, **kwargs):
        super().__init__(x, y, batch_size, seed, **kwargs)
        self.order = np.arange(len(x))


class NoSuper(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size, seed):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.order = np.random.default_rng(seed).permutation(len(x))

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size: (index + 1) * self.batch_size]
        return self.x[rows], self.y[rows]


class LabelsNotShuffled(ShuffledBatches):
    def __getitem__(self, index):
        return self.x[self.rows(index)], self.y[index * self.batch_size: (index + 1) * self.batch_size]


class BatchOrderOnly(ShuffledBatches):
    def __init__(self, x, y, batch_size, seed, **kwargs):
        super().__init__(x, y, batch_size, seed, **kwargs)
        self.on_epoch_end()

    def on_epoch_end(self):
        batches = self.rng.permutation(len(self))
        self.order = np.concatenate([np.arange(len(self.x))[b * self.batch_size: (b + 1) * self.batch_size]
                                     for b in batches])


class WithReplacement(ShuffledBatches):
    def on_epoch_end(self):
        self.order = self.rng.integers(0, len(self.x), len(self.x))

    def __init__(self, x, y, batch_size, seed, **kwargs):
        super().__init__(x, y, batch_size, seed, **kwargs)
        self.on_epoch_end()


class GlobalRandom(ShuffledBatches):
    def __init__(self, x, y, batch_size, seed, **kwargs):
        super().__init__(x, y, batch_size, seed, **kwargs)
        self.order = np.random.permutation(len(x))

    def on_epoch_end(self):
        self.order = np.random.permutation(len(self.x))


class NotAPyDataset:
    """A plain class with the right methods, but fit() would not treat it as a PyDataset."""

    def __init__(self, x, y, batch_size, seed):
        self.inner = ShuffledBatches(x, y, batch_size, seed)

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        return self.inner[index]


@pytest.mark.parametrize("mutant, words", [
    (FloorLength, ["rounds down", "partial batch"]),
    (EmptyPadded, ["padded", "np.empty"]),
    (NoReshuffle, ["on_epoch_end", "same order"]),
    (ShuffleOnlyAtEpochEnd, ["original order", "__init__"]),
    (NoSuper, ["super().__init__"]),
    (LabelsNotShuffled, ["labels", "same indices"]),
    (BatchOrderOnly, ["order of the batches"]),
    (WithReplacement, ["never appear", "permutation"]),
    (GlobalRandom, ["same seed", "seeded with"]),
    (NotAPyDataset, ["PyDataset"]),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_pydataset_mutants_are_diagnosed(mutant, words):
    # With a single batch, shuffling the batch order is the same as not shuffling: that case may say either.
    assert_diagnosed("ShuffledBatches", mutant, *words, unless="single short batch")


def test_empty_padded_is_the_only_failure_where_a_batch_is_short():
    """The np.empty mutant passes on the 'no remainder' case: the bug only shows in a partial last batch."""
    results = dict(verdicts("ShuffledBatches", EmptyPadded))
    assert [label for label, v in results.items() if v.passed] == [
        label for label in results if "no remainder" in label or "batches of 1" in label]


# --- DataLoader mutants ---------------------------------------------------------------------------------------------

def loader_drop_last(x, y, batch_size, seed):
    loader = make_loader(x, y, batch_size, seed)
    return torch.utils.data.DataLoader(loader.dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                       generator=torch.Generator().manual_seed(seed))


def loader_unshuffled(x, y, batch_size, seed):
    return torch.utils.data.DataLoader(make_loader(x, y, batch_size, seed).dataset, batch_size=batch_size)


def loader_without_generator(x, y, batch_size, seed):
    return torch.utils.data.DataLoader(make_loader(x, y, batch_size, seed).dataset, batch_size=batch_size,
                                       shuffle=True)


def loader_fixed_permutation(x, y, batch_size, seed):
    order = np.random.default_rng(seed).permutation(len(x)).tolist()
    dataset = torch.utils.data.Subset(make_loader(x, y, batch_size, seed).dataset, order)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)


def loader_column_labels(x, y, batch_size, seed):
    return make_loader(x, y.reshape(len(y), -1), batch_size, seed)


def loader_returns_dataset(x, y, batch_size, seed):
    return make_loader(x, y, batch_size, seed).dataset


@pytest.mark.parametrize("mutant, words", [
    (loader_drop_last, ["drop_last=False"]),
    (loader_unshuffled, ["original order", "shuffle=True"]),
    (loader_without_generator, ["same seed", "generator"]),
    (loader_fixed_permutation, ["same order", "each epoch"]),
    (loader_returns_dataset, ["DataLoader"]),
], ids=lambda v: v.__name__ if callable(v) else None)
def test_loader_mutants_are_diagnosed(mutant, words):
    assert_diagnosed("make_loader", mutant, *words)


def test_column_labels_are_diagnosed_where_labels_are_1d():
    results = verdicts("make_loader", loader_column_labels)
    one_d = [v for label, v in results if "two-column" not in label]
    assert one_d and all(not v.passed and "keep integer labels 1-D" in v.message for v in one_d)


# --- sampler mutants ------------------------------------------------------------------------------------------------

class WithReplacementSampler(BalancedBatchSampler):
    def __iter__(self):
        for _ in range(self.n_batches):
            yield [int(i) for m in self.members for i in self.rng.choice(m, self.per_class)]


class UnbalancedSampler(BalancedBatchSampler):
    def __iter__(self):
        order = self.rng.permutation(np.concatenate(self.members))
        size = self.per_class * len(self.members)
        for b in range(self.n_batches):
            yield order[b * size: (b + 1) * size].tolist()


class FixedBatchesSampler(BalancedBatchSampler):
    def __init__(self, labels, batch_size, seed):
        super().__init__(labels, batch_size, seed)
        self.batches = list(super().__iter__())

    def __iter__(self):
        return iter(self.batches)


class GlobalRandomSampler(BalancedBatchSampler):
    def stream(self, members):
        while True:
            yield from np.random.permutation(members)


class CeilLengthSampler(BalancedBatchSampler):
    def __init__(self, labels, batch_size, seed):
        super().__init__(labels, batch_size, seed)
        self.n_batches = math.ceil(len(labels) / batch_size)


class PositionsSampler(BalancedBatchSampler):
    """Permutes positions 0..n_c-1 of each class and yields them as they are, not the members' dataset indices."""

    def stream(self, members):
        while True:
            yield from self.rng.permutation(len(members))


class RangeOfClassesSampler(BalancedBatchSampler):
    """Takes the classes as 0..max(labels): with labels 2, 5, 9 most classes are empty and its stream never yields."""

    def __init__(self, labels, batch_size, seed):
        super().__init__(labels, batch_size, seed)
        labels = np.asarray(labels)
        self.members = [np.flatnonzero(labels == c) for c in range(labels.max() + 1)]
        self.per_class = max(batch_size // len(self.members), 1)


class NotASampler:
    def __init__(self, labels, batch_size, seed):
        self.inner = BalancedBatchSampler(labels, batch_size, seed)

    def __len__(self):
        return len(self.inner)

    def __iter__(self):
        return iter(self.inner)


@pytest.mark.parametrize("mutant, words", [
    (WithReplacementSampler, ["without replacement"]),
    (UnbalancedSampler, ["of each"]),
    (FixedBatchesSampler, ["repeats the batches", "__iter__"]),
    (GlobalRandomSampler, ["same seed"]),
    (CeilLengthSampler, ["n // batch_size"]),
    (NotASampler, ["Sampler"]),
    (PositionsSampler, ["positions within each class", "not dataset indices"]),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_sampler_mutants_are_diagnosed(mutant, words):
    assert_diagnosed("BalancedBatchSampler", mutant, *words)


def test_probes_refuse_a_stub():
    class Stub(keras.utils.PyDataset):
        def __init__(self, x, y, batch_size, seed):
            raise NotImplementedError

    assert all(v.message.startswith("not attempted") for _, v in verdicts("ShuffledBatches", Stub))


def test_a_hanging_sampler_is_stopped_and_its_cause_named(capsys, monkeypatch):
    """The self-check prints each case as it is judged, stops a case that never ends and says what usually hangs."""
    from course import check

    monkeypatch.setattr(check, "CASE_SECONDS", 2.0)
    checker = check.Checker(dp.ID)
    checker("BalancedBatchSampler", RangeOfClassesSampler)
    lines = capsys.readouterr().out.splitlines()
    timed_out = [line for line in lines if "stopped after 2 s" in line]
    assert timed_out and all("labels 2, 5 and 9" in line or "10 classes" in line for line in timed_out)
    assert all("np.unique(labels)" in line for line in timed_out)
    assert lines[-1].startswith("BalancedBatchSampler:")
    assert len(lines) == len(checker.reports["BalancedBatchSampler"].results) + 1
