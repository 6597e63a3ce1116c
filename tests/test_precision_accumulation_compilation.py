"""Chapter 08: the checks pass the reference answers and fail realistic wrong ones, naming the mistake."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from course.chapters import get_chapter
from course.chapters import precision_accumulation_compilation as pac
from mutants import assert_named, check_failures

CHAPTER = get_chapter(pac.ID)
failures = partial(check_failures, CHAPTER)


# --- accumulate_gradients ----------------------------------------------------------------------------------------

def accumulation(*, weighting="size", zero="once", step=False, loss_as="whole", micro_reduction=None):
    """A student-style accumulation step with one mistake switched on by keyword."""
    import torch

    def accumulate_gradients(model, x, y, micro_batch, reduction="mean"):
        if zero == "once":
            model.zero_grad()
        n = len(x)
        starts = list(range(0, n, micro_batch))
        losses, total = [], 0.0
        for start in starts:
            if zero == "inside":
                model.zero_grad()
            xm, ym = x[start:start + micro_batch], y[start:start + micro_batch]
            loss = torch.nn.functional.cross_entropy(model(xm), ym, reduction=micro_reduction or reduction)
            right = len(xm) / n if reduction == "mean" else 1.0
            factor = {"size": right, "plain mean": 1 / len(starts), "none": 1.0, "nominal": micro_batch / n,
                      "size always": len(xm) / n}[weighting]
            if reduction == "sum" and weighting != "size always":  # these mutants get sums right
                factor = 1.0
            (loss * factor).backward()
            losses.append(loss.item())
            total += loss.item() * factor
        if step:
            torch.optim.SGD(model.parameters(), lr=0.1).step()
        return {"whole": total, "last": losses[-1], "plain mean": float(np.mean(losses))}[loss_as]

    return accumulate_gradients


def test_accumulate_reference_passes():
    assert failures("accumulate_gradients", accumulation()) == []


@pytest.mark.parametrize("mistake, phrase, every", [
    # Equal micro-batches and sum losses are right either way: only the uneven mean cases can tell.
    ({"weighting": "plain mean"}, "plain mean of the micro-batch means", True),
    ({"weighting": "none"}, "without dividing", True),
    ({"weighting": "nominal"}, "micro_batch / N", True),
    ({"zero": "never"}, "earlier step", True),
    ({"zero": "inside"}, "only the last micro-batch", True),
    ({"step": True}, "the weights changed", True),
    ({"loss_as": "last"}, "last micro-batch's loss", True),
    ({"loss_as": "plain mean"}, "returned the plain mean of the micro-batch", True),
    ({"micro_reduction": "sum"}, "reduction='sum'", False),
    ({"weighting": "size always"}, "weighted each micro-batch's sum", True),
    ({"weighting": "size always", "micro_reduction": "mean"}, "divided a sum loss", True),
])
def test_accumulate_mutants_fail_with_their_diagnosis(mistake, phrase, every):
    assert_named(failures("accumulate_gradients", accumulation(**mistake)), phrase, every)


def test_accumulate_every_required_behaviour_has_a_case():
    """An uneven last micro-batch, a micro-batch larger than the batch and both reductions are all checked."""
    cases = CHAPTER.question("accumulate_gradients").cases()
    uneven = [c for c in cases if len(c.inputs["x"]) % c.inputs["micro_batch"]]
    assert any(c.inputs["micro_batch"] > len(c.inputs["x"]) for c in cases)
    assert {c.inputs["reduction"] for c in uneven} == {"mean", "sum"}


def test_accumulate_returning_nothing_is_explained():
    def accumulate_gradients(model, x, y, micro_batch, reduction="mean"):
        accumulation()(model, x, y, micro_batch, reduction)

    assert_named(failures("accumulate_gradients", accumulate_gradients), "returned None")


# --- round_to_bfloat16 -------------------------------------------------------------------------------------------

def bits_of(x):
    return np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)


def as_float(bits):
    return (np.asarray(bits, np.uint64) & np.uint64(0xFFFF0000)).astype(np.uint32).view(np.float32)


def reference_round(x):
    x = np.asarray(x, np.float32)
    bits = bits_of(x)
    rounded = as_float(bits + np.uint64(0x7FFF) + ((bits >> np.uint64(16)) & np.uint64(1)))
    return np.where(np.isnan(x), np.float32(np.nan), rounded)


def keep_nan(fn):
    def wrapped(x):
        x = np.asarray(x, np.float32)
        return np.where(np.isnan(x), np.float32(np.nan), fn(x))
    return wrapped


ROUNDING_MUTANTS = {
    "truncates": keep_nan(lambda x: as_float(bits_of(x))),
    "ties away from zero": keep_nan(lambda x: as_float(bits_of(x) + np.uint64(0x8000))),
    "uint32 bit trick without NaN care": lambda x: as_float(
        (bits_of(x) + np.uint64(0x7FFF) + ((bits_of(x) >> np.uint64(16)) & np.uint64(1))) & np.uint64(0xFFFFFFFF)),
    "flushes subnormals": lambda x: np.where(np.abs(np.asarray(x, np.float32)) < np.float32(2.0 ** -126),
                                             np.float32(0.0) * np.sign(x), reference_round(x)),
    "saturates": lambda x: np.where(np.isinf(reference_round(x)) & np.isfinite(x),
                                    np.copysign(np.float32(3.3895313892515355e38), x), reference_round(x)),
    "float16": lambda x: np.asarray(x, np.float32).astype(np.float16).astype(np.float32),
    "truncation without NaN care": lambda x: as_float(bits_of(x)),
}


def test_round_reference_passes():
    assert failures("round_to_bfloat16", reference_round) == []


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("mutant, phrase, every", [
    ("truncates", "truncated", True),
    # Ties are exact halves: the ties and near-one cases fail, random values almost never land on one.
    ("ties away from zero", "ties away from zero", True),
    ("uint32 bit trick without NaN care", "NaN came out as a number", True),
    ("flushes subnormals", "flushed subnormal", True),
    ("saturates", "saturated", True),
    ("float16", "float16", False),
    # Truncation only turns a NaN with a payload in the low bits into inf: still a NaN mistake.
    ("truncation without NaN care", "NaN", False),
])
def test_round_mutants_fail_with_their_diagnosis(mutant, phrase, every):
    messages = failures("round_to_bfloat16", ROUNDING_MUTANTS[mutant])
    assert_named(messages, phrase, every)


def test_round_wrong_shape_is_explained():
    assert_named(failures("round_to_bfloat16", lambda x: reference_round(x).ravel()), "returned shape", False)


def test_cases_come_from_the_seed():
    """The grader's fresh seeds give other inputs: nothing is tied to the visible seed."""
    for question in CHAPTER.questions:
        first, second = question.cases(1), question.cases(2)
        assert first[0].inputs["x"].tolist() != second[0].inputs["x"].tolist()


