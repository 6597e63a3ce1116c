"""What runs inside the sandbox: execute the notebook's cells, then probe each question on the hidden inputs.

Everything this module sends is a progress mark or plain arrays (through :mod:`course.grading.wire`); it never
judges. Student code runs in this very process, so nothing here is trusted by the grader: the worker checks every
message, times every step and attributes a silence to the cell or question that was running.
"""
from __future__ import annotations

import builtins
import numpy as np

from .. import apis
from ..probes import Probe
from ..questions import Case, MAX_OUTPUT_ELEMENTS, describe_exception, one_line, recording_calls, to_plain
from . import wire

#: The largest total output of one question (numbers), over all of its cases.
MAX_QUESTION_ELEMENTS = 2 * MAX_OUTPUT_ELEMENTS
#: Cell magics whose body is ordinary code that should run (``%%time`` around a training loop, for instance).
_RUNNABLE_MAGICS = {"time", "timeit", "capture", "prun"}


class InertIPython:
    """What ``get_ipython()`` returns in the sandbox: hooks, transformers and magics do nothing.

    A student's ``get_ipython().events.register(...)`` or ``input_transformers_post.append(...)`` therefore cannot
    rewrite later cells (that is how nbgrader was fooled); ``%%time`` cells still run their body.
    """

    def __init__(self, namespace: dict):
        self._namespace = namespace

    def run_cell_magic(self, name, line, body):
        if name in _RUNNABLE_MAGICS:
            exec(compile(body, f"<%%{name}>", "exec"), self._namespace)

    def run_line_magic(self, name, line, *args, **kwargs):
        if name in {"time", "timeit"} and line.strip():
            exec(compile(line.lstrip("-n0123456789 "), f"<%{name}>", "exec"), self._namespace)

    def __getattr__(self, name):
        return InertCall()


class InertCall:
    """Any attribute or call of it is itself: ``x.events.register(...)`` is a harmless no-op."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self

    def __iter__(self):
        return iter(())

    def __repr__(self):
        return "<inert in the grader>"


def fresh_namespace() -> dict:
    """The globals a notebook starts with."""
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    namespace["get_ipython"] = lambda: InertIPython(namespace)
    return namespace


def run_cell(source: str, index: int, namespace: dict) -> str | None:
    """Execute one cell like a kernel with ``allow_errors``; returns the error in one line, or None."""
    try:
        code = compile(source, f"<cell {index + 1}>", "exec")
        exec(code, namespace)
    except SyntaxError as exc:
        return one_line(f"SyntaxError: {exc.msg} (line {exc.lineno})")
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the next cell still runs
        return one_line(f"{type(exc).__name__}: {exc}")
    return None


def probe_question(question: Probe, obj, cases: list[Case]) -> tuple[dict, dict[str, np.ndarray]]:
    """Run the student's object on every case; per case a status and the plain outputs."""
    results, arrays, total = [], {}, 0
    for number, case in enumerate(cases):
        entry = {"status": "ok", "message": "", "keys": []}
        try:
            plain = to_plain(apis.call(question.apis, question.run, obj, case))  # the question's API rule
            total += sum(array.size for array in plain.values())
            if total > MAX_QUESTION_ELEMENTS:
                raise ValueError(f"outputs too large ({total} numbers in all)")
            for position, (key, array) in enumerate(plain.items()):
                arrays[f"c{number}k{position}"] = array
                entry["keys"].append(key)
        except apis.ForbiddenCall as exc:  # sent as an error the judging side recognises (see judging.FORBIDDEN)
            entry.update(status="error", message=one_line(f"forbidden: {exc}"))
        except NotImplementedError as exc:
            entry.update(status="not-attempted", message=describe_exception(exc))
        except MemoryError:
            entry.update(status="memory", message="ran out of memory (MemoryError)")
        except BaseException as exc:  # the student's exception, whatever it is, is this case's verdict
            entry.update(status="error", message=describe_exception(exc))
        results.append(entry)
    return {"t": "q_end", "cases": results}, arrays


def run(job: dict, cases: dict[str, list[Case]], questions: dict, fd: int) -> None:
    """Execute the notebook's cells (skipping the ones a previous attempt died in), then probe each question."""
    namespace = fresh_namespace()
    skip_cells = set(job["skip_cells"])
    for index, source in enumerate(job["cells"]):
        if index in skip_cells:
            continue
        wire.write_message(fd, {"t": "cell", "i": index})
        error = run_cell(source, index, namespace)
        wire.write_message(fd, {"t": "cell_end", "i": index, "error": error})
    wire.write_message(fd, {"t": "ran"})
    for name in job["questions"]:
        wire.write_message(fd, {"t": "q", "name": name})
        if name not in namespace:
            header = {"t": "q_end", "missing": True, "cases": []}
            wire.write_message(fd, header)
            continue
        # which of the notebook's other graded functions this question's run calls (for the feedback only)
        with recording_calls(namespace, [other for other in questions if other != name]) as called:
            header, arrays = probe_question(questions[name], namespace[name], cases[name])
        header["calls"] = sorted(called)
        wire.write_message(fd, header, arrays)
    wire.write_message(fd, {"t": "end"})
