"""What a graded question is, and how one student object is judged against it.

A question is split in the three places where grading has to split it:

* ``make_cases(rng)`` makes the inputs (plain data). The self-checks use a fixed visible seed; the grader draws
  fresh ones, so answers hard-coded from the visible checks earn nothing.
* ``probe(obj, case)`` runs the student's object (function, class, variable) on one case and returns plain arrays.
  When grading, this is the only part that runs inside the sandbox; it is defined in :mod:`course.probes`.
* ``judge(case, outputs)`` computes the expected values with the frameworks' own implementations and names the
  likely mistake. It runs outside the sandbox, so expected values never reach student code.

The self-check (``course.check``) runs the same three parts in the student's own kernel.

**No trivial answer earns anything.** Each question also names its *trivial answers* (``Question.trivial``): what
an answer that does no work returns, such as a constant 0, zeros or ones of the input's shape, the input itself, a
uniform distribution, an optimizer whose step does nothing, a loop that never updates, a pipeline that hands back
its input in order. A hidden case drawn from a secret seed can happen to have such an answer (a confident, correct
batch has a cross-entropy near 0; a falling curve has no plateau to cut), and designing every case of every seed
around that is fragile. So the scoring says it once for all questions and seeds (:func:`earning_cases`): a case that
some trivial answer also passes earns its share only if the answer passes at least one case that no trivial answer
passes. The trivial answers are the course's own code, so they are run beside the judges (never in a sandbox), and
only as far as needed: on the cases the student passed, in order, until one is beyond every trivial answer.
"""
from __future__ import annotations

import contextvars
import hashlib
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

#: The seed of the visible self-checks. The grader never uses it.
VISIBLE_SEED = 20261124
#: Largest number of elements one probe may return in total (a guard against enormous student outputs).
MAX_OUTPUT_ELEMENTS = 2_000_000

Plain = dict[str, np.ndarray]


@dataclass(frozen=True)
class Case:
    """One input of a question: a short label for feedback and plain-data keyword inputs.

    ``weight`` is the case's share of the question's points relative to the others (1 for an ordinary case; more for
    the case that is the point of the question, such as the extreme input of a numerics question), and ``skill``
    says in a few words what the case tests, for feedback on a lost case.
    """

    label: str
    inputs: Mapping[str, Any]
    weight: float = 1.0
    skill: str = ""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one case: passed or not, and one line saying why."""

    passed: bool
    message: str = ""


def _first_input(args, kwargs):
    """The first positional argument, else the first array among the keyword arguments."""
    if args:
        return args[0]
    return next((value for value in kwargs.values() if isinstance(value, np.ndarray)), 0.0)


def constant_zero(*args, **kwargs):
    """Trivial answer: the number 0, whatever the input."""
    return 0.0


def zeros_like_input(*args, **kwargs):
    """Trivial answer: zeros of the input's shape."""
    return np.zeros_like(np.asarray(_first_input(args, kwargs), dtype=np.float64))


def ones_like_input(*args, **kwargs):
    """Trivial answer: ones of the input's shape."""
    return np.ones_like(np.asarray(_first_input(args, kwargs), dtype=np.float64))


def identity(*args, **kwargs):
    """Trivial answer: the input, unchanged."""
    return _first_input(args, kwargs)


#: The trivial answers every function question has: a constant, zeros-like, ones-like and the identity.
TRIVIAL_FUNCTIONS = {"a constant 0": constant_zero, "zeros of the input's shape": zeros_like_input,
                     "ones of the input's shape": ones_like_input, "the input unchanged": identity}


def trivial_functions(**extra) -> Callable[[], dict[str, Any]]:
    """A question's ``trivial``: :data:`TRIVIAL_FUNCTIONS` plus the question's own (``name=function``, the name
    with underscores for spaces), such as a uniform distribution for a softmax."""
    answers = {**TRIVIAL_FUNCTIONS, **{name.replace("_", " "): fn for name, fn in extra.items()}}
    return lambda: answers