# --- scaled_clipped_step -----------------------------------------------------------------------------------------

def scaled_step(*, clip="once", unscale=True, weighting="size", zero=True, use_scaler=True, update=True,
                norm_after=False):
    """A student-style loss-scaled, accumulated, clipped step with one mistake switched on by keyword."""
    import torch

    def scaled_clipped_step(model, optimizer, scaler, x, y, micro_batch, max_norm):
        params = list(model.parameters())
        if zero:
            optimizer.zero_grad()
        n = len(x)
        starts = list(range(0, n, micro_batch))
        for start in starts:
            xm, ym = x[start:start + micro_batch], y[start:start + micro_batch]
            factor = len(xm) / n if weighting == "size" else 1 / len(starts)
            scaler.scale(torch.nn.functional.cross_entropy(model(xm), ym) * factor).backward()
            if clip == "each":  # clips the running total after every micro-batch
                torch.nn.utils.clip_grad_norm_(params, max_norm)
        if unscale:
            scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm if clip == "once" else float("inf"))
        if norm_after:
            norm = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
        (scaler.step(optimizer) if use_scaler else optimizer.step())
        if update:
            scaler.update()
        return float(norm)

    return scaled_clipped_step


def test_step_reference_passes():
    assert failures("scaled_clipped_step", scaled_step()) == []


@pytest.mark.parametrize("mistake, phrase, every", [
    ({"zero": False}, "earlier step", True),
    # Where max_norm never bites, clipping scaled gradients, or none, or each piece, changes nothing.
    ({"unscale": False}, "unscale_", True),
    ({"clip": "never"}, "not clipped", True),
    # Clipping the running total after each micro-batch is not the reference's mistake either: any diagnosis.
    ({"clip": "each"}, "", True),
    ({"weighting": "plain mean"}, "plain mean", True),
    # Only the overflow case tells optimizer.step() and a missing update() apart from the right answer.
    ({"use_scaler": False}, "scaler.step(optimizer)", True),
    ({"update": False}, "scaler.update()", True),
    ({"norm_after": True}, "norm after clipping", True),
])
def test_step_mutants_fail_with_their_diagnosis(mistake, phrase, every):
    assert_named(failures("scaled_clipped_step", scaled_step(**mistake)), phrase, every)
