"""Which libraries a student's answer may call: the per-question API rule, enforced while the answer runs.

Each question says what it allows (``apis=`` on its probe):

* ``"numpy"``: NumPy and the standard library only. The exercise asks to write the computation by hand, so calling
  a framework (``torch``, ``tensorflow``, ``keras``, ``jax``), SciPy or scikit-learn is not an answer;
* ``"any"``: the frameworks are the point of the exercise (a Keras ``train_step``, a PyTorch ``Sampler``); not
  watched by default (:data:`WATCH_ANY`: watching a Keras training run costs seconds).

Under both rules the course's own code that decides grades (``course.chapters``, ``course.grading``,
``course.check``) is off limits: it holds the reference implementations.

:func:`guard` watches the calls made while the student's object runs, with :func:`sys.setprofile` (and
:func:`threading.setprofile` for threads it starts): a Python ``call`` is attributed to the module of the running
code (its globals' ``__name__`` and its file), a ``c_call`` to the module of the builtin (``torch.softmax`` is a
builtin of ``torch``). NumPy calling into its own C code is NumPy, so allowed. The first forbidden call is kept and
raised as :class:`ForbiddenCall` when the object returns, outside the student's code, so it cannot be caught there.
Removing or replacing the watch (``sys.setprofile``/``sys.settrace`` called by the answer, or another profiler in
place at the end) is tampering, with the same verdict. This is a detector, not a jail: code that runs in the same
interpreter can, with enough knowledge of this module, patch it before the probe (the grader flags any mention of
it for the instructor, see :data:`course.grading.reading.FLAGS`); the grader's sandbox is the jail. The watch
makes the rule visible and the usual ways round it costly.

The same guard runs in the grader (around each probe, in the sandbox) and in the student's self-check
(:mod:`course.check`), so a student sees ``[FAIL] softmax · ...: uses torch.softmax; this question asks for NumPy
only`` before handing in.

>>> import numpy as np
>>> with guard("numpy"):
...     total = float(np.exp(np.zeros(3)).sum())
>>> total
3.0
"""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from importlib.util import find_spec

#: The rules a question may state.
RULES = ("numpy", "any")
#: Packages a "numpy" answer may not call (top-level names).
FRAMEWORKS = frozenset({"torch", "tensorflow", "keras", "tf_keras", "jax", "jaxlib", "flax", "scipy", "sklearn",
                        "cupy", "autograd", "mxnet", "paddle", "theano", "torchvision", "tensorboard"})
#: Course modules no answer may call: the reference implementations, judges and grader.
COURSE_CODE = ("course.chapters", "course.grading", "course.check")
#: Whether "any" questions are watched too (for the course's own code only). Off: measured on the solutions, the
#: watch makes a Keras probe 2-3.6 times slower (seconds per question), while a NumPy probe costs well under a
#: millisecond more (benchmarks/api_guard_overhead.py). In the grader the course's reference code is not on the
#: sandbox's filesystem anyway; the watch matters where the frameworks are forbidden.
WATCH_ANY = False
#: Calls that switch the watch off or replace it (a thread started by ``threading`` inherits the watch; a raw
#: ``_thread`` one would not).
_TAMPERING = {("sys", "setprofile"), ("sys", "settrace"), ("threading", "setprofile"), ("threading", "settrace"),
              ("threading", "setprofile_all_threads"), ("threading", "settrace_all_threads"),
              ("_thread", "start_new_thread")}


class ForbiddenCall(Exception):
    """The answer called something its question does not allow (or tampered with the watch)."""


def _package_dirs(names) -> tuple[str, ...]:
    """The folders of the given packages that are installed (without importing them)."""
    dirs = []
    for name in names:
        try:
            spec = find_spec(name)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            dirs.append(os.path.join(os.path.realpath(location), ""))
    return tuple(dirs)


_DIRS: dict[str, tuple[str, ...]] = {}
_OWN = globals()
#: Code of the course's own that may run inside the answer's calls without counting as one (the self-check's
#: time-limit signal handler, which Python runs in whatever frame the answer is executing).
EXEMPT_CODE: set = set()
#: The interpreter's own switches, taken when this module is imported (before any student code runs): an answer
#: that replaces ``sys.setprofile``/``sys.getprofile`` with fakes cannot make the watch believe it is still in place.
_SET, _GET = sys.setprofile, sys.getprofile
_SET_THREADS, _GET_THREADS = threading.setprofile, threading.getprofile


