"""The isolation of one submission, applied inside the forked process that will run it (Linux).

As root (the usual case on a grading machine) the sandbox gets, before it drops to an unprivileged user:

* a fresh network namespace (no network at all, not even loopback), IPC and UTS namespaces,
* a fresh PID namespace in which the student's process is PID 1, so every process it spawns dies with it,
* an **allow-list root filesystem**: a fresh mount namespace whose root is a new, empty tmpfs holding only what a
  notebook needs, read-only and at the original absolute paths (the frameworks are already imported, but their
  lazy imports look for files at the paths they were loaded from):

  - the Python installation's standard library and the virtual environment's packages (``sys.path``),
  - the course's *probe side* only (``course/__init__.py``, ``errors.py``, ``questions.py``, ``check.py``,
    ``apis.py``, ``course/probes/`` and the grading modules that run in here: ``runner``, ``wire``, ``sandbox``),
  - the system's shared libraries (``/usr/lib/<multiarch>``, ``/usr/lib64``, ``/etc/ld.so.cache``: extension
    modules imported lazily, such as ``_ssl`` or ``_sqlite3``, link against them),
  - ``/dev/null``, ``/dev/zero``, ``/dev/random``, ``/dev/urandom``, a fresh ``/proc`` of its PID namespace,
    a two-line ``/etc/passwd`` naming the sandbox user,
  - its own empty scratch tmpfs folders ``/tmp`` (the working folder) and ``/dev/shm``, whose pages count
    against the memory limit of the sandbox's control group.

  Measured (``strace -f`` on the grader grading the six chapter solutions): after ``pivot_root`` the sandboxes
  opened files under the Python installation, the virtual environment and the course only; they probed
  ``/sys/devices/system/{cpu,node}``, ``/sys/kernel/mm/hugepages`` and ``/sys/class/dmi`` (CPU topology for the
  thread pools; absent, the libraries fall back to ``/proc`` and defaults, and every solution passes), and never
  touched ``/usr/lib`` or ``/etc/ld.so.cache``: those are there for standard-library extension modules a student
  may import lazily (``sqlite3``, ``ssl``, ``ctypes.util``), not for the course.

  Everything else does not exist inside: the repository (``.git``, tests, solutions, ``course/chapters``, the
  judges), the submissions, the output folder, the grading secret (the instructor's configuration folder; a
  ``--secret-file`` inside the allow-list is refused by the grader, and a secret every user could read is refused
  too, so the sandbox's user could not read it even there), ``/root``, ``/home``, ``/run``, ``/var``, ``/etc``
  (but for the two files above), ``/usr/bin`` (a sandbox cannot start programs: there are none).
* a user id of its own (one per slot), no supplementary groups, ``no_new_privs``,
* the limits of its slot's control group (see :mod:`course.grading.cgroups`: memory counting everything, one core
  of CPU, a number of tasks), plus rlimits as a first, gentler line (a single huge allocation fails with a
  ``MemoryError`` the runner can report, rather than an OOM kill), no core dumps,
* an environment built from an allow-list (:func:`clean_environment`), never copied from the grader,
* every inherited file descriptor closed except the result pipe.

Why the kernel's mount namespace, bind mounts and ``pivot_root`` rather than bubblewrap: the grader is a fork
server (a worker imports TensorFlow and torch once, about 3 s, then forks a sandbox per attempt in milliseconds).
bubblewrap sets up its namespaces and then ``exec``\\ s a program: the sandbox would have to start a fresh Python
and import the frameworks again for every notebook, which is what makes ``nbconvert --execute`` slow. The same
system calls bubblewrap makes (``unshare``, ``open_tree``/``move_mount`` bind mounts, ``pivot_root``) are made
here, in the forked process, so the preloaded frameworks survive.

Not as root, only the rlimits, a private working directory and a new session are available; the grader says so
("REDUCED isolation"). The sandbox then runs as the grader's user and can read what it can, the grading secret
included.
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import sysconfig
from dataclasses import dataclass

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = (
    0x00020000, 0x04000000, 0x08000000, 0x20000000, 0x40000000)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 16384, 1 << 18
MNT_DETACH = 2
#: First user id of the sandboxes; slot ``i`` runs its sandboxes as ``SANDBOX_UID_BASE + i``.
SANDBOX_UID_BASE = 64000
#: Processes and threads one sandbox user may have (rlimit; the control group counts them too).
MAX_PROCESSES = 512
#: Largest file a sandbox may write.
MAX_FILE_BYTES = 64 * 1024 * 1024
#: The working folder of a sandbox, in its scratch tmpfs.
WORKDIR = "/tmp/submission"
#: The course's files a sandbox may see (relative to the repository): the probe side, never the judge side.
COURSE_FILES = ("course/__init__.py", "course/errors.py", "course/questions.py", "course/check.py", "course/apis.py",
                "course/probes", "course/grading/__init__.py", "course/grading/runner.py", "course/grading/wire.py",
                "course/grading/sandbox.py")
#: Device files a sandbox may use.
DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
#: Environment variables a sandbox inherits by name from the worker (numerics and framework quietness only).
ENV_PASSED = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "KERAS_BACKEND", "OMP_NUM_THREADS",
              "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE")

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
    """New PID, network, IPC and UTS namespaces (the PID namespace for this process's future children).

    The mount namespace is the sandbox's own (:func:`build_root`): ``pivot_root`` moves the root of every
    process of a mount namespace, and the helper must keep seeing the host (the control groups' counters).
    """
    _check(_libc.unshare(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")


# --- the allow-list root -------------------------------------------------------------------------------------

def allowed_paths(course_root: str) -> list[str]:
    """What a sandbox's root holds read-only, at the same absolute paths; computed once per worker.

    ``sys.path`` gives the standard library and the packages, minus the repository itself (its course files are
    listed one by one). The system's shared-library folders are the ones the loader searches.
    """
    course_root = os.path.realpath(course_root)
    paths = []
    for entry in sys.path:
        real = os.path.realpath(entry) if entry else ""
        if real and real != course_root and os.path.isdir(real) and not _contains(real, course_root):
            paths.append(real)
    for name in COURSE_FILES:
        if os.path.exists(os.path.join(course_root, name)):
            paths.append(os.path.join(course_root, name))
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for system in (f"/usr/lib/{multiarch}" if multiarch else "/usr/lib", "/usr/lib64", "/etc/ld.so.cache"):
        if os.path.exists(system):
            paths.append(os.path.realpath(system))
    return sorted(set(paths))


def _contains(folder: str, path: str) -> bool:
    """Whether ``path`` is ``folder`` or inside it (binding it would expose ``path``)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_MOUNT_SETATTR = 428, 429, 442  # x86_64 and arm64 share these numbers
_AT_FDCWD, _OPEN_TREE_CLONE, _AT_RECURSIVE, _AT_EMPTY_PATH, _MOVE_MOUNT_F_EMPTY_PATH = -100, 1, 0x8000, 0x1000, 4
_MOUNT_ATTR_RDONLY, _MOUNT_ATTR_NOSUID, _MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def _clone_tree(path: str, flags: int) -> int:
    """A detached copy of the mount tree at ``path`` (a bind mount not yet attached), with mount flags set."""
    fd = _libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, path.encode(), _OPEN_TREE_CLONE | _AT_RECURSIVE)
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"open_tree {path}: {os.strerror(ctypes.get_errno())}")
    attr = _MountAttr(flags, 0, 0, 0)
    _check(_libc.syscall(_SYS_MOUNT_SETATTR, fd, b"", _AT_EMPTY_PATH | _AT_RECURSIVE, ctypes.byref(attr),
                         ctypes.c_size_t(ctypes.sizeof(attr))), f"mount_setattr {path}")
    return fd


