"""Generated submissions for the grader's tests and benchmark: a class of students, honest ones and attackers.

Each attack is a notebook built from code cells, with the points it must get out of 10 (chapter 01_softmax:
softmax 3, log_softmax 3, cross_entropy_from_logits 4). ``None`` means "checked by the test itself".
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = "01_softmax"

HEADER = """import course
import numpy as np
from course.check import Checker

check = Checker("01_softmax")"""

SOFTMAX = """def softmax(logits, axis=-1):
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)"""

LOG_SOFTMAX = """def log_softmax(logits, axis=-1):
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))"""

CROSS_ENTROPY = """def cross_entropy_from_logits(logits, labels):
    log_probs = log_softmax(logits, axis=-1)
    return -np.mean(log_probs[np.arange(len(labels)), labels])"""

#: The classic mistake: no shift by the maximum, so large logits overflow to NaN.
WRONG_SOFTMAX = """def softmax(logits, axis=-1):
    e = np.exp(logits)
    return e / e.sum(axis=axis, keepdims=True)"""

#: Wrong on every case, so an attack that "wins" would show as points above 7.
ZERO_SOFTMAX = """def softmax(logits, axis=-1):
    return np.zeros_like(np.asarray(logits, dtype=float))"""

#: log(softmax): -inf where a probability underflows, and so is every function built on it.
LOG_OF_SOFTMAX = "def log_softmax(logits, axis=-1):\n    return np.log(softmax(logits, axis))"

STUB = {name: f"def {name}(*args, **kwargs):\n    raise NotImplementedError('Replace this line with your solution.')"
        for name in ("softmax", "log_softmax", "cross_entropy_from_logits")}


def notebook(*cells: str) -> str:
    """A notebook (JSON text) with one code cell per argument, markdown between them like a real exercise."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for number, source in enumerate(cells):
        nb.cells.append(nbformat.v4.new_markdown_cell(f"Step {number + 1}"))
        nb.cells.append(nbformat.v4.new_code_cell(source))
    return nbformat.writes(nb)


def correct(*extra: str, softmax: str = SOFTMAX, log_softmax: str = LOG_SOFTMAX,
            cross_entropy: str = CROSS_ENTROPY, before: tuple[str, ...] = ()) -> str:
    """A correct submission, with any part replaced, ``before`` cells after the header and ``extra`` at the end."""
    return notebook(HEADER, *before, softmax, 'check("softmax", softmax)', log_softmax,
                    'check("log_softmax", log_softmax)', cross_entropy,
                    'check("cross_entropy_from_logits", cross_entropy_from_logits)', *extra)


