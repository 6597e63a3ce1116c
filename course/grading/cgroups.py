"""Kernel-enforced limits per grading slot: one control group per worker slot, shared by its successive sandboxes.

A slot's group holds a sandbox and everything it starts (children in new sessions, threads), and counts:

* **memory**: private memory, shared memory (``mmap(-1)``, ``/dev/shm``), files in its tmpfs scratch folders and
  kernel memory, of all its processes together; no swap. Past the limit the kernel kills the sandbox (PID 1 of
  its namespace, so all of it), and the grader reads the group's OOM-kill counter to say "out of memory".
* **cpu**: a quota of one core (``quota == period``), so a sandbox that spins any number of processes cannot
  take CPU time from the sandbox next to it.
* **pids**: processes and threads (a fork bomb stops at the cap, in its own group only).

cgroup v2 is used where it is mounted with these controllers delegated to us (``memory cpu pids`` in our group's
``cgroup.controllers``; this code path could not be exercised on the machine it was written on, whose v2 hierarchy
has no controllers); otherwise the v1 hierarchies ``memory``, ``cpu`` and ``pids`` (this is what a Docker
host with the legacy layout has). The groups are created under the grader's own group in each hierarchy (so any
limit set on the grader still applies above them), named ``course-grader-<pid>/slot-<n>``, and removed when the
slot's worker closes; groups left by a grader that was killed are removed by the next run.

Creating groups needs root (or a delegated v2 subtree); without them the sandbox falls back to rlimits and the
grader's summary says "REDUCED isolation".
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

ROOT = "/sys/fs/cgroup"
CONTROLLERS = ("memory", "cpu", "pids")
#: CFS period; the quota equals it, i.e. one core per sandbox.
CPU_PERIOD_US = 100_000
#: Processes and threads of one sandbox (TensorFlow and torch start a few dozen threads each).
MAX_TASKS = 512
_PREFIX = "course-grader-"


@dataclass
class SlotGroup:
    """The control group(s) of one slot: one directory in v2, one per controller in v1."""

    version: int
    dirs: dict[str, str] = field(default_factory=dict)  # controller -> directory (v2: all the same)

    def to_json(self) -> dict:
        return {"version": self.version, "dirs": self.dirs}

    @classmethod
    def from_json(cls, data: dict | None) -> "SlotGroup | None":
        return cls(data["version"], dict(data["dirs"])) if data else None

    def join(self) -> None:
        """Move the calling process into the group (before it allocates anything the limits should count)."""
        for directory in sorted(set(self.dirs.values())):
            _write(os.path.join(directory, "cgroup.procs"), "0")

    def oom_kills(self) -> int:
        """How many processes the kernel has killed in this group for lack of memory (a counter; -1 unknown)."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            text = _read(os.path.join(self.dirs["memory"], name))
        except OSError:
            return -1
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return -1

    def cpu_stat(self) -> dict[str, int]:
        """The CPU controller's counters (``nr_throttled`` and friends)."""
        try:
            text = _read(os.path.join(self.dirs["cpu"], "cpu.stat"))
        except OSError:
            return {}
        return {k: int(v) for k, _, v in (line.partition(" ") for line in text.splitlines()) if v.isdigit()}

    def settings(self) -> dict[str, str]:
        """The limits as the kernel holds them (for the log and the tests)."""
        names = (["memory.max", "memory.swap.max", "cpu.max", "pids.max"] if self.version == 2 else
                 ["memory.limit_in_bytes", "cpu.cfs_quota_us", "cpu.cfs_period_us", "pids.max"])
        found = {}
        for name in names:
            try:
                found[name] = _read(os.path.join(self.dirs[name.split(".")[0]], name)).strip()
            except (OSError, KeyError):
                pass
        return found

    def kill_all(self) -> None:
        """SIGKILL whatever is still in the group (a sandbox's stray process outside its PID namespace: none
        should exist, this is a backstop before the group is removed)."""
        for directory in set(self.dirs.values()):
            try:
                pids = _read(os.path.join(directory, "cgroup.procs")).split()
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError, ValueError):
                    pass

    def remove(self) -> None:
        """Remove the group (killing anything left in it first), then its run folder if it is empty."""
        self.kill_all()
        for directory in sorted(set(self.dirs.values())):
            _rmdir_retrying(directory)
            try:
                os.rmdir(os.path.dirname(directory))  # course-grader-<pid>, once its last slot is gone
            except OSError:
                pass


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _rmdir_retrying(directory: str) -> None:
    for _ in range(50):  # a killed process leaves its group a moment after it is reaped
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _own_paths() -> dict[str, str]:
    """Our group in each hierarchy, from /proc/self/cgroup: {"memory": "/a/b", ..., "": "/x"} ("" is v2)."""
    paths = {}
    with open("/proc/self/cgroup") as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


def _mounts() -> dict[str, str]:
    """Mount points: {"memory": "/sys/fs/cgroup/memory", ..., "": "/sys/fs/cgroup/unified"} ("" is v2)."""
    found = {}
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fstype, _, options = (right.split() + ["", "", ""])[:3]
            mount_point = left.split()[4]
            if fstype == "cgroup2":
                found.setdefault("", mount_point)
            elif fstype == "cgroup":
                for option in options.split(","):
                    if option in CONTROLLERS:
                        found.setdefault(option, mount_point)
    return found


