"""A hostile class for the isolation tests: each submission attacks one boundary of the sandbox.

Every attack is written so that it *earns points if it works*: the attacked function returns the right answer
only when the attack succeeded, so a sandbox that holds gives a lower, exact total (out of 10 for 01_softmax:
softmax 3, log_softmax 3, cross_entropy_from_logits 4). Children and spinning processes end on their own after a
few seconds, so even a run with reduced isolation leaves nothing running on a shared machine.
"""
from __future__ import annotations

from pathlib import Path

from classroom import CHAPTER, SOFTMAX, correct

#: The sandbox memory limit the tests grade with (MB); the memory attacks use about three times as much.
MEMORY_MB = 512


def _indent(code: str) -> str:
    return "\n".join("    " + line for line in code.strip().splitlines())


def _with_softmax(setup: str, condition: str, in_cell: bool = True) -> str:
    """A submission whose softmax is right only if ``condition`` holds after ``setup`` ran (in a cell of its
    own, or inside softmax itself so that what happens is charged to the question)."""
    inside = "" if in_cell else "\n".join("    " + line for line in setup.strip().splitlines()) + "\n"
    body = SOFTMAX.replace("def softmax(logits, axis=-1):\n", "def softmax(logits, axis=-1):\n" + inside +
                           f"    assert {condition}, 'the attack failed'\n")
    return correct(softmax=body, before=(setup,) if in_cell else ())


FRAME_HELPERS = """import os, struct, io, zipfile
def _result_fd():
    for name in os.listdir('/proc/self/fd'):
        try:
            if os.readlink(f'/proc/self/fd/{name}').startswith('pipe:'):
                return int(name)
        except OSError:
            pass
def _send(head, payload=b'', lengths=None):
    fd = _result_fd()
    os.write(fd, struct.pack('<QQ', *(lengths or (len(head), len(payload)))) + head + payload)
"""

NPZ_BOMB = """buffer = io.BytesIO()
with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_DEFLATED) as archive:
    with archive.open('c0k0.npy', 'w', force_zip64=True) as member:
        header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000,), }"
        header = header + ' ' * (117 - len(header)) + '\\n'
        member.write(b'\\x93NUMPY\\x01\\x00' + struct.pack('<H', len(header)) + header.encode())
        zeros = bytes(1 << 20)
        for _ in range(64):  # 64 MB once expanded, about 64 kB deflated
            member.write(zeros)
BOMB = buffer.getvalue()
"""
SEND_BOMB = """_send(b'{"t": "q_end", "cases": [{"status": "ok", "keys": ["p"]}]}', BOMB)
import time; time.sleep(30)
"""

HUGE_HEADER_NPZ = """buffer = io.BytesIO()
with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_DEFLATED) as archive:
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (4000000000,), }"
    header = header + ' ' * (117 - len(header)) + '\\n'
    archive.writestr('c0k0.npy', b'\\x93NUMPY\\x01\\x00' + struct.pack('<H', len(header)) + header.encode() +
                     bytes(1 << 16))
_send(b'{"t": "q_end", "cases": []}', buffer.getvalue())
import time; time.sleep(30)
"""

DEEP_JSON = """_send(b'{"t": "q_end", "cases": ' + b'[' * 300000 + b']' * 300000 + b'}')
import time; time.sleep(30)
"""

OVERSIZED = """_send(b'', lengths=(5 * 1024 * 1024, 1 << 40))
import time; time.sleep(30)
"""

SHARED_MEMORY = f"""import mmap
shared = mmap.mmap(-1, {3 * MEMORY_MB} * 1024 * 1024)
for offset in range(0, len(shared), 4096):
    shared[offset] = 1
HELD = True
"""

TMPFS_FILES = """import os, tempfile
written = 0
chunk = b'x' * (1 << 20)
for folder in ('/dev/shm', tempfile.gettempdir()):
    for number in range(24):  # 63 MB files: each under the file-size limit, together far over memory
        try:
            with open(os.path.join(folder, f'fill{number}'), 'wb') as handle:
                for _ in range(63):
                    handle.write(chunk)
                    written += len(chunk)
        except OSError:
            break
"""

FORKED_CHILDREN = f"""import os, select, time
import numpy as _np
readers, children = [], []
for _ in range(3):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        hog = _np.ones({MEMORY_MB - 100} * 1024 * 1024 // 8)
        os.write(w, b'k')
        time.sleep(20)
        os._exit(0)
    os.close(w)
    readers.append(r)
    children.append(pid)
held = 0
deadline = time.time() + 15
while readers and time.time() < deadline:
    ready, _, _ = select.select(readers, [], [], 1)
    for r in ready:
        held += len(os.read(r, 1)) == 1
        readers.remove(r)
for pid in children:
    try:
        os.kill(pid, 9)
    except OSError:
        pass
"""

CPU_HOG = """import os, time
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        end = time.time() + 20
        while time.time() < end:
            pass
        os._exit(0)
    children.append(pid)
time.sleep(2)
def _cpu_group(pid):
    with open(f'/proc/{pid}/cgroup') as handle:
        return [line for line in handle if 'cpu' in line.split(':')[1].split(',') or line.startswith('0::')]
ESCAPED = [pid for pid in children if not any('slot-' in line for line in _cpu_group(pid))]
"""