def attacks(paths: dict[str, str]) -> dict[str, tuple[str, float | None]]:
    """Student name -> (notebook text, expected points of 10). ``paths`` names the grader's private places."""
    seed, out, other = paths["seed"], paths["out"], paths["other"]
    port = paths["port"]
    leak_if = """def _leaks(action):
    try:
        action()
        return True
    except Exception:
        return False
"""
    return {
        "correct": (correct(), 10),
        "real solution notebook": ((ROOT / "solutions" / f"{CHAPTER}.ipynb").read_text(), 10),
        "stub": ((ROOT / "exercises" / f"{CHAPTER}.ipynb").read_text(), 0),
        "partial": (notebook(HEADER, SOFTMAX, LOG_OF_SOFTMAX, STUB["cross_entropy_from_logits"]), None),
        "wrong softmax": (correct(softmax=WRONG_SOFTMAX), None),
        # a cross-entropy that is right, on top of a log_softmax that is not: the feedback names log_softmax
        "inherits a bug": (correct(log_softmax=LOG_OF_SOFTMAX), None),
        "patch comparison helpers": (correct(softmax=ZERO_SOFTMAX, before=("""import math, torch, tensorflow as tf
np.allclose = lambda *a, **k: True
np.array_equal = lambda *a, **k: True
np.isclose = lambda *a, **k: np.ones(np.shape(a[0]), bool)
np.testing.assert_allclose = lambda *a, **k: None
math.isclose = lambda *a, **k: True
torch.allclose = lambda *a, **k: True
tf.debugging.assert_near = lambda *a, **k: None
import course.questions
course.questions.compare = lambda *a, **k: course.questions.Verdict(True, '')""",)), 7),
        "always equal object": (correct(softmax="""class AlwaysEqual(float):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __array__(self, *a, **k): return np.array(float('nan'))
def softmax(logits, axis=-1):
    return AlwaysEqual(1.0)"""), 7),
        "ipython hooks": (correct(softmax=ZERO_SOFTMAX, before=("""ip = get_ipython()
ip.input_transformers_post.append(lambda lines: [l.replace('raise', 'pass') for l in lines])
ip.events.register('post_run_cell', lambda *a: print('[PASS] softmax'))
ip.set_custom_exc((Exception,), lambda *a, **k: None)""",)), 7),
        "fake output": (correct("print('[PASS] softmax\\nsoftmax: 8 of 8 checks passed.\\nAll tests passed! 10/10')",
                                softmax=ZERO_SOFTMAX), 7),
        "sys exit cell": (correct(before=("import sys\nsys.exit(0)",)), 10),
        "os exit cell": (correct(before=("import os\nos._exit(0)",)), 10),
        "kill kernel cell": (correct(before=("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",)), 10),
        "os exit in function": (correct(softmax="def softmax(logits, axis=-1):\n    import os\n    os._exit(1)"), 7),
        "infinite loop cell": (correct(before=("while True:\n    pass",)), 10),
        "infinite loop in function": (correct(softmax="def softmax(logits, axis=-1):\n    while True:\n"
                                                  "        pass"), 7),
        "memory bomb cell": (correct(before=("hog = bytearray(64 * 1024 ** 3)",)), 10),
        "memory bomb in function": (correct(softmax="def softmax(logits, axis=-1):\n    hog = np.ones(8 * 1024 ** 3)\n"
                                                    "    return hog"), 7),
        "processes and threads": (correct(before=("""import os, threading, time, subprocess
def _spin():
    while True:
        time.sleep(0.01)
threading.Thread(target=_spin, daemon=False).start()
subprocess.Popen(['sleep', '600'])
if os.fork() == 0:
    time.sleep(600)
    os._exit(0)""",)), 10),
        "write outside": (correct(before=(f"""import os, pathlib
for target in [{out!r} + '/grades.csv', {out!r} + '/pwned.txt', {other!r} + '.pwned', {str(ROOT / 'course' / 'pwned.py')!r},
               '/etc/pwned', '/root/pwned', '/tmp/grader-test-pwned', '../pwned-next-door']:
    try:
        pathlib.Path(target).write_text('pwned')
    except Exception:
        pass""",)), 10),
        "read hidden things": (correct(before=(leak_if + f"""import socket
SEED = _leaks(lambda: open({seed!r}).read())
OTHER = _leaks(lambda: open({other!r}).read())
NET = _leaks(lambda: socket.create_connection(('127.0.0.1', {port}), timeout=2).close())""",),
            softmax=SOFTMAX.replace("def softmax(logits, axis=-1):", "def softmax(logits, axis=-1):\n    assert SEED"),
            log_softmax=LOG_SOFTMAX.replace("def log_softmax(logits, axis=-1):",
                                            "def log_softmax(logits, axis=-1):\n    assert OTHER"),
            cross_entropy=CROSS_ENTROPY.replace("def cross_entropy_from_logits(logits, labels):",
                                                "def cross_entropy_from_logits(logits, labels):\n    assert NET")), 0),
        "hard-coded visible answers": (correct(softmax="""from course.chapters import softmax as _chapter
_answers = {case.inputs['logits'].tobytes(): _chapter.framework_softmax(case.inputs['logits'], case.inputs.get('axis', -1))
            for case in _chapter.CHAPTER.question('softmax').cases()}
def softmax(logits, axis=-1):
    return _answers.get(np.asarray(logits).tobytes(), np.zeros_like(logits))"""), 7),
        "enormous output": (correct("print('x' * 10**8)", softmax="def softmax(logits, axis=-1):\n"
                                                                 "    return np.zeros(3 * 10**6)"), 7),
        "noisy but correct": (correct(softmax=SOFTMAX.replace("    shifted", "    import warnings, sys\n"
                                      "    warnings.warn('slow path')\n    print('computing...', file=sys.stderr)\n"
                                      "    shifted", 1)), 10),
        "magics": (correct(before=("%matplotlib inline\n!ls /\nfiles = !ls",), softmax="%%time\n" + SOFTMAX), 10),
    }


