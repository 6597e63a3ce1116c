"""Chapter 05: the checks pass the reference answers and fail realistic wrong ones, naming the mistake."""
from __future__ import annotations

import warnings
from functools import partial

import pytest

from course.chapters import get_chapter
from course.chapters import training_loops as tl
from mutants import assert_named, check_failures

CHAPTER = get_chapter(tl.ID)
failures = partial(check_failures, CHAPTER)


# --- WeightedModel: the reference and its mutants -----------------------------------------------------------------

def weighted_models() -> dict:
    """The reference train_step and one class per usual mistake (built here: they need Keras)."""
    import keras
    import tensorflow as tf

    def update_metrics(model, loss, x, y, y_pred, sample_weight, loss_weight="batch size"):
        for metric in model.metrics:
            if metric.name == "loss":
                metric.update_state(loss, sample_weight=tf.shape(x)[0] if loss_weight == "batch size" else None)
            else:
                metric.update_state(y, y_pred, sample_weight=sample_weight)
        return {m.name: m.result() for m in model.metrics}

    class Reference(keras.Model):
        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
            return update_metrics(self, loss, x, y, y_pred, sample_weight)

    class ForwardOutsideTape(keras.Model):
        """The forward pass before the tape opens: the tape saw no operation, every gradient is None."""

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            with tf.GradientTape() as tape:
                pass
            self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
            return update_metrics(self, loss, x, y, y_pred, sample_weight)

    class NoTrainingFlag(keras.Model):
        """self(x) without training=True: the check's model has a layer that behaves differently in training."""

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred = self(x)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
            return update_metrics(self, loss, x, y, y_pred, sample_weight)

    class IgnoresWeights(keras.Model):
        def train_step(self, data):
            x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
            self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
            return update_metrics(self, loss, x, y, y_pred, None)

    class SeedShims(keras.Model):
        """The seed's compiled_loss / compiled_metrics pattern, with the sample weights unpacked."""

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with tf.GradientTape() as tape:
                    y_pred = self(x, training=True)
                    loss = self.compiled_loss(y, y_pred, sample_weight=sample_weight,
                                              regularization_losses=self.losses)
                self.optimizer.apply_gradients(zip(tape.gradient(loss, self.trainable_variables),
                                                   self.trainable_variables))
                self.compiled_metrics.update_state(y, y_pred, sample_weight=sample_weight)
            return {m.name: m.result() for m in self.metrics}

    class SeedVerbatim(keras.Model):
        """The seed's train_step as written: `x, y = data`."""

        def train_step(self, data):
            x, y = data
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with tf.GradientTape() as tape:
                    y_pred = self(x, training=True)
                    loss = self.compiled_loss(y, y_pred, regularization_losses=self.losses)
                self.optimizer.apply_gradients(zip(tape.gradient(loss, self.trainable_variables),
                                                   self.trainable_variables))
                self.compiled_metrics.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    class DividesBySumOfWeights(keras.Model):
        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                per_sample = self.loss.call(y, y_pred)
                w = tf.cast(sample_weight, per_sample.dtype)
                loss = tf.reduce_sum(w * per_sample) / tf.reduce_sum(w)
            self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
            return update_metrics(self, loss, x, y, y_pred, sample_weight)

    class SumsOverBatch(keras.Model):
        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                per_sample = self.loss.call(y, y_pred)
                loss = tf.reduce_sum(tf.cast(sample_weight, per_sample.dtype) * per_sample)
            self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
            return update_metrics(self, loss, x, y, y_pred, sample_weight)

    class GuideLossTracker(keras.Model):
        """Right training; the loss metric is updated without the batch size (each batch counts once)."""

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
            self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
            return update_metrics(self, loss, x, y, y_pred, sample_weight, loss_weight=None)

    class LossOnly(keras.Model):
        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
            self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
            self.metrics[0].update_state(loss, sample_weight=tf.shape(x)[0])
            return {"loss": self.metrics[0].result()}

    class ReturnsOnlyLoss(Reference):
        def train_step(self, data):
            return {"loss": super().train_step(data)["loss"]}

    return {cls.__name__: cls for cls in (Reference, IgnoresWeights, SeedShims, SeedVerbatim, DividesBySumOfWeights,
                                          SumsOverBatch, GuideLossTracker, LossOnly, ReturnsOnlyLoss,
                                          ForwardOutsideTape, NoTrainingFlag)}


@pytest.fixture(scope="module")
def models():
    return weighted_models()