@dataclass(frozen=True)
class Question:
    """One graded exercise: the object a student writes, its cases, how to run it and how to judge it.

    ``trivial()`` returns the question's trivial answers by name (objects of the kind the student writes, built
    lazily because class answers need the frameworks): a case one of them passes earns nothing on its own (see
    :func:`earning_cases`).
    """

    name: str
    points: int
    make_cases: Callable[[np.random.Generator], list[Case]]
    probe: Callable[[Any, Case], Mapping[str, Any]]
    judge: Callable[[Case, Plain], Verdict]
    hint: str = ""
    kind: str = field(default="function")  # "function", "class" or "value": what the student's object is
    apis: str = "any"  # what the student's code may call: "numpy" or "any" (see course.probes)
    hang_cause: str = ""  # what usually makes this question's code run forever (said when a case times out)
    trivial: Callable[[], Mapping[str, Any]] = trivial_functions()

    def cases(self, seed: int = VISIBLE_SEED) -> list[Case]:
        """The cases for one seed (the visible seed unless the grader says otherwise)."""
        return self.make_cases(np.random.default_rng(seed))


@dataclass(frozen=True)
class Chapter:
    """A chapter's graded questions, keyed by the id used in file names (``01_softmax``)."""

    id: str
    title: str
    questions: tuple[Question, ...]

    def question(self, name: str) -> Question:
        for question in self.questions:
            if question.name == name:
                return question
        known = ", ".join(q.name for q in self.questions)
        from .errors import CourseError

        raise CourseError(f"chapter {self.id} has no question {name!r} (it has: {known})")