def write_class(root: Path, paths: dict[str, str]) -> dict[str, float | None]:
    """Write the whole test class under ``root``; returns each student's expected total (None: test decides)."""
    expected = {}
    for student, (text, points) in attacks(paths).items():
        folder = root / student
        folder.mkdir(parents=True)
        (folder / f"{CHAPTER}.ipynb").write_text(text, encoding="utf-8")
        expected[student] = points
    broken = {
        "empty file": b"",
        "truncated": correct().encode()[:700],
        "not json": os.urandom(2000),
        "json list": b"[1, 2, 3]",
        "no cells": json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(),
    }
    for student, data in broken.items():
        (root / student).mkdir()
        (root / student / f"{CHAPTER}.ipynb").write_bytes(data)
        expected[student] = 0
    huge = root / "enormous notebook"
    huge.mkdir()
    with open(huge / f"{CHAPTER}.ipynb", "wb") as handle:  # sparse: 30 MB on paper, nothing on disk
        handle.truncate(30 * 1024 * 1024)
    expected["enormous notebook"] = 0
    nested = root / "misnamed and nested" / "homework"
    nested.mkdir(parents=True)
    (nested / "01_Softmax (1).ipynb").write_text(correct(), encoding="utf-8")
    expected["misnamed and nested"] = 10
    (root / "José Ñúñez 李").mkdir()
    (root / "José Ñúñez 李" / f"{CHAPTER}.ipynb").write_text(correct(), encoding="utf-8")
    expected["José Ñúñez 李"] = 10
    (root / "nothing handed in").mkdir()
    expected["nothing handed in"] = 0
    (root / "linked notebook").mkdir()
    (root / "linked notebook" / f"{CHAPTER}.ipynb").symlink_to(root / "correct" / f"{CHAPTER}.ipynb")
    expected["linked notebook"] = 0
    (root / "linked folder").symlink_to(root / "correct")
    expected["linked folder"] = 0
    (root / "README.txt").write_text("not a student")
    return expected


def write_honest_class(root: Path, size: int) -> None:
    """A class of ``size`` ordinary students: mostly correct, some partial, some untouched (for the benchmark)."""
    kinds = [correct(), correct(softmax=WRONG_SOFTMAX), (ROOT / "exercises" / f"{CHAPTER}.ipynb").read_text(),
             correct(log_softmax=LOG_OF_SOFTMAX)]
    for number in range(size):
        folder = root / f"student{number:03d}"
        folder.mkdir(parents=True)
        nb = nbformat.reads(kinds[0] if number % 4 in (0, 1) else kinds[number % 4], as_version=4)
        # Real notebooks always differ a little (names, outputs): the grader runs identical files only once.
        nb.cells.append(nbformat.v4.new_markdown_cell(f"Handed in by {folder.name}."))
        (folder / f"{CHAPTER}.ipynb").write_text(nbformat.writes(nb), encoding="utf-8")


def copy_class(source: Path, target: Path) -> None:
    """Copy a class folder keeping symbolic links as links."""
    shutil.copytree(source, target, symlinks=True)
