"""Chapter 04 (learning-rate schedules), probe side: call the student's schedule and plateau functions.

Nothing here computes an expected value: the judge side is :mod:`course.chapters.schedules`.
"""
from __future__ import annotations

import numpy as np

from ..questions import Case
from . import ChapterProbes, Probe


SCHEDULE_PARAMS = ("peak_lr", "warmup_steps", "first_decay_steps", "t_mul", "m_mul", "alpha")


PLATEAU_PARAMS = ("patience", "threshold", "cooldown", "framework")


def probe_schedule(fn, case: Case) -> dict:
    """Call the student's function once per step, with a plain int step and the case's keyword arguments."""
    params = {key: case.inputs[key] for key in SCHEDULE_PARAMS}
    return {"result": [float(fn(int(step), **params)) for step in case.inputs["steps"]]}


def probe_plateau(fn, case: Case) -> dict:
    """Call the student's function with a copy of the curve and the case's keyword arguments."""
    params = {key: case.inputs[key] for key in PLATEAU_PARAMS}
    return {"result": np.asarray(fn(np.array(case.inputs["val_losses"], copy=True), **params), dtype=np.float64)}


PROBES = ChapterProbes("04_schedules", (
    Probe("warmup_cosine_restarts", probe_schedule, apis="numpy"),
    Probe("plateau_epochs", probe_plateau, apis="numpy"),
))
