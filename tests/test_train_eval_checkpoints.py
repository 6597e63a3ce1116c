"""Chapter 07: the checks pass the reference answers and fail realistic wrong ones, naming the mistake.

The mutants are written the way a student would write them (not with the judge's own switches), one mistake each.
"""
from __future__ import annotations

import copy
import os
from functools import partial

import pytest

from course.chapters import get_chapter
from course.chapters import train_eval_checkpoints as tec
from mutants import assert_named, check_failures

CHAPTER = get_chapter(tec.ID)
failures = partial(check_failures, CHAPTER)


# --- EarlyStopping ------------------------------------------------------------------------------------------------

def early_stopping(mistake: str = ""):
    """A student-style EarlyStopping; `mistake` switches on one usual error."""

    class EarlyStopping:
        def __init__(self, patience=0, min_delta=0.0, mode="min", restore_best_weights=False):
            self.patience = patience
            self.min_delta = min_delta if mistake == "no abs" else abs(min_delta)
            self.mode = "min" if mistake == "ignores mode" else mode
            self.restore_best_weights = restore_best_weights
            self.best = self.previous = self.best_state = None
            self.best_epoch, self.wait, self.epoch, self.stopped = 0, 0, -1, False

        def _improves(self, value):
            reference = self.previous if mistake == "previous" else self.best
            if reference is None:
                return True
            delta = -self.min_delta if mistake == "delta sign" else self.min_delta
            if self.mode == "min":
                return value <= reference - delta if mistake == "ties" else value < reference - delta
            return value >= reference + delta if mistake == "ties" else value > reference + delta

        def step(self, value, model):
            self.epoch += 1
            improved = self._improves(value)
            self.previous = value
            if improved:
                self.best = value
                self.best_epoch = self.epoch + 1 if mistake == "one based" else self.epoch
                if mistake != "no reset":
                    self.wait = 0
                if self.restore_best_weights or mistake == "always restore":
                    state = model.state_dict()
                    self.best_state = state if mistake == "alias" else copy.deepcopy(state)
                return False
            self.wait += 1
            limit = self.patience + 1 if mistake == "late" else self.patience
            self.stopped = self.wait >= limit
            return self.stopped

        def restore(self, model):
            if mistake == "keras 2" and not self.stopped:
                return
            if (self.restore_best_weights or mistake == "always restore") and self.best_state is not None:
                model.load_state_dict(self.best_state)

    return EarlyStopping


def test_early_stopping_reference_passes():
    assert failures("EarlyStopping", early_stopping()) == []


def test_the_judges_own_reference_passes():
    assert failures("EarlyStopping", tec.ReferenceEarlyStopping) == []


@pytest.mark.parametrize("mistake, phrase, every", [
    ("late", "one epoch late", True),
    # When training runs out of epochs both look alike; that diagnosis names both fixes.
    ("alias", "deepcopy", True),
    ("keras 2", "when training ends", True),
    ("previous", "compared each value with the previous", True),
    ("no reset", "wait was not reset", True),
    ("delta sign", "min_delta has the wrong sign", True),
    ("ties", "a tie with the best", True),
    ("ignores mode", "mode='max' was ignored", True),
    # With a negative min_delta this looks like the wrong sign; that diagnosis names both.
    ("no abs", "abs(min_delta)", True),
    ("one based", "best_epoch counts from 1", True),
    ("always restore", "although restore_best_weights=False", True),
])
def test_early_stopping_mutants_fail_with_their_diagnosis(mistake, phrase, every):
    assert_named(failures("EarlyStopping", early_stopping(mistake)), phrase, every)


def test_early_stopping_stub_is_not_attempted():
    class EarlyStopping:
        def __init__(self, patience=0, min_delta=0.0, mode="min", restore_best_weights=False):
            raise NotImplementedError

    assert all(message.startswith("not attempted") for message in failures("EarlyStopping", EarlyStopping))


def test_keras_is_the_oracle_of_early_stopping():
    """The judge's rules agree with Keras' callback on every visible case (and the cases make Keras stop)."""
    import numpy as np

    stops = 0
    for case in CHAPTER.question("EarlyStopping").cases():
        keras_result = tec.keras_early_stopping(case.inputs)
        mine = tec._early_stopping_vector(tec.probes.probe_early_stopping(tec.ReferenceEarlyStopping, case))[:3]
        assert np.array_equal(keras_result, mine), case.label
        stops += keras_result[0] >= 0
    assert 0 < stops < len(CHAPTER.question("EarlyStopping").cases())