def test_weighted_model_reference_passes(models):
    assert failures("WeightedModel", models["Reference"]) == []


@pytest.mark.parametrize("mutant, phrase, every", [
    ("IgnoresWeights", "sample weights were ignored", True),
    ("SeedShims", "mean of the predictions", True),
    ("SeedVerbatim", "unpack_x_y_sample_weight", True),
    ("DividesBySumOfWeights", "divided by the sum of the weights", True),
    ("SumsOverBatch", "summed the weighted losses", True),
    # Only a smaller last batch tells the two epoch means apart; every other case passes.
    ("GuideLossTracker", "every batch counts once", True),
    ("LossOnly", "every metric", True),
    ("ReturnsOnlyLoss", "logged no", True),
    ("ForwardOutsideTape", "the forward pass ran outside the GradientTape", True),
    ("NoTrainingFlag", "without training=True", True),
])
def test_weighted_model_mutants_fail_with_their_diagnosis(models, mutant, phrase, every):
    assert_named(failures("WeightedModel", models[mutant]), phrase, every)


def test_weighted_model_stub_is_not_attempted():
    class Stub:
        def __init__(self, *args, **kwargs):
            raise NotImplementedError

    assert all(message.startswith("not attempted") for message in failures("WeightedModel", Stub))


# --- train_torch: the reference and its mutants -------------------------------------------------------------------

def loop(*, clip="norm", clip_after_step=False, zero_grad=True, schedule_at="step", per_epoch_loss=False,
         train_mode=True):
    """A student-style loop with one mistake switched on by keyword."""
    import torch

    def clip_each(parameters, max_norm):  # each parameter's gradient clipped on its own
        for p in parameters:
            torch.nn.utils.clip_grad_norm_(p, max_norm)

    def train_torch(model, loader, optimizer, scheduler, max_norm, epochs):
        losses = []
        for _ in range(epochs):
            if train_mode:
                model.train()
            epoch_losses = []
            for x, y in loader:
                if zero_grad:
                    optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                clip_fn = {"norm": torch.nn.utils.clip_grad_norm_, "value": torch.nn.utils.clip_grad_value_,
                           "each": clip_each}[clip]
                if not clip_after_step:
                    clip_fn(model.parameters(), max_norm)
                if schedule_at == "before":
                    scheduler.step()
                optimizer.step()
                if clip_after_step:
                    clip_fn(model.parameters(), max_norm)
                if schedule_at == "step":
                    scheduler.step()
                epoch_losses.append(loss.item())
            if schedule_at == "epoch":
                scheduler.step()
            losses += [sum(epoch_losses) / len(epoch_losses)] if per_epoch_loss else epoch_losses
        return losses

    return train_torch


def test_train_torch_reference_passes():
    assert failures("train_torch", loop()) == []


@pytest.mark.parametrize("mistake, phrase, every", [
    # A huge max_norm never clips, so clipping late or not at all cannot show in that case.
    ({"clip_after_step": True}, "unclipped", True),
    # Where no single entry exceeds max_norm, clipping by value changes nothing and is diagnosed as "unclipped".
    ({"clip": "value"}, "clip_grad_value_", False),
    ({"zero_grad": False}, "zero_grad", True),
    ({"schedule_at": "epoch"}, "once per epoch", True),
    ({"schedule_at": "before"}, "came before optimizer.step()", True),
    ({"per_epoch_loss": True}, "one loss per epoch", True),
    # The model arrives in evaluation mode with batch norm: without model.train() it normalises with running stats.
    ({"train_mode": False}, "never called model.train()", True),
    # With a huge max_norm nothing is clipped either way, so not every case can name it.
    ({"clip": "each"}, "clipped each parameter's gradient to max_norm separately", False),
])
def test_train_torch_mutants_fail_with_their_diagnosis(mistake, phrase, every):
    assert_named(failures("train_torch", loop(**mistake)), phrase, every)


def test_train_torch_stub_is_not_attempted():
    def train_torch(model, loader, optimizer, scheduler, max_norm, epochs):
        raise NotImplementedError

    assert all(message.startswith("not attempted") for message in failures("train_torch", train_torch))


def test_cases_come_from_the_seed():
    """The grader's fresh seeds give other inputs: nothing is tied to the visible seed."""
    for question in CHAPTER.questions:
        first, second = question.cases(1), question.cases(2)
        assert first[0].inputs["x"].tolist() != second[0].inputs["x"].tolist()
