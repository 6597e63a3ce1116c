"""The probe side of every chapter: what may run beside student code.

Grading splits each chapter in two. This package holds the half that runs inside the grader's sandbox: for every
question, how to run the student's object on one case (``Probe.run``), what kind of object it is and which APIs the
student's code may call. The other half, the cases, the frameworks' reference implementations, the known mistakes
and the judges, lives in :mod:`course.chapters` and never exists on the sandbox's filesystem or in its memory, so no
submission can import an oracle.

A probe module imports only :mod:`course.questions`, this package, NumPy and the standard library at module level
(TensorFlow, Keras and torch inside functions), and never anything from :mod:`course.chapters`.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Mapping

from ..errors import CourseError
from ..questions import Case, Question

#: What a question lets the student's code call: "numpy" (NumPy and the standard library only) or "any".
APIS = ("numpy", "any")


@dataclass(frozen=True)
class Probe:
    """How one question's object is run on a case: ``run(obj, case)`` returns a dict of numbers."""

    name: str
    run: Callable[[Any, Case], Mapping[str, Any]]
    kind: str = "function"  # "function", "class" or "value": what the student's object is
    apis: str = "any"

    def __post_init__(self):
        if self.apis not in APIS:
            raise ValueError(f"{self.name}: apis must be one of {APIS}, not {self.apis!r}")


@dataclass(frozen=True)
class ChapterProbes:
    """The probes of one chapter, keyed by the id used in file names (``01_softmax``)."""

    id: str
    probes: tuple[Probe, ...]

    def __getitem__(self, name: str) -> Probe:
        for probe in self.probes:
            if probe.name == name:
                return probe
        raise CourseError(f"chapter {self.id} has no question {name!r} "
                          f"(it has: {', '.join(p.name for p in self.probes)})")

    def question(self, name: str, points: int, make_cases, judge, hint: str = "", hang_cause: str = "",
                 trivial=None) -> Question:
        """The judge side's full question, with name, probe, kind and APIs taken from this probe (``trivial``: the
        question's trivial answers, see :class:`course.questions.Question`; the function ones by default).

        >>> from course.questions import call_function
        >>> probes = ChapterProbes("99_demo", (Probe("double", call_function, apis="numpy"),))
        >>> probes.question("double", 1, lambda rng: [], lambda case, out: None).apis
        'numpy'
        """
        probe = self[name]
        extra = {} if trivial is None else {"trivial": trivial}
        return Question(probe.name, points, make_cases, probe.run, judge, hint=hint, kind=probe.kind, apis=probe.apis,
                        hang_cause=hang_cause, **extra)


@cache
def all_probes() -> dict[str, ChapterProbes]:
    """Every chapter's probes, keyed and sorted by chapter id."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        probes = getattr(module, "PROBES", None)
        if isinstance(probes, ChapterProbes):
            found[probes.id] = probes
    return dict(sorted(found.items()))


def get_probes(chapter_id: str) -> ChapterProbes:
    """The probes of the chapter with this id, or a one-line error that lists the ones that exist."""
    chapters = all_probes()
    if chapter_id not in chapters:
        raise CourseError(f"no chapter {chapter_id!r}; the chapters are: {', '.join(chapters) or 'none'}")
    return chapters[chapter_id]
