"""The fork server: one per parallel slot. It imports the frameworks once, then grades one submission at a time.

Three kinds of process, so that nothing of one student reaches the next:

* the **worker** reads jobs from the grader, keeps time and the bookkeeping of each submission, and answers;
* the **zygote**, forked from the worker right after the frameworks are imported and before any job exists, only
  ever forks helpers when the worker asks over a socket pair (the request carries three pipe ends and nothing
  else). Its memory is the pristine, preloaded image, so a sandbox forked from it finds neither another
  student's code or errors nor the worker's bookkeeping in its memory;
* per attempt, a **helper** (still root) that enters new namespaces and forks the **sandbox**, which joins its
  slot's control group, reads its job from a pipe, builds its allow-list root, drops privileges and runs
  :mod:`course.grading.runner`. The helper reports the sandbox's pid and fate on a control pipe the sandbox
  cannot write to.

The worker keeps time: a cell that runs past its limit, a question that runs past its limit or a process that
dies (or is killed by the kernel for memory) is attributed to what was running, the sandbox is killed with
everything it spawned, and the notebook is replayed without the offending cell (or without the questions
already decided), so one hang or exit costs only what it hit. Every frame from the sandbox is parsed under the
caps of :mod:`course.grading.wire`; a malformed one is that submission's problem, never the worker's.

Started by :mod:`course.grading.pool` as ``python -P -m course.grading.worker SLOT CONFIG_JSON`` with an
allow-listed environment; reads jobs on stdin and answers on stdout, both in the :mod:`course.grading.wire`
format. Only the probe side of the course (:mod:`course.probes`) is imported here, never :mod:`course.chapters`.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

from . import cgroups, runner, sandbox, wire

#: How many times one submission may be replayed after a hang or a crash.
MAX_ATTEMPTS = 4
#: Cell errors kept per submission (the feedback shows the first few; a notebook of 10,000 failing cells must not
#: make an answer too large to send).
MAX_CELL_ERRORS = 100
#: Modules imported once per worker, before any fork: this is what makes a submission cheap to start.
PRELOAD = ("numpy", "torch", "tensorflow", "keras", "matplotlib", "matplotlib.pyplot", "sklearn.datasets",
           "IPython.display", "course.check", "course.probes")
#: Largest message the sandbox may send: the outputs of one question (float64) plus room for the header.
MAX_SANDBOX_MESSAGE = 8 * runner.MAX_QUESTION_ELEMENTS + 2 * 1024 * 1024


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


def probes_of(chapter_id: str) -> dict:
    """The probes of a chapter by question name (each has ``run(obj, case)``)."""
    from ..probes import get_probes

    return {probe.name: probe for probe in get_probes(chapter_id).probes}


class Frames:
    """Length-prefixed messages from the sandbox's pipe, read without blocking past a deadline."""

    def __init__(self, fd: int, max_message: int = MAX_SANDBOX_MESSAGE):
        self.fd, self.buffer, self.max_message = fd, bytearray(), max_message

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
        size = wire.LENGTHS.size
        if not self._fill(size, deadline):
            return None
        head_len, payload_len = wire.LENGTHS.unpack_from(self.buffer)
        wire.check_lengths(head_len, payload_len, wire.MAX_HEADER, self.max_message)
        if not self._fill(size + head_len + payload_len, deadline):
            return None
        head = bytes(self.buffer[size:size + head_len])
        payload = bytes(self.buffer[size + head_len:size + head_len + payload_len])
        del self.buffer[:size + head_len + payload_len]
        return wire.decode(head, payload, max_elements=runner.MAX_QUESTION_ELEMENTS)


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
        self.throttled = 0
        self.start = time.monotonic()
        self.deadline = self.start + limits.submission_seconds

    def pending(self) -> list[str]:
        return [q for q in self.meta["questions"] if q not in self.questions]

    def decide(self, name: str, status: str, message: str, cases: list | None = None,
               calls: list[str] | None = None) -> None:
        self.questions[name] = {"status": status, "message": message, "cases": cases or [], "calls": calls or []}

    def accept_answer(self, name: str, header: dict, arrays: dict) -> None:
        """A question's probe results, checked for shape and type before they are believed."""
        try:
            self._accept(name, header, arrays)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise wire.WireError(f"malformed answer ({type(exc).__name__})") from None

    def _accept(self, name: str, header: dict, arrays: dict) -> None:
        if header.get("missing"):
            self.decide(name, "missing", f"`{name}` is not defined in the notebook")
            return
        cases = header.get("cases")
        if not isinstance(cases, list) or len(cases) != self.case_counts[name]:
            raise wire.WireError("wrong number of cases")
        checked, kept = [], {}
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
                kept[f"{name}/c{number}k{position}"] = array
            checked.append(entry)
        self.arrays.update(kept)
        # Which other graded functions the run called: only ever a hint, so anything but a list of this notebook's
        # other question names is dropped, not an error.
        calls = header.get("calls")
        calls = sorted({c for c in calls if isinstance(c, str) and c in self.case_counts and c != name}
                       if isinstance(calls, list) and len(calls) <= len(self.case_counts) else set())
        self.decide(name, "ran", "", checked, calls)