def _attach(fd: int, target: str) -> None:
    _check(_libc.syscall(_SYS_MOVE_MOUNT, fd, b"", _AT_FDCWD, target.encode(), _MOVE_MOUNT_F_EMPTY_PATH),
           f"move_mount {target}")
    os.close(fd)


def _mount_tmpfs(target: str, options: str, flags: int = MS_NOSUID | MS_NODEV) -> None:
    _check(_libc.mount(b"tmpfs", target.encode(), b"tmpfs", flags, options.encode()), f"mount tmpfs on {target}")


def _make_mount_point(new_root: str, path: str, is_dir: bool) -> str:
    target = new_root + path
    os.makedirs(target if is_dir else os.path.dirname(target), mode=0o755, exist_ok=True)
    if not is_dir and not os.path.exists(target):
        open(target, "w").close()
    return target


def build_root(allowed: list[str], scratch_mb: int, uid: int) -> None:
    """Replace this process's root by the allow-list root (as PID 1 of a new PID namespace, still root).

    Every allowed path is first cloned as a detached bind mount (read-only, nosuid, nodev), so none of them
    needs to stay reachable while the new root is assembled; then the new root is a fresh tmpfs, the clones are
    attached at their original paths, and ``pivot_root`` makes it ``/`` and lets the old root go.
    """
    _check(_libc.unshare(CLONE_NEWNS), "unshare the mount namespace")
    # Our mounts must not propagate back to the host.
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    trees = [(path, os.path.isdir(path), _clone_tree(path, _MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID |
                                                      _MOUNT_ATTR_NODEV)) for path in allowed]
    devices = [(path, _clone_tree(path, _MOUNT_ATTR_NOSUID)) for path in DEVICES if os.path.exists(path)]
    new_root = "/tmp"  # any existing folder: the new root's tmpfs covers it in this mount namespace only
    _mount_tmpfs(new_root, "size=4m,mode=0755")
    # One scratch tmpfs for /tmp and one for /dev/shm: each may grow to the memory limit, and the control group
    # counts their pages together with the sandbox's memory. They go on first: a checkout that lives under /tmp
    # is then attached on top of the scratch folder, not hidden by it.
    for scratch in ("/tmp", "/dev/shm"):
        os.makedirs(new_root + scratch, exist_ok=True)
        _mount_tmpfs(new_root + scratch, f"size={scratch_mb}m,mode=1777")
    os.mkdir(new_root + WORKDIR, 0o700)
    os.chown(new_root + WORKDIR, uid, uid)
    for path, is_dir, fd in trees:
        _attach(fd, _make_mount_point(new_root, path, is_dir))
    for path, fd in devices:
        _attach(fd, _make_mount_point(new_root, path, is_dir=False))
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{new_root}/dev/{name}")
    for link in ("/lib", "/lib64", "/bin"):  # merged-/usr systems: the loader's paths go through these links
        if os.path.islink(link):
            os.symlink(os.readlink(link), new_root + link)
    os.makedirs(f"{new_root}/etc", exist_ok=True)
    with open(f"{new_root}/etc/passwd", "w") as handle:
        handle.write(f"root:x:0:0::/:/nonexistent\nstudent:x:{uid}:{uid}::{WORKDIR}:/nonexistent\n")
    with open(f"{new_root}/etc/group", "w") as handle:
        handle.write(f"root:x:0:\nstudent:x:{uid}:\n")
    os.makedirs(f"{new_root}/proc")
    _check(_libc.mount(b"proc", f"{new_root}/proc".encode(), b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
           "mount /proc")
    # The skeleton itself becomes read-only: the sandbox can write in its scratch folders only.
    _check(_libc.mount(None, new_root.encode(), None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None),
           "remount the new root read-only")
    os.chdir(new_root)
    _check(_libc.syscall(155 if os.uname().machine == "x86_64" else 41, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")


def clean_environment(uid: int) -> dict[str, str]:
    """The sandbox's whole environment: an allow-list, nothing else of the grader's."""
    env = {name: os.environ[name] for name in ENV_PASSED if name in os.environ}
    env.update(PATH="/usr/bin:/bin", HOME=WORKDIR, TMPDIR=WORKDIR, LANG="C.UTF-8", LC_ALL="C.UTF-8",
               USER="student", LOGNAME="student", MPLBACKEND="Agg", MPLCONFIGDIR=f"{WORKDIR}/.matplotlib",
               COURSE_SKIP_CHECKS="1", KERAS_HOME=f"{WORKDIR}/.keras")
    return env


def set_environment(env: dict[str, str]) -> None:
    """Replace the process environment (``os.environ`` and the C library's) by ``env``."""
    os.environ.clear()
    os.environ.update(env)


PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38


def on_parent_death(signum: int) -> None:
    """Have the kernel send ``signum`` to this process when its parent dies (a killed grader leaves no orphans)."""
    _libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)


def no_new_privileges() -> None:
    """No later ``exec`` can gain privileges (setuid bits, file capabilities)."""
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


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


def describe(cgroup_phrase: str) -> str:
    """The isolation a run's sandboxes had, for the grader's summary."""
    if not privileged():
        return ("REDUCED isolation (not root: rlimits and a private folder only; network, filesystem and "
                "other processes not cut off)")
    return ("full isolation (allow-list root filesystem; mount, PID, network, IPC and UTS namespaces; "
            f"{cgroup_phrase}; unprivileged user)")
