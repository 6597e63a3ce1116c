"""The fork server: one per parallel slot. It imports the frameworks once, then grades one submission at a time.

For every attempt at a submission it forks a helper (which enters new namespaces) that forks the sandbox (which
drops privileges and runs :mod:`course.grading.runner`). The worker is the one that keeps time: a cell that runs
past its limit, a question that runs past its limit or a process that dies is attributed to what was running, the
sandbox is killed with everything it spawned, and the notebook is replayed without the offending cell (or without
the questions already decided), so one hang or exit costs only what it hit.

Started by :mod:`course.grading.pool` as ``python -m course.grading.worker SLOT CONFIG_JSON``; reads jobs on stdin
and answers on stdout, both in the :mod:`course.grading.wire` format.
"""
from __future__ import annotations

import json
import os
import select
import signal
import struct
import sys
import tempfile
import time

import numpy as np

from . import sandbox, wire

#: How many times one submission may be replayed after a hang or a crash.
MAX_ATTEMPTS = 4
#: Modules imported once per worker, before any fork: this is what makes a submission cheap to start.
PRELOAD = ("numpy", "torch", "tensorflow", "keras", "matplotlib", "matplotlib.pyplot", "sklearn.datasets",
           "IPython.display", "course.check", "course.probes")


def preload() -> None:
    """Import the heavy modules (no op is run, no thread pool started) and every chapter's probes (never the
    judge side, :mod:`course.chapters`, which a sandbox forked from here could otherwise read from memory)."""
    import importlib

    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    from ..probes import all_probes

    all_probes()