def _signal_name(status: int) -> str:
    if os.WIFSIGNALED(status):
        try:
            return signal.Signals(os.WTERMSIG(status)).name
        except ValueError:
            return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else "unknown status"


class Zygote:
    """The worker's handle on its zygote: a pristine fork of the preloaded worker that forks helpers on request."""

    def __init__(self, config: dict):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        worker = os.getpid()
        pid = os.fork()
        if pid == 0:
            ours.close()
            _zygote_main(theirs, config, worker)
        theirs.close()
        self.socket, self.pid = ours, pid

    def spawn(self, fds: list[int]) -> None:
        """Ask for one helper, handing it the sandbox's job pipe, result pipe and the helper's control pipe."""
        socket.send_fds(self.socket, [b"fork"], fds)

    def close(self) -> None:
        self.socket.close()
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _zygote_main(sock: socket.socket, config: dict, worker: int) -> None:
    """Fork a helper per request, until the worker closes the socket or dies. Never returns."""
    try:
        sandbox.on_parent_death(signal.SIGKILL)
        if os.getppid() != worker:
            os._exit(0)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # helpers are reaped by the kernel
        # Nothing of the worker's channels: not the grader's job pipe, not the answer pipe (only the log).
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        sandbox.close_fds({sock.fileno()})
        while True:
            message, fds, _, _ = socket.recv_fds(sock, 16, 3)
            if not message:
                os._exit(0)
            if len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                continue
            if os.fork() == 0:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _helper(config, *fds)
            for fd in fds:
                os.close(fd)
    except BaseException:
        pass
    os._exit(0)


def _helper(config: dict, body_r: int, data_w: int, ctl_w: int) -> None:
    """The trusted helper (still root): enters the namespaces, forks the sandbox, reports its pid and fate."""
    code = 0
    try:
        zygote = os.getppid()
        os.setsid()
        group = cgroups.SlotGroup.from_json(config.get("cgroup"))
        kills_before = group.oom_kills() if group else -1
        if sandbox.privileged():
            sandbox.unshare_namespaces()
            workdir = None  # the sandbox's scratch tmpfs, gone with its mount namespace
        else:
            workdir = tempfile.mkdtemp(prefix="submission-")  # removed below, whatever the sandbox did
        child = os.fork()
        if child == 0:
            os.close(ctl_w)  # the sandbox must not be able to speak on the trusted channel
            sandbox.on_parent_death(signal.SIGKILL)
            _sandbox(config, body_r, data_w, group, workdir)
        os.close(data_w)
        os.close(body_r)

        def zygote_died(signum, frame):  # the worker was killed: take the sandbox (and its namespace) along
            os.kill(child, signal.SIGKILL)
            os._exit(1)

        signal.signal(signal.SIGTERM, zygote_died)
        sandbox.on_parent_death(signal.SIGTERM)
        if os.getppid() != zygote:  # the zygote died before we asked to be told
            zygote_died(None, None)
        wire.write_message(ctl_w, {"pid": child, "helper": os.getpid()})
        _, status, usage = os.wait4(child, 0)
        if workdir:
            try:
                os.killpg(child, signal.SIGKILL)  # what the sandbox left running in its group
            except (ProcessLookupError, PermissionError):
                pass
            shutil.rmtree(workdir, ignore_errors=True)
        final = {"status": status, "maxrss_kb": usage.ru_maxrss}
        if group:
            final.update(oom=group.oom_kills() > kills_before, throttled=group.cpu_stat().get("nr_throttled", 0))
        wire.write_message(ctl_w, final)
    except BaseException as exc:  # report, never raise into the zygote's copy of the stack
        try:
            wire.write_message(ctl_w, {"error": repr(exc)[:300]})
        except OSError:
            pass
        code = 1
    os._exit(code)


