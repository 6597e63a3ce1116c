"""Chapter 01 (softmax, log-softmax, cross-entropy), probe side: call the student's NumPy functions.

Nothing here computes an expected value: the judge side is :mod:`course.chapters.softmax`.
"""
from __future__ import annotations

from ..questions import call_function
from . import ChapterProbes, Probe

PROBES = ChapterProbes("01_softmax", (
    Probe("softmax", call_function, apis="numpy"),
    Probe("log_softmax", call_function, apis="numpy"),
    Probe("cross_entropy_from_logits", call_function, apis="numpy"),
))