def _clean_stale(parent: str) -> None:
    """Remove the groups of graders that no longer run (killed before they could clean up)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        pid = name[len(_PREFIX):].removesuffix("-self")
        if not name.startswith(_PREFIX) or not pid.isdigit() or os.path.exists(f"/proc/{pid}"):
            continue
        run_dir = os.path.join(parent, name)
        for slot in os.listdir(run_dir) if os.path.isdir(run_dir) else []:
            if os.path.isdir(os.path.join(run_dir, slot)):
                SlotGroup(1, {"x": os.path.join(run_dir, slot)}).remove()
        try:
            os.rmdir(run_dir)
        except OSError:
            pass


def _v2_base() -> str | None:
    mounts, own = _mounts(), _own_paths()
    if "" not in mounts or "" not in own:
        return None
    base = os.path.join(mounts[""], own[""].lstrip("/"))
    try:
        available = _read(os.path.join(base, "cgroup.controllers")).split()
    except OSError:
        return None
    return base if all(c in available for c in CONTROLLERS) else None


def _enable_controllers(directory: str) -> None:
    _write(os.path.join(directory, "cgroup.subtree_control"), " ".join(f"+{c}" for c in CONTROLLERS))


def _create_v2(base: str, slot: int, memory_bytes: int) -> SlotGroup:
    # A v2 group with processes cannot also hand controllers to its children ("no internal processes"). If the
    # grader's own group refuses, the grader moves itself into a leaf beside the run's folder (a delegated
    # systemd scope, or a container's root group, usually holds just the grader), then enables them.
    run_dir = os.path.join(base, f"{_PREFIX}{os.getpid()}")
    try:
        _enable_controllers(base)
    except OSError:
        leaf = f"{run_dir}-self"
        os.makedirs(leaf, exist_ok=True)
        _write(os.path.join(leaf, "cgroup.procs"), str(os.getpid()))
        _enable_controllers(base)
    os.makedirs(run_dir, exist_ok=True)
    _enable_controllers(run_dir)
    directory = os.path.join(run_dir, f"slot-{slot}")
    os.makedirs(directory, exist_ok=True)
    _write(os.path.join(directory, "memory.max"), str(memory_bytes))
    try:
        _write(os.path.join(directory, "memory.swap.max"), "0")
    except OSError:
        pass  # no swap accounting on this kernel: nothing to limit
    _write(os.path.join(directory, "cpu.max"), f"{CPU_PERIOD_US} {CPU_PERIOD_US}")
    _write(os.path.join(directory, "pids.max"), str(MAX_TASKS))
    return SlotGroup(2, {c: directory for c in CONTROLLERS})


def _create_v1(slot: int, memory_bytes: int) -> SlotGroup:
    mounts, own = _mounts(), _own_paths()
    missing = [c for c in CONTROLLERS if c not in mounts or c not in own]
    if missing:
        raise OSError(f"no cgroup v1 hierarchy for {', '.join(missing)}")
    group = SlotGroup(1)
    for controller in CONTROLLERS:
        parent = os.path.join(mounts[controller], own[controller].lstrip("/"))
        _clean_stale(parent)
        directory = os.path.join(parent, f"{_PREFIX}{os.getpid()}", f"slot-{slot}")
        os.makedirs(directory, exist_ok=True)
        group.dirs[controller] = directory
    memory = group.dirs["memory"]
    _write(os.path.join(memory, "memory.limit_in_bytes"), str(memory_bytes))
    for name, value in (("memory.memsw.limit_in_bytes", memory_bytes), ("memory.swappiness", 0)):
        try:  # present only with swap accounting; with it, swap counts too
            _write(os.path.join(memory, name), str(value))
        except OSError:
            pass
    _write(os.path.join(group.dirs["cpu"], "cpu.cfs_period_us"), str(CPU_PERIOD_US))
    _write(os.path.join(group.dirs["cpu"], "cpu.cfs_quota_us"), str(CPU_PERIOD_US))
    _write(os.path.join(group.dirs["pids"], "pids.max"), str(MAX_TASKS))
    return group


def create(slot: int, memory_mb: int) -> SlotGroup | None:
    """The control group of one slot with its limits set, or None where none can be had (then: rlimits only)."""
    if not hasattr(os, "geteuid") or not os.path.isdir(ROOT):
        return None
    memory_bytes = memory_mb * 1024 * 1024
    base = _v2_base()
    try:
        if base is not None:
            _clean_stale(base)
            return _create_v2(base, slot, memory_bytes)
        return _create_v1(slot, memory_bytes)
    except OSError:
        return None


def describe(group: SlotGroup | None) -> str:
    """One phrase for the grader's summary."""
    if group is None:
        return "no cgroup (rlimits only)"
    return f"cgroup v{group.version} limits on memory, CPU (1 core) and processes per sandbox"