def _sandbox(config: dict, body_r: int, data_w: int, group: cgroups.SlotGroup | None, workdir: str | None) -> None:
    """The sandboxed process: join its limits, read its job, build its world, lock it down, run. Never returns."""
    try:
        from ..questions import Case

        if group:
            group.join()  # first of all: every page and process from here on counts against the slot's limits
        limits = sandbox.Limits(**config["limits"])
        attempt, _ = wire.read_message(body_r, max_header=wire.MAX_HEADER)
        job, arrays = wire.decode_raw(wire.read_raw(body_r, max_header=wire.MAX_JOB_HEADER))
        os.close(body_r)
        privileged = sandbox.privileged()
        if not privileged:
            os.setsid()  # a group of its own, which the worker kills as a whole
        uid = sandbox.SANDBOX_UID_BASE + config["slot"]
        if privileged:
            sandbox.build_root(config["allowed"], scratch_mb=limits.memory_mb, uid=uid)
            workdir = sandbox.WORKDIR
        notebook = os.path.join(workdir, os.path.basename(job["notebook_name"]))
        with open(notebook, "wb") as handle:
            handle.write(arrays.pop("notebook").tobytes())
        if privileged:
            os.chown(notebook, uid, uid)
        os.chdir(workdir)
        env = sandbox.clean_environment(uid)
        if not privileged:
            env.update(HOME=workdir, TMPDIR=workdir, MPLCONFIGDIR=os.path.join(workdir, ".matplotlib"))
        sandbox.set_environment(env)
        questions = probes_of(job["chapter"])
        cases = {name: [Case(spec["label"], wire.join_plain(spec["inputs"], f"{name}/{number}/", arrays))
                        for number, spec in enumerate(job["cases"][name])]
                 for name in job["questions"]}
        job["questions"] = attempt["questions"]
        job["skip_cells"] = attempt["skip_cells"]
        sandbox.set_limits(limits.memory_mb, cpu_seconds=2 * limits.submission_seconds + 10)
        sandbox.close_fds({data_w})
        sandbox.redirect_std(os.path.join(workdir, ".output"))
        if privileged:
            sandbox.no_new_privileges()
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


def _feed(fd: int, attempt: dict, body: bytearray) -> None:
    """Write the attempt's instructions and the job to the sandbox's pipe (in a thread: the pipe is small)."""
    try:
        wire.write_message(fd, attempt)
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass  # the sandbox died before reading it all: its fate is reported on the control pipe
    finally:
        os.close(fd)


def run_attempt(state: Attempt, body: bytearray, zygote: Zygote) -> None:
    """One sandboxed run of the notebook; decides questions (or marks a cell to skip) from what happened."""
    data_r, data_w = os.pipe()
    ctl_r, ctl_w = os.pipe()
    body_r, body_w = os.pipe()
    try:
        zygote.spawn([body_r, data_w, ctl_w])
    finally:
        for fd in (body_r, data_w, ctl_w):
            os.close(fd)
    feeder = threading.Thread(target=_feed, args=(body_w, {"questions": state.pending(),
                                                           "skip_cells": sorted(state.skip_cells)}, body),
                              daemon=True)
    feeder.start()
    control = Frames(ctl_r, wire.MAX_HEADER)
    child = helper = None
    outcome = None
    try:
        started = control.next(time.monotonic() + 60)
        if started and "pid" in started[0]:
            child, helper = started[0]["pid"], started[0]["helper"]
        else:
            outcome = f"could not start: {str((started or [{}])[0].get('error'))[:200]}"
    except (TimeoutError, wire.WireError) as exc:
        outcome = f"could not start: {type(exc).__name__}"
    frames = Frames(data_r)
    phase, current, ran, last_cell = "start", None, False, -1
    limit = state.limits
    phase_deadline = min(state.deadline, time.monotonic() + limit.cell_seconds)
    try:
        while outcome is None:
            try:
                message = frames.next(phase_deadline)
            except TimeoutError:
                outcome = "timeout"
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
                if header.get("error") and len(state.cell_errors) < MAX_CELL_ERRORS:
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
                outcome = "malformed: unexpected message"
    except wire.WireError as exc:
        outcome = f"malformed: {exc}"
    except (OSError, ValueError, RecursionError, MemoryError) as exc:  # anything the sandbox caused, never ours
        outcome = f"malformed: {type(exc).__name__}"
    finally:
        _stop(child, helper)
        final = _drain(control) if child else {}
        os.close(data_r)
        os.close(ctl_r)
        feeder.join(timeout=10)
    state.peak_kb = max(state.peak_kb, _int(final.get("maxrss_kb")))
    state.throttled += _int(final.get("throttled"))
    _attribute(state, outcome, phase, current, final)


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _attribute(state: Attempt, outcome: str, phase: str, current, final: dict) -> None:
    """Turn how an attempt ended into verdicts: a timeout or death is charged to the cell or question running."""
    if outcome == "finished":
        for name in state.pending():  # the runner skipped nothing on purpose; be safe anyway
            state.decide(name, "crashed", "no answer came back from the sandbox")
        return
    out_of_time = time.monotonic() >= state.deadline
    status = final.get("status") if isinstance(final.get("status"), int) else None
    if outcome == "timeout":
        seconds = state.limits.question_seconds if phase == "question" else state.limits.cell_seconds
        how = f"timed out after {seconds:.0f} s"
    elif outcome == "died":
        how = f"the process ended ({_signal_name(status)})" if status is not None else "the process ended"
    else:
        how = f"the sandbox {outcome}"
    if final.get("oom") is True:
        how = f"ran out of memory (the limit is {state.limits.memory_mb} MB, all processes and files counted)"
    elif outcome == "died" and status is not None and os.WIFSIGNALED(status) and \
            os.WTERMSIG(status) in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
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
        status_word = "timeout" if outcome == "timeout" else ("memory" if "memory" in how else "crashed")
        state.decide(current, status_word, f"{how} while checking `{current}`")
    else:  # between steps: the sandbox misbehaved outside any cell or question
        for name in state.pending():
            state.decide(name, "crashed", f"{how} outside any cell")