def _forbidden_dirs(rule: str) -> tuple[str, ...]:
    if rule not in _DIRS:
        course = os.path.dirname(os.path.realpath(__file__))
        own = tuple(os.path.join(course, *part.split(".")[1:], "") for part in COURSE_CODE if part.count(".") == 1)
        own = tuple(d if os.path.isdir(d) else d.rstrip(os.sep) + ".py" for d in own)
        _DIRS[rule] = own + (_package_dirs(sorted(FRAMEWORKS)) if rule == "numpy" else ())
    return _DIRS[rule]


def forbidden_module(module: str | None, rule: str) -> bool:
    """Whether code of ``module`` may not be called under ``rule``.

    >>> forbidden_module("torch.nn.functional", "numpy"), forbidden_module("torch", "any")
    (True, False)
    >>> forbidden_module("numpy.linalg", "numpy"), forbidden_module("course.chapters.softmax", "any")
    (False, True)
    """
    if not module:
        return False
    if module.startswith(COURSE_CODE) and (module in COURSE_CODE or module.startswith(tuple(c + "." for c in
                                                                                          COURSE_CODE))):
        return True
    return rule == "numpy" and module.split(".", 1)[0] in FRAMEWORKS


def _c_module(function) -> str | None:
    """The module a builtin function or method belongs to (``torch`` for ``torch.softmax`` and ``Tensor.exp``)."""
    module = getattr(function, "__module__", None)
    if isinstance(module, str):
        return module
    owner = getattr(function, "__self__", None)
    if owner is None:
        return None
    if type(owner).__name__ == "module":
        return getattr(owner, "__name__", None)
    return getattr(type(owner), "__module__", None)


def _c_name(function, module: str | None) -> str:
    """How a builtin is named in a message: ``torch.softmax``, ``torch.Tensor.exp``."""
    owner = getattr(function, "__self__", None)
    name = getattr(function, "__name__", "?")
    if owner is None or type(owner).__name__ == "module" or isinstance(owner, type):
        return f"{module}.{name}" if module else name
    return f"{type(owner).__module__}.{type(owner).__qualname__}.{name}"


def describe(call: str, rule: str) -> str:
    """The one-line verdict of a forbidden call."""
    if call.startswith("course."):
        return f"uses {call}, the course's own code; write your own"
    if rule == "numpy":
        return f"uses {call}; this question asks for NumPy only"
    return f"uses {call}; not allowed in this question"


@contextmanager
def guard(rule: str = "numpy"):
    """Run the block with the API rule ``rule`` watched; raise :class:`ForbiddenCall` at its end on a violation.

    Put it around the call of the student's object only (not around the probe's own conversions).
    """
    if rule not in RULES:
        raise ValueError(f"unknown API rule {rule!r}; the rules are {', '.join(RULES)}")
    if rule == "any" and not WATCH_ANY:
        yield
        return
    dirs = _forbidden_dirs(rule)
    found: list[str] = []

    def watch(frame, event, arg):
        if found or frame.f_globals is _OWN or frame.f_code in EXEMPT_CODE:  # the guard's own calls are not the answer's
            return
        if event == "call":
            code = frame.f_code
            module = frame.f_globals.get("__name__")
            if forbidden_module(module if isinstance(module, str) else None, rule) or \
                    code.co_filename.startswith(dirs):
                found.append(describe(f"{module}.{code.co_qualname}", rule))
        elif event == "c_call":
            module = _c_module(arg)
            if (module, getattr(arg, "__name__", None)) in _TAMPERING and not (
                    module == "_thread" and frame.f_globals.get("__name__") == "threading"):
                found.append(f"switched off the grader's call watch ({module}.{arg.__name__}); not allowed")
            elif forbidden_module(module, rule):
                found.append(describe(_c_name(arg, module), rule))
        if found:
            _SET(None)  # one forbidden call decides: stop watching (what follows may be a whole import)

    previous, previous_threads = _GET(), _GET_THREADS()
    _SET(watch)
    _SET_THREADS(watch)
    current = None
    try:
        yield
    except BaseException:
        _SET(previous)
        _SET_THREADS(previous_threads)
        if found:  # a forbidden call that then failed is still a forbidden call
            raise ForbiddenCall(found[0]) from None
        raise
    else:
        current = _GET()
        _SET(previous)
        _SET_THREADS(previous_threads)
    if current is not watch and not found:
        found.append("removed or replaced the grader's call watch (sys.setprofile); not allowed")
    if found:
        raise ForbiddenCall(found[0])


def call(rule: str, function, *args, **kwargs):
    """``function(*args, **kwargs)`` under :func:`guard` (``rule=None`` means no rule: called as is)."""
    if rule is None:
        return function(*args, **kwargs)
    with guard(rule):
        return function(*args, **kwargs)
