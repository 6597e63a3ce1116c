"""Chapter 02 (losses), probe side: call the student's loss functions.

Nothing here computes an expected value: the judge side is :mod:`course.chapters.losses`.
"""
from __future__ import annotations

from ..questions import call_function
from . import ChapterProbes, Probe

PROBES = ChapterProbes("02_losses", (
    Probe("weighted_cross_entropy", call_function),
    Probe("binary_focal_loss", call_function),
    Probe("huber_loss", call_function),
))