def to_plain(outputs: Mapping[str, Any]) -> Plain:
    """Turn a probe's outputs into plain numeric arrays, refusing anything else.

    This is what makes "an object whose equality always holds" worthless: only numbers survive.

    >>> to_plain({"y": [1, 2]})["y"].dtype
    dtype('float64')
    """
    plain: Plain = {}
    total = 0
    for key, value in outputs.items():
        _refuse_exotic(str(key), value)
        if hasattr(value, "detach"):  # torch tensor
            value = value.detach().cpu().numpy()
        elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # tf / keras tensor
            value = value.numpy()
        if isinstance(value, np.ndarray) and value.dtype.kind not in "biuf":
            raise TypeError(f"{key}: expected real numbers, got an array of dtype {value.dtype}")
        try:
            array = np.array(value, dtype=np.float64, copy=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise TypeError(f"{key}: expected numbers, got {type(value).__name__} ({exc})") from None
        total += array.size
        if total > MAX_OUTPUT_ELEMENTS:
            raise ValueError(f"{key}: output too large ({total} numbers)")
        plain[str(key)] = array
    return plain


def weighted(make_cases: Callable[[np.random.Generator], list[Case]], table, default_skill: str):
    """``make_cases`` with a weight and a skill on every case: the first ``(label part, weight, skill)`` row of
    ``table`` whose label part occurs in the case's label, else weight 1 and ``default_skill``.

    >>> cases = lambda rng: [Case("large logits", {}), Case("small", {})]
    >>> make = weighted(cases, [("large", 3, "stability")], "basics")
    >>> [(c.weight, c.skill) for c in make(np.random.default_rng(0))]
    [(3, 'stability'), (1.0, 'basics')]
    """
    def make(rng: np.random.Generator) -> list[Case]:
        cases = []
        for case in make_cases(rng):
            row = next((row for row in table if row[0] in case.label), None)
            weight, skill = (row[1], row[2]) if row else (1.0, default_skill)
            cases.append(Case(case.label, case.inputs, weight=weight, skill=skill))
        return cases
    make.__name__ = getattr(make_cases, "__name__", "make_cases")
    make.__doc__ = make_cases.__doc__
    return make


def case_shares(cases: list[Case]) -> list[float]:
    """Each case's share of a question's points: its weight over the sum of the weights.

    >>> case_shares([Case("a", {}), Case("b", {}, weight=3)])
    [0.25, 0.75]
    """
    total = sum(case.weight for case in cases)
    return [case.weight / total if total else 0.0 for case in cases]


def _refuse_exotic(key: str, value: Any) -> None:
    """Refuse tensors that are not plain real numbers, with a message saying what they are.

    A ``meta`` tensor has no data at all (copying it raises ``NotImplementedError``, which used to read as "not
    attempted"); a sparse one converts only through a dense copy of unknown size; a complex one would silently lose
    its imaginary part; an object array may hold anything.
    """
    if getattr(value, "is_meta", False) is True:
        raise TypeError(f"{key}: a 'meta' tensor has no values; return a tensor with numbers in it")
    layout = str(getattr(value, "layout", "strided"))
    if getattr(value, "is_sparse", False) is True or "sparse" in layout or type(value).__name__ == "SparseTensor":
        raise TypeError(f"{key}: a sparse tensor; return a dense one (e.g. .to_dense())")
    dtype = getattr(value, "dtype", None)
    if dtype is not None and ("complex" in str(dtype) or str(dtype) in ("object", "O")):
        raise TypeError(f"{key}: {dtype} values; return real numbers")
    if isinstance(value, complex):
        raise TypeError(f"{key}: a complex number; return real numbers")


def one_line(text: str, limit: int = 160) -> str:
    """Squash a message to one line of at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_exception(exc: BaseException) -> str:
    """How a student's exception is reported: 'not attempted yet' for the stub, else the exception in one line."""
    if isinstance(exc, NotImplementedError):
        return "not attempted yet (the function still raises NotImplementedError)"
    text = str(exc)
    for pattern, cause in EXCEPTION_CAUSES:
        if pattern in text:
            # the cause first: one_line cuts long framework messages at the end
            return one_line(f"raised {type(exc).__name__} ({cause}): {text}")
    return one_line(f"raised {type(exc).__name__}: {text}")


#: Framework error messages whose wording hides the mistake that causes them, and that mistake.
EXCEPTION_CAUSES = (
    ("could not be broadcast", "a max or sum without keepdims=True dropped the axis it reduced"),
    ("No gradients provided", "the forward pass ran outside the GradientTape: the tape records only what is "
                              "computed inside its `with` block"),
    ("does not require grad and does not have a grad_fn", "the loss was cut from the graph (.item(), .detach(), "
                                                          "NumPy or torch.no_grad()) before backward()"),
)


def run_case(question: Question, obj: Any, case: Case) -> Verdict:
    """Probe and judge one case in this process (the self-check path)."""
    try:
        outputs = to_plain(question.probe(obj, case))
    except Exception as exc:  # any student error is a verdict, not a crash
        return Verdict(False, describe_exception(exc))
    return question.judge(case, outputs)


# --- helpers for writing probes and judges -------------------------------------------------------------------

def call_function(fn, case: Case) -> dict:
    """The usual probe: call the student's function with copies of the case's inputs, keep its result.

    Copies, so that a function that changes its inputs in place cannot change what the judge sees.
    """
    inputs = {key: np.array(value, copy=True) if isinstance(value, np.ndarray) else value
              for key, value in case.inputs.items()}
    return {"result": fn(**inputs)}


def assert_frameworks_agree(a, b, what: str, rtol: float = 1e-9, atol: float = 1e-12) -> None:
    """Refuse to judge when the two frameworks' oracles disagree: then the oracle itself is broken."""
    if not np.allclose(a, b, rtol=rtol, atol=atol):
        raise AssertionError(f"torch and Keras disagree on {what}: the oracle itself is broken")


def quiet(fn):
    """Wrap a NumPy reference of a *wrong* answer: silence its overflow warnings, return float64."""
    def wrapped(*args, **kwargs):
        with np.errstate(all="ignore"):
            return np.asarray(fn(*args, **kwargs), dtype=np.float64)
    wrapped.__name__ = getattr(fn, "__name__", "wrapped")
    wrapped.__doc__ = fn.__doc__
    return wrapped


def compare(
    got: np.ndarray,
    expected: np.ndarray,
    *,
    mistakes: Mapping[str, np.ndarray | Callable[[], np.ndarray]] = (),
    rtol: float = 1e-5,
    atol: float = 1e-6,
    what: str = "result",
) -> Verdict:
    """Compare a student's array with the expected one; on a mismatch, name the first known mistake it matches.

    ``mistakes`` maps a one-line diagnosis to what a typical wrong implementation returns on the same input, or to a
    function of no arguments that computes it: those are only called on a mismatch, in order, until one matches (for
    mistakes that cost a whole training run).

    >>> compare(np.array([1.0]), np.array([1.0])).passed
    True
    >>> compare(np.array([2.0]), np.array([1.0]), mistakes={"doubled it": np.array([2.0])}).message
    'doubled it'
    """
    mistakes = {} if _VERDICT_ONLY.get() else dict(mistakes)
    if got.shape == expected.shape and np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=False):
        return Verdict(True, "")
    for diagnosis, wrong in mistakes.items():
        if callable(wrong):
            wrong = per_case(("mistake", what, diagnosis, _digest(expected)), wrong)
        wrong = np.asarray(wrong, dtype=np.float64)
        if wrong.shape == got.shape and _same(got, wrong, rtol, atol):
            return Verdict(False, diagnosis)
    if got.shape != expected.shape:
        return Verdict(False, f"{what} has shape {got.shape}, expected {expected.shape}")
    bad = ~np.isfinite(got) & np.isfinite(expected)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        return Verdict(False, f"{what} has {_nonfinite_name(got[index])} at {index} where the answer is finite "
                              f"({expected[index]:.6g}): an overflow or log(0) on the way")
    error = np.abs(got - expected)
    index = tuple(int(i) for i in np.unravel_index(np.nanargmax(error), error.shape)) if error.size else ()
    return Verdict(False, f"{what} differs: at {index} got {got[index]:.6g}, expected {expected[index]:.6g}")