WORLD_WRITABLE = """import os
LEFT = []
for folder in ('/run/lock', '/var/tmp', '/var/lock', '/dev/mqueue', '/home', '/run/shm', '/var/crash'):
    try:
        with open(os.path.join(folder, 'isolation-test-TAG'), 'w') as handle:
            handle.write('left behind')
        LEFT.append(folder)
    except OSError:
        pass
"""


def repository_reader(root: Path) -> str:
    return f"""import pathlib
root = pathlib.Path({str(root)!r})
READ = []
for path in (root / '.git', root / '.git' / 'HEAD', root / 'solutions' / '{CHAPTER}.ipynb',
             root / 'course' / 'chapters' / 'softmax.py', root / 'tests' / 'test_grading.py', root / 'pyproject.toml'):
    try:
        READ.append(path.read_text()[:2000])
    except OSError:
        pass
if READ:
    raise RuntimeError('read: ' + ' | '.join(READ))
"""


ENVIRONMENT_READER = """import os, glob
SEEN = repr(dict(os.environ))
for path in glob.glob('/proc/*/environ'):
    try:
        SEEN += open(path, 'rb').read().decode('latin-1')
    except OSError:
        pass
print(SEEN)
"""

IMPORT_JUDGE = """IMPORTED = []
for name in ('course.chapters', 'course.chapters.softmax', 'course.grading.judging', 'course.grading.pipeline'):
    try:
        __import__(name)
        IMPORTED.append(name)
    except Exception:
        pass
"""

LEAK_WRITER = """import secrets
MESSAGE = 'LEAK' + secrets.token_hex(8)
raise ValueError(MESSAGE)"""

#: Scans its own memory for another student's marker or code; a regex, so the needle never matches itself.
LEAK_READER = """import ctypes, re
PATTERNS = [re.compile(rb'LEAK[0-9a-f]{16}'), re.compile(rb'LEAK-ROW[0-9a-f]{16}'),
            re.compile(rb'honest neighbour number [0-9]')]
FOUND = []
with open('/proc/self/maps') as maps:
    regions = [line.split() for line in maps]
for fields in regions:
    start, end = (int(x, 16) for x in fields[0].split('-'))
    if not fields[1].startswith('rw') or fields[5:] not in ([], ['[heap]']) or end - start > 512 * 1024 * 1024:
        continue  # anonymous, writable memory (the heap and Python's arenas) is where old objects would linger
    for chunk_start in range(start, end, 16 << 20):
        size = min(16 << 20, end - chunk_start)
        try:
            data = ctypes.string_at(chunk_start, size)
        except Exception:
            continue
        for pattern in PATTERNS:
            FOUND += pattern.findall(data)
"""


def honest(number: int) -> str:
    """An honest student, a little different from the others (identical files would be graded once)."""
    return correct(f"# honest neighbour number {number}")


def attacks(root: Path, tag: str) -> dict[str, tuple[str, float]]:
    """Student name -> (notebook, expected total of 10) for the privileged run."""
    frame = lambda code: _with_softmax(FRAME_HELPERS + code, "False", in_cell=False)  # noqa: E731
    return {
        "honest 1": (honest(1), 10),
        "honest 2": (honest(2), 10),
        "honest 3": (honest(3), 10),
        "shared memory": (_with_softmax(SHARED_MEMORY, "HELD"), 7),
        "tmpfs files": (_with_softmax(TMPFS_FILES, f"written > {3 * MEMORY_MB} * 1024 * 1024"), 7),
        "forked children": (_with_softmax(FORKED_CHILDREN, "held == 3"), 7),
        "npz bomb": (correct(softmax=SOFTMAX.replace(":\n", ":\n" + _indent(SEND_BOMB) + "\n", 1),
                             before=(FRAME_HELPERS + NPZ_BOMB,)), 7),
        "npz huge header": (frame(HUGE_HEADER_NPZ), 7),
        "deeply nested frame": (frame(DEEP_JSON), 7),
        "oversized frame": (frame(OVERSIZED), 7),
        "escaped code over the header cap": (correct("# " + "\U0001F600" * 1_000_000), 10),
        "cpu hog": (_with_softmax(CPU_HOG, "ESCAPED"), 7),
        "world-writable folders": (_with_softmax(WORLD_WRITABLE.replace("TAG", tag), "LEFT"), 7),
        "reads the repository": (correct(repository_reader(root)), 10),
        "repository in answers": (_with_softmax(repository_reader(root).replace("raise RuntimeError", "str"),
                                                "READ"), 7),
        "reads the environment": (correct(ENVIRONMENT_READER + "raise RuntimeError('environment: ' + SEEN)"), 10),
        "environment in answers": (_with_softmax(ENVIRONMENT_READER, "'GRADER_API_TOKEN' in SEEN"), 7),
        "imports the judge side": (_with_softmax(IMPORT_JUDGE, "IMPORTED"), 7),
        "aa leaves a cell error": (correct(LEAK_WRITER), 10),
        "zz reads the worker's memory": (_with_softmax(LEAK_READER, "FOUND"), 7),
    }


def write(root: Path, students: dict[str, tuple[str, float]]) -> dict[str, float]:
    """Write the class; returns each student's expected total."""
    for student, (text, _) in students.items():
        (root / student).mkdir(parents=True)
        (root / student / f"{CHAPTER}.ipynb").write_text(text, encoding="utf-8")
    return {student: points for student, (_, points) in students.items()}