def _stop(child: int | None, helper: int | None) -> None:
    """Kill the sandbox and everything it started (it is PID 1 of its namespace as root; else its process group,
    which a child in a session of its own escapes: that is part of why reduced isolation is reduced)."""
    if isinstance(child, int) and child > 1:
        try:
            os.kill(child, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if not sandbox.privileged() and isinstance(child, int) and child > 1:
        try:
            os.killpg(child, signal.SIGKILL)  # the sandbox leads its own process group
        except (ProcessLookupError, PermissionError):
            pass


def _drain(control: Frames) -> dict:
    try:
        message = control.next(time.monotonic() + 10)
    except (TimeoutError, wire.WireError):
        return {}
    return message[0] if message else {}


def grade_one(meta: dict, body: bytearray, limits: sandbox.Limits, zygote: Zygote):
    """Every attempt one submission needs; returns the answer for the grader (header, arrays)."""
    state = Attempt(meta, limits)
    while state.pending():
        if state.attempts >= MAX_ATTEMPTS:
            for name in state.pending():
                state.decide(name, "crashed", f"gave up after {MAX_ATTEMPTS} attempts (the notebook kept dying)")
            break
        state.attempts += 1
        run_attempt(state, body, zygote)
    header = {"questions": state.questions, "cell_errors": {str(k): v for k, v in sorted(state.cell_errors.items())},
              "seconds": round(time.monotonic() - state.start, 3), "peak_mb": round(state.peak_kb / 1024, 1),
              "attempts": state.attempts}
    return header, state, state.arrays


def _own_peak_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def main(argv: list[str]) -> int:
    """Serve jobs until stdin closes."""
    slot, config = int(argv[0]), json.loads(argv[1])
    limits = sandbox.Limits(**config["limits"])
    answers = os.dup(1)
    os.dup2(2, 1)  # anything printed while importing goes to the log, never into the protocol
    preload()
    privileged = sandbox.privileged()
    config["slot"] = slot
    config["allowed"] = sandbox.allowed_paths(config["course_root"]) if privileged else []
    group = cgroups.SlotGroup.from_json(config.get("cgroup"))
    zygote = Zygote(config)  # before any job is read: its memory holds none
    isolation = sandbox.describe(cgroups.describe(group))
    print(f"worker {slot}: {isolation}; cgroup settings {group.settings() if group else {}}; "
          f"allow-listed paths {config['allowed']}; peak RSS after preload {_own_peak_mb():.0f} MB", flush=True)
    wire.write_message(answers, {"ready": True, "privileged": privileged, "isolation": isolation})
    jobs = 0
    while True:
        try:
            meta, _ = wire.read_message(0)
            body = wire.read_raw(0, max_header=wire.MAX_JOB_HEADER)
        except EOFError:
            zygote.close()
            return 0
        try:
            header, state, arrays = grade_one(meta, body, limits, zygote)
        finally:
            body[:] = bytes(len(body))
        jobs += 1
        print(f"worker {slot} job {jobs}: {state.attempts} attempt(s), {header['seconds']:.1f} s, sandbox peak "
              f"{header['peak_mb']:.0f} MB, cpu throttled {state.throttled} periods, worker peak RSS "
              f"{_own_peak_mb():.0f} MB", flush=True)
        wire.write_message(answers, header, arrays)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