#: True while a trivial answer is judged: only passed or not matters, so no known mistake is computed.
_VERDICT_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("verdict_only", default=False)

#: Whether some trivial answer passes a case, keyed by question name, judge and case digest (per process).
_TRIVIALLY_PASSED: dict[tuple, str] = {}


def case_digest(case: Case) -> str:
    """A hash of a case's label and inputs: equal for equal cases, whichever object holds them."""
    digest = hashlib.sha256(case.label.encode())
    for key in sorted(case.inputs):
        value = case.inputs[key]
        if isinstance(value, (np.ndarray, np.generic)):
            digest.update(f"{key}\0{value.dtype}\0{np.shape(value)}\0".encode() + np.ascontiguousarray(value).tobytes())
        else:
            digest.update(f"{key}\0{value!r}".encode())
    return digest.hexdigest()


def trivially_passed(question: Question, case: Case) -> str:
    """The name of a trivial answer of ``question`` that passes ``case``, or "" if none does.

    The trivial answers are the course's own code, run here through the question's probe and judge (the judge in
    verdict-only mode: no known mistake is computed). The answer is kept per process, so a grading run asks once
    per case however many students passed it.
    """
    key = (question.name, question.judge, case_digest(case))
    if key not in _TRIVIALLY_PASSED:
        _TRIVIALLY_PASSED[key] = next((name for name, answer in question.trivial().items()
                                       if _passes_quietly(question, answer, case)), "")
    return _TRIVIALLY_PASSED[key]


def _passes_quietly(question: Question, answer: Any, case: Case) -> bool:
    """Whether one trivial answer passes one case; its warnings are not the student's to read."""
    token = _VERDICT_ONLY.set(True)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return question.judge(case, to_plain(question.probe(answer, case))).passed
    except Exception:  # a trivial answer that raises passes nothing
        return False
    finally:
        _VERDICT_ONLY.reset(token)