# --- train_resumable ----------------------------------------------------------------------------------------------

def train_resumable(mistake: str = ""):
    """A student-style resumable training function; `mistake` switches on one usual error."""
    import torch

    def train_resumable(model, optimizer, scheduler, x, y, epochs, path, batch_size, stop_after=None):
        start = 0
        if os.path.exists(path) and mistake != "no resume":
            state = torch.load(path, weights_only=True)
            model.load_state_dict(state["model"])
            if mistake != "no optimizer":
                optimizer.load_state_dict(state["optimizer"])
            if mistake != "no scheduler":
                scheduler.load_state_dict(state["scheduler"])
            if mistake != "no rng":
                torch.set_rng_state(state["rng"])
            start = state["epoch"]
        losses = []
        for epoch in range(start, epochs):
            if stop_after is not None and epoch - start == stop_after:
                break
            if mistake != "no train":
                model.train()
            for idx in torch.randperm(len(x)).split(batch_size):
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                optimizer.step()
                if mistake == "per batch":
                    scheduler.step()
                losses.append(loss.item())
            def snapshot():  # after scheduler.step(): the optimizer's state_dict holds the learning rate too
                return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
                        "epoch": epoch if mistake == "same epoch" else epoch + 1}

            if mistake == "save first":
                torch.save(snapshot(), path)
            if mistake != "per batch":
                scheduler.step()
            if mistake != "save first":
                torch.save(snapshot(), path)
        return losses

    return train_resumable


def test_train_resumable_reference_passes():
    assert failures("train_resumable", train_resumable()) == []


@pytest.mark.parametrize("mistake, phrase, every", [
    ("no optimizer", "optimizer state was not saved", True),
    # SGD's momentum buffers equal Adam's moments in role; both cases use a stateful optimizer.
    ("no scheduler", "scheduler state was not saved", False),
    ("no rng", "random state was not saved", True),
    ("same epoch", "repeated the last saved epoch", True),
    ("save first", "written before scheduler.step()", False),
    ("no resume", "did not resume", True),
    ("no train", "not put in training mode", True),
    ("per batch", "stepped after every batch", True),
])
def test_train_resumable_mutants_fail_with_their_diagnosis(mistake, phrase, every):
    assert_named(failures("train_resumable", train_resumable(mistake)), phrase, every)


def test_train_resumable_stub_is_not_attempted():
    def stub(model, optimizer, scheduler, x, y, epochs, path, batch_size, stop_after=None):
        raise NotImplementedError

    assert all(message.startswith("not attempted") for message in failures("train_resumable", stub))


def test_train_resumable_leaves_no_files(tmp_path, monkeypatch):
    """The probe writes its checkpoints in a temporary folder under the working directory and removes it."""
    monkeypatch.chdir(tmp_path)
    case = CHAPTER.question("train_resumable").cases()[0]
    tec.probes.probe_train_resumable(train_resumable(), case)
    assert list(tmp_path.iterdir()) == []


# --- evaluate -----------------------------------------------------------------------------------------------------

def evaluate(mistake: str = ""):
    """A student-style evaluate; `mistake` switches on one usual error."""
    import contextlib

    import torch

    def evaluate(model, x):
        was_training = model.training
        if mistake != "no eval":
            model.eval()
        with contextlib.nullcontext() if mistake == "no no_grad" else torch.no_grad():
            out = model(x)
        if mistake == "always train":
            model.train()
        elif mistake == "attribute":
            model.training = was_training
        elif mistake != "left in eval":
            model.train(was_training)
        return out

    return evaluate


def test_evaluate_reference_passes():
    assert failures("evaluate", evaluate()) == []


@pytest.mark.parametrize("mistake, phrase, every", [
    # A model that arrives in eval mode hides a forgotten eval() and a missing restore; those cases pass.
    ("no eval", "not switched to eval mode", True),
    ("no no_grad", "carries a graph", True),
    ("always train", "although it came in eval mode", True),
    ("attribute", "only the top module's mode", True),
    ("left in eval", "left in eval mode", True),
])
def test_evaluate_mutants_fail_with_their_diagnosis(mistake, phrase, every):
    assert_named(failures("evaluate", evaluate(mistake)), phrase, every)


def test_cases_come_from_the_seed():
    """The grader's fresh seeds give other inputs: nothing is tied to the visible seed."""
    for question in CHAPTER.questions:
        first, second = question.cases(1), question.cases(2)
        key = "values" if "values" in first[0].inputs else "x"
        assert first[0].inputs[key].tolist() != second[0].inputs[key].tolist()
