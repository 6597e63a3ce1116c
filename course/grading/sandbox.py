"""The isolation of one submission, applied inside the forked process that will run it (Linux).

As root (the usual case on a grading machine) the process gets, before it drops to an unprivileged user:

* a fresh network namespace (no network at all, not even loopback),
* a fresh PID namespace in which the student's process is PID 1, so every process it spawns dies with it,
* a fresh mount namespace in which ``/tmp``, ``/dev/shm`` and ``/var/tmp`` are empty private tmpfs mounts and the
  submissions folder, the output folder, the secret seed and the repository's solutions and tests are hidden under
  empty read-only tmpfs mounts,
* a user id of its own (one per worker: ``RLIMIT_NPROC`` counts per user, so a fork bomb in one sandbox cannot
  starve the sandbox next to it), no supplementary groups,
* rlimits: private memory (``RLIMIT_DATA``), CPU time (a backstop), file size, number of processes, no core
  dumps, and every inherited file descriptor closed except the result pipe.

Not as root, only the rlimits, a private working directory and a new session are available; the grader says so.
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
from dataclasses import dataclass

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = (
    0x00020000, 0x04000000, 0x08000000, 0x20000000, 0x40000000)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE, MS_BIND = 1, 2, 4, 8, 16384, 1 << 18, 4096
#: First user id of the sandboxes; worker ``i`` runs its sandboxes as ``SANDBOX_UID_BASE + i``.
SANDBOX_UID_BASE = 64000
#: Processes and threads one sandbox user may have (TensorFlow starts a few dozen threads).
MAX_PROCESSES = 512
#: Largest file a sandbox may write, and the size of its private /tmp.
MAX_FILE_BYTES = 64 * 1024 * 1024
TMPFS_SIZE = "256m"

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Limits:
    """The limits of one submission's sandbox."""

    memory_mb: int = 2048
    cell_seconds: float = 60.0
    question_seconds: float = 20.0
    submission_seconds: float = 180.0


#: Set to 1 to use the reduced isolation even as root (to test that path; never for real grading).
REDUCED_ENV = "COURSE_GRADER_REDUCED"