def earning_cases(question: Question, cases: list[Case], passed: list[bool], *,
                  visible: bool = False) -> tuple[list[bool], str]:
    """Which passed cases earn their share, and why none does when that is so.

    The rule: a case that a trivial answer also passes earns its share only if the answer passes at least one case
    that no trivial answer passes. So every passed case earns when one of them is beyond every trivial answer, and
    none earns otherwise. Trivial answers are tried only on passed cases, in order, until one is beyond them all.
    With ``visible`` (the self-check's cases, drawn from :data:`VISIBLE_SEED`), an answer that passes every case
    earns everything without asking: ``tests/test_trivial_answers.py`` shows that those cases keep one beyond every
    trivial answer, so a right answer costs the student's check nothing extra. Hidden cases come from a secret no
    test has seen, so the grader always asks (once per case and process: cheap).

    Returns ``(earns, reason)``: ``reason`` is "" unless passed cases were refused.
    """
    if visible and passed and all(passed):
        return list(passed), ""
    names = []
    for case, ok in zip(cases, passed):
        if not ok:
            continue
        name = trivially_passed(question, case)
        if not name:
            return list(passed), ""
        names.append(name)
    if not names:
        return list(passed), ""
    shown = ", ".join(dict.fromkeys(names))
    return [False] * len(passed), (f"a trivial answer ({shown}) passes them too; they count only beside a case no "
                                   "trivial answer passes")


#: The memo of the case being judged (set by the grader around each judge call; None in a self-check).
_CASE_MEMO: contextvars.ContextVar[dict | None] = contextvars.ContextVar("case_memo", default=None)


@contextmanager
def memo_for_case(memo: dict):
    """While judging one case, let :func:`per_case` keep its results in ``memo`` (one dict per question and case)."""
    token = _CASE_MEMO.set(memo)
    try:
        yield memo
    finally:
        _CASE_MEMO.reset(token)


def per_case(key: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()``, computed once per case and grading run: a known mistake's output depends on the case only, so
    the grader computes it for the first student who needs it and reuses it for the others. Without a memo (the
    self-check), it is simply computed."""
    memo = _CASE_MEMO.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array, dtype=np.float64)
    return hashlib.sha256(f"{array.shape}".encode() + array.tobytes()).hexdigest()


def _same(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> bool:
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def _nonfinite_name(value: float) -> str:
    return "NaN" if np.isnan(value) else ("-inf" if value < 0 else "inf")


@contextmanager
def recording_calls(namespace: dict, names) -> Any:
    """Within the block, note which of ``names`` (a notebook's other graded functions) get called; yields the set.

    This is how "cross_entropy fails because the log_softmax it calls fails" is known, so that the feedback names the
    function to fix instead of diagnosing the wrong one. Recorded while the answer runs rather than read from its
    source: a static look at the code (is the name mentioned?) misses a call through a helper of the student's and
    counts a name that is mentioned but never called; a recorder sees exactly what this run called, at the cost of a
    wrapper call (well under a microsecond). The namespace's plain functions among ``names`` are replaced by a
    wrapper that records, then calls the original; the student's function finds it through its globals, which are
    this namespace. Classes and other objects are left alone (a wrapper would break ``isinstance`` and subclassing),
    and a function captured before the block (a default argument, an alias) is not seen: then nothing is recorded,
    which only loses a hint. The original objects are back after the block, unless the answer rebound the name.

    >>> def inner(): return 1
    >>> space = {"inner": inner}
    >>> exec("def outer(): return inner() + 1", space)
    >>> with recording_calls(space, ["inner", "absent"]) as called:
    ...     _ = space["outer"]()
    >>> called, space["inner"] is inner
    ({'inner'}, True)
    """
    import functools
    import types

    called: set[str] = set()
    wrapped = {}
    for name in names:
        original = namespace.get(name)
        if type(original) is types.FunctionType:
            wrapped[name] = (original, functools.wraps(original)(_recorder(name, original, called)))
            namespace[name] = wrapped[name][1]
    try:
        yield called
    finally:
        for name, (original, recorder) in wrapped.items():
            if namespace.get(name) is recorder:
                namespace[name] = original


def _recorder(name: str, original, called: set):
    def recorder(*args, **kwargs):
        called.add(name)
        return original(*args, **kwargs)
    return recorder