class Frames:
    """Length-prefixed messages from the sandbox's pipe, read without blocking past a deadline."""

    def __init__(self, fd: int):
        self.fd, self.buffer = fd, bytearray()

    def _fill(self, size: int, deadline: float) -> bool:
        while len(self.buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                raise TimeoutError
            chunk = os.read(self.fd, min(1 << 20, size - len(self.buffer)))
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def next(self, deadline: float) -> tuple[dict, dict] | None:
        """The next message, None at end of file; TimeoutError past the deadline; WireError if malformed."""
        size = struct.calcsize("<QQ")
        if not self._fill(size, deadline):
            return None
        head_len, payload_len = struct.unpack_from("<QQ", self.buffer)
        if head_len > wire.MAX_HEADER or head_len + payload_len > wire.MAX_MESSAGE:
            raise wire.WireError("the sandbox sent an oversized message")
        if not self._fill(size + head_len + payload_len, deadline):
            return None
        head = bytes(self.buffer[size:size + head_len])
        payload = bytes(self.buffer[size + head_len:size + head_len + payload_len])
        del self.buffer[:size + head_len + payload_len]
        return wire.decode(head, payload)


class Attempt:
    """The bookkeeping of one submission across its attempts."""

    def __init__(self, meta: dict, limits: sandbox.Limits):
        self.meta, self.limits = meta, limits
        self.case_counts = dict(zip(meta["questions"], meta["case_counts"]))
        self.questions: dict[str, dict] = {}     # decided questions
        self.arrays: dict[str, np.ndarray] = {}  # their outputs, keyed "<question>/c<case>k<key>"
        self.cell_errors: dict[int, str] = {}
        self.skip_cells: set[int] = set()
        self.attempts = 0
        self.peak_kb = 0
        self.start = time.monotonic()
        self.deadline = self.start + limits.submission_seconds

    def pending(self) -> list[str]:
        return [q for q in self.meta["questions"] if q not in self.questions]

    def decide(self, name: str, status: str, message: str, cases: list | None = None) -> None:
        self.questions[name] = {"status": status, "message": message, "cases": cases or []}

    def accept_answer(self, name: str, header: dict, arrays: dict) -> None:
        """A question's probe results, checked for shape and type before they are believed."""
        if header.get("missing"):
            self.decide(name, "missing", f"`{name}` is not defined in the notebook")
            return
        cases = header.get("cases")
        if not isinstance(cases, list) or len(cases) != self.case_counts[name]:
            raise wire.WireError("wrong number of cases")
        checked = []
        for number, case in enumerate(cases):
            if not isinstance(case, dict) or case.get("status") not in {"ok", "error", "not-attempted", "memory"}:
                raise wire.WireError("malformed case")
            entry = {"status": case["status"], "message": str(case.get("message", ""))[:500], "keys": []}
            keys = case.get("keys", [])
            for position, key in enumerate(keys if isinstance(keys, list) else []):
                array = arrays.get(f"c{number}k{position}")
                if array is None or array.dtype != np.float64 or not isinstance(key, str):
                    entry.update(status="error", message="returned something that is not numbers", keys=[])
                    break
                entry["keys"].append(key[:100])
                self.arrays[f"{name}/c{number}k{position}"] = array
            checked.append(entry)
        self.decide(name, "ran", "", checked)


def _signal_name(status: int) -> str:
    if os.WIFSIGNALED(status):
        return signal.Signals(os.WTERMSIG(status)).name
    return f"exit code {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else "unknown status"


def run_attempt(state: Attempt, body: bytearray, slot: int, hidden: list[str]) -> None:
    """One sandboxed run of the notebook; decides questions (or marks a cell to skip) from what happened."""
    data_r, data_w = os.pipe()
    ctl_r, ctl_w = os.pipe()
    worker = os.getpid()
    helper = os.fork()
    if helper == 0:
        _helper(body, state, slot, hidden, worker, (data_r, data_w, ctl_r, ctl_w))
    os.close(data_w)
    os.close(ctl_w)
    control = Frames(ctl_r)
    started = control.next(time.monotonic() + 30) or {}
    child = started[0].get("pid") if started else None
    frames = Frames(data_r)
    phase, current, ran, last_cell = "start", None, False, -1
    limit = state.limits
    phase_deadline = min(state.deadline, time.monotonic() + limit.cell_seconds)
    outcome = None
    try:
        while outcome is None:
            try:
                message = frames.next(phase_deadline)
            except TimeoutError:
                outcome = "timeout"
                break
            except wire.WireError as exc:
                outcome = f"malformed: {exc}"
                break
            if message is None:
                outcome = "died"
                break
            header, arrays = message
            kind, now = header.get("t"), time.monotonic()
            if kind == "cell" and phase in ("start", "between") and not ran and isinstance(header.get("i"), int) \
                    and header["i"] > last_cell:
                # Cells only before the questions, in increasing order: a stray thread of the student's cannot
                # reset a question's deadline by announcing a cell.
                phase, current, last_cell = "cell", header["i"], header["i"]
                phase_deadline = min(state.deadline, now + limit.cell_seconds)
            elif kind == "cell_end" and phase == "cell" and header.get("i") == current:
                if header.get("error"):
                    state.cell_errors[current] = str(header["error"])[:300]
                phase, current = "between", None
                phase_deadline = min(state.deadline, now + limit.cell_seconds)
            elif kind == "ran" and phase in ("start", "between"):
                ran, phase, current = True, "between", None
                phase_deadline = min(state.deadline, now + limit.question_seconds)
            elif kind == "q" and ran and phase == "between" and header.get("name") in state.pending():
                phase, current = "question", header["name"]
                phase_deadline = min(state.deadline, now + limit.question_seconds)
            elif kind == "q_end" and phase == "question":
                state.accept_answer(current, header, arrays)
                phase, current = "between", None
                phase_deadline = min(state.deadline, now + limit.question_seconds)
            elif kind == "end":
                outcome = "finished"
            elif kind == "sandbox_error" and phase == "start":
                outcome = f"could not start: {str(header.get('error'))[:200]}"
            else:
                outcome = f"malformed: unexpected {kind!r} message"
    except wire.WireError as exc:
        outcome = f"malformed: {exc}"
    finally:
        _stop(child, helper)
        final = _drain(control)
        os.close(data_r)
        os.close(ctl_r)
        os.waitpid(helper, 0)
    state.peak_kb = max(state.peak_kb, int(final.get("maxrss_kb", 0)))
    _attribute(state, outcome, phase, current, final)


def _attribute(state: Attempt, outcome: str, phase: str, current, final: dict) -> None:
    """Turn how an attempt ended into verdicts: a timeout or death is charged to the cell or question running."""
    if outcome == "finished":
        for name in state.pending():  # the runner skipped nothing on purpose; be safe anyway
            state.decide(name, "crashed", "no answer came back from the sandbox")
        return
    out_of_time = time.monotonic() >= state.deadline
    how = {
        "timeout": f"timed out after {state.limits.question_seconds if phase == 'question' else state.limits.cell_seconds:.0f} s",
        "died": f"the process ended ({_signal_name(final['status'])})" if "status" in final else "the process ended",
    }.get(outcome, f"the sandbox {outcome}")
    if outcome == "died" and final.get("status") is not None and os.WIFSIGNALED(final["status"]) and \
            os.WTERMSIG(final["status"]) in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
        how += "; out of memory?"
    if out_of_time:
        for name in state.pending():
            state.decide(name, "timeout",
                         f"the submission ran past its {state.limits.submission_seconds:.0f} s limit")
        return
    if phase == "cell":
        state.skip_cells.add(current)
        state.cell_errors[current] = f"{how} in this cell; the notebook was re-run without it"
    elif phase == "question":
        status = "timeout" if outcome == "timeout" else ("memory" if "memory" in how else "crashed")
        state.decide(current, status, f"{how} while checking `{current}`")
    else:  # between steps: the sandbox misbehaved outside any cell or question
        for name in state.pending():
            state.decide(name, "crashed", f"{how} outside any cell")


def _stop(child: int | None, helper: int) -> None:
    """Kill the sandbox and everything it started (it is PID 1 of its namespace as root; else its group)."""
    for target in (child,):
        if target:
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if not sandbox.privileged():
        try:
            os.killpg(helper, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _drain(control: Frames) -> dict:
    try:
        message = control.next(time.monotonic() + 10)
    except (TimeoutError, wire.WireError):
        return {}
    return message[0] if message else {}


def _helper(body, state: Attempt, slot: int, hidden: list[str], worker: int, pipes: tuple) -> None:
    """The trusted helper (still root): enters the namespaces, forks the sandbox, reports its pid and fate."""
    code = 0
    data_r, data_w, ctl_r, ctl_w = pipes
    try:
        os.close(data_r)
        os.close(ctl_r)
        os.setsid()
        if sandbox.privileged():
            sandbox.unshare_namespaces()
        child = os.fork()
        if child == 0:
            os.close(ctl_w)  # the sandbox must not be able to speak on the trusted channel
            sandbox.on_parent_death(signal.SIGKILL)
            _sandbox(body, state, slot, hidden, data_w)
        os.close(data_w)

        def worker_died(signum, frame):  # the worker was killed: take the sandbox (and its namespace) along
            os.kill(child, signal.SIGKILL)
            os._exit(1)

        signal.signal(signal.SIGTERM, worker_died)
        sandbox.on_parent_death(signal.SIGTERM)
        if os.getppid() != worker:  # the worker died before we asked to be told
            worker_died(None, None)
        wire.write_message(ctl_w, {"pid": child})
        _, status, usage = os.wait4(child, 0)
        wire.write_message(ctl_w, {"status": status, "maxrss_kb": usage.ru_maxrss})
    except BaseException as exc:  # report, never raise into the worker's copy of the stack
        try:
            wire.write_message(ctl_w, {"error": repr(exc)[:300]})
        except OSError:
            pass
        code = 1
    os._exit(code)


def _sandbox(body, state: Attempt, slot: int, hidden: list[str], data_w: int) -> None:
    """The sandboxed process: build its world, lock it down, run the notebook. Never returns."""
    try:
        from ..probes import get_probes
        from ..questions import Case
        from . import runner

        job, arrays = wire.decode_raw(body)
        body[:] = bytes(len(body))
        privileged = sandbox.privileged()
        if privileged:
            from ..notebooks import ROOT

            sandbox.build_filesystem(hidden, needed=[sys.base_prefix, sys.prefix, str(ROOT), *sys.path])
        workdir = tempfile.mkdtemp(prefix="submission-")
        with open(os.path.join(workdir, job["notebook_name"]), "wb") as handle:
            handle.write(arrays.pop("notebook").tobytes())
        uid = sandbox.SANDBOX_UID_BASE + slot
        if privileged:
            for root, dirs, files in os.walk(workdir):
                for name in [root] + [os.path.join(root, f) for f in dirs + files]:
                    os.chown(name, uid, uid)
        os.chdir(workdir)
        os.environ.update(HOME=workdir, TMPDIR=workdir, MPLCONFIGDIR=os.path.join(workdir, ".matplotlib"),
                          COURSE_SKIP_CHECKS="1", MPLBACKEND="Agg")
        questions = {probe.name: probe for probe in get_probes(job["chapter"]).probes}
        cases = {name: [Case(spec["label"], wire.join_plain(spec["inputs"], f"{name}/{number}/", arrays))
                        for number, spec in enumerate(job["cases"][name])]
                 for name in job["questions"]}
        job["questions"] = state.pending()
        job["skip_cells"] = sorted(state.skip_cells)
        sandbox.set_limits(state.limits.memory_mb, cpu_seconds=2 * state.limits.submission_seconds + 10)
        sandbox.close_fds({data_w})
        sandbox.redirect_std(os.path.join(workdir, ".output"))
        if privileged:
            sandbox.drop_privileges(uid)
    except BaseException as exc:  # the grader's own failure to set up: say so, it is not the student's
        try:
            wire.write_message(data_w, {"t": "sandbox_error", "error": repr(exc)[:300]})
        finally:
            os._exit(3)
    try:
        runner.run(job, cases, questions, data_w)
    finally:
        os._exit(0)


def grade_one(meta: dict, body: bytearray, slot: int, limits: sandbox.Limits, hidden: list[str]):
    """Every attempt one submission needs; returns the answer for the grader (header, arrays)."""
    state = Attempt(meta, limits)
    while state.pending():
        if state.attempts >= MAX_ATTEMPTS:
            for name in state.pending():
                state.decide(name, "crashed", f"gave up after {MAX_ATTEMPTS} attempts (the notebook kept dying)")
            break
        state.attempts += 1
        run_attempt(state, body, slot, hidden)
    header = {"questions": state.questions, "cell_errors": {str(k): v for k, v in sorted(state.cell_errors.items())},
              "seconds": round(time.monotonic() - state.start, 3), "peak_mb": round(state.peak_kb / 1024, 1),
              "attempts": state.attempts}
    return header, state.arrays


def main(argv: list[str]) -> int:
    """Serve jobs until stdin closes."""
    slot, config = int(argv[0]), json.loads(argv[1])
    limits, hidden = sandbox.Limits(**config["limits"]), config["hidden"]
    answers = os.dup(1)
    os.dup2(2, 1)  # anything printed while importing goes to the log, never into the protocol
    preload()
    wire.write_message(answers, {"ready": True, "privileged": sandbox.privileged()})
    while True:
        try:
            meta, _ = wire.read_message(0)
            body = wire.read_raw(0)
        except EOFError:
            return 0
        try:
            header, arrays = grade_one(meta, body, slot, limits, hidden)
        finally:
            body[:] = bytes(len(body))
        wire.write_message(answers, header, arrays)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