def privileged() -> bool:
    """Whether full isolation (namespaces, another user) is available: only as root on Linux."""
    if os.environ.get(REDUCED_ENV) == "1":
        return False
    return hasattr(os, "geteuid") and os.geteuid() == 0 and os.uname().sysname == "Linux"


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def unshare_namespaces() -> None:
    """New mount, PID, network, IPC and UTS namespaces for this process's future children (root only)."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    # Our mounts must not propagate back to the host.
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")


def _mount_tmpfs(path: str, mode: str, read_only: bool = False) -> None:
    if not os.path.isdir(path):
        return
    flags = MS_NOSUID | MS_NODEV | (MS_RDONLY if read_only else 0)
    data = f"size={TMPFS_SIZE},mode={mode}".encode()
    _check(_libc.mount(b"tmpfs", path.encode(), b"tmpfs", flags, data), f"mount tmpfs on {path}")


def _hide_file(path: str) -> None:
    if os.path.isfile(path):
        _check(_libc.mount(b"/dev/null", path.encode(), None, MS_BIND, None), f"hide {path}")


_SYS_OPEN_TREE, _SYS_MOVE_MOUNT = 428, 429  # x86_64 and arm64 share these numbers
_AT_FDCWD, _OPEN_TREE_CLONE, _AT_RECURSIVE, _MOVE_MOUNT_F_EMPTY_PATH = -100, 1, 0x8000, 4


def _closed_to_others(path: str) -> bool:
    return (os.stat(path).st_mode & 0o005) != 0o005


def expose(paths: list[str]) -> None:
    """Make ``paths`` reachable for the sandbox user, in this mount namespace only.

    Python, the virtual environment or the course may live under a folder other users cannot enter (``/root``
    is mode 700 when Python was installed there with pyenv); the sandbox's lazy imports (``import cProfile`` deep
    inside torch) would then fail. For each such folder, the paths under it are cloned as detached mounts, the folder
    is covered by an empty tmpfs (hiding the rest of it), and the clones are attached at their old places.
    """
    blocked: dict[str, list[str]] = {}
    for path in sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)}):
        parts = path.split(os.sep)
        for depth in range(2, len(parts) + 1):
            ancestor = os.sep.join(parts[:depth]) or os.sep
            if ancestor != path and _closed_to_others(ancestor):
                blocked.setdefault(ancestor, []).append(path)
                break
    for ancestor, inside in blocked.items():
        cover_keeping(ancestor, "0755", inside)


def cover_keeping(folder: str, mode: str, keep: list[str]) -> None:
    """Cover ``folder`` with an empty tmpfs of ``mode``, except for the paths in ``keep`` found under it.

    Each kept path is cloned as a detached mount before the cover goes on, then attached at its old place.
    """
    prefix = folder.rstrip(os.sep) + os.sep
    keep = sorted({os.path.realpath(p) for p in keep if os.path.isdir(p)})
    keep = [p for p in keep if p.startswith(prefix)]
    keep = [p for p in keep if not any(p != q and p.startswith(q + os.sep) for q in keep)]
    trees = []
    for path in keep:
        fd = _libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, path.encode(), _OPEN_TREE_CLONE | _AT_RECURSIVE)
        if fd < 0:
            raise OSError(ctypes.get_errno(), f"open_tree {path}")
        trees.append((path, fd))
    _mount_tmpfs(folder, mode)
    for path, fd in trees:
        os.makedirs(path, exist_ok=True)
        _check(_libc.syscall(_SYS_MOVE_MOUNT, fd, b"", _AT_FDCWD, path.encode(), _MOVE_MOUNT_F_EMPTY_PATH),
               f"move_mount {path}")
        os.close(fd)
        for parent in _parents_between(folder, path):
            os.chmod(parent, 0o755)


def _parents_between(ancestor: str, path: str) -> list[str]:
    parents, current = [], os.path.dirname(path)
    while len(current) > len(ancestor):
        parents.append(current)
        current = os.path.dirname(current)
    return parents


def build_filesystem(hidden: list[str], needed: list[str]) -> None:
    """Inside the new PID namespace (as PID 1, still root): our own /proc, the interpreter and the course
    reachable, an empty /tmp, and the grader's paths hidden."""
    _check(_libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount /proc")
    expose(needed)
    # Scratch folders start empty, but a checkout (or its virtual environment) may itself live under /tmp: keep it.
    for scratch in ("/tmp", "/dev/shm", "/var/tmp"):
        cover_keeping(scratch, "1777", needed)
    for path in hidden:
        if os.path.isdir(path):
            _mount_tmpfs(path, "0555", read_only=True)
        else:
            _hide_file(path)


PR_SET_PDEATHSIG = 1


def on_parent_death(signum: int) -> None:
    """Have the kernel send ``signum`` to this process when its parent dies (a killed grader leaves no orphans)."""
    _libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)


def set_limits(memory_mb: int, cpu_seconds: float) -> None:
    """Memory (private memory beyond what the preloaded frameworks already use), CPU time (a backstop should the
    grader itself die), files, processes, no core dumps."""
    # RLIMIT_DATA (private writable memory: heap, anonymous mmaps, thread stacks), not RLIMIT_AS: TensorFlow
    # reserves address space it never touches (a Keras fit adds about 1.1 GB of address space but 0.1 GB of
    # data, measured), so an address-space limit would crash honest code long before it used real memory.
    with open("/proc/self/status") as status:
        data_kb = next(int(line.split()[1]) for line in status if line.startswith("VmData:"))
    limit = data_kb * 1024 + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    cpu = int(cpu_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if privileged():
        resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))
    # Past the file-size limit a write should fail with an error, not kill the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def drop_privileges(uid: int) -> None:
    """Become ``uid`` for good (real, effective and saved ids), with no supplementary groups."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.geteuid() == 0 or os.getegid() == 0:
        raise OSError("could not drop root privileges")


def close_fds(keep: set[int]) -> None:
    """Close every inherited descriptor except ``keep`` (the student must not reach the grader's pipes)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def redirect_std(stdout_path: str) -> None:
    """stdin from /dev/null; stdout and stderr into one capped file of the working directory."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    out = os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)
