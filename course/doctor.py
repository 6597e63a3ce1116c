"""``python -m course doctor``: is this Python ready for the course? One line per thing, with its fix.

Compares the installed packages with the course's own pins (read from the installed package's metadata, so it
works in the repository's ``.venv`` and after a ``pip install`` alike), reports the Keras backend and the kernel
JupyterLab will use, and times importing TensorFlow and torch in a fresh process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Callable

from packaging.requirements import Requirement

OK, PROBLEM, INFO = "ok", "PROBLEM", "info"
#: The extras whose pins a student's environment must satisfy.
EXTRAS = ("lab",)
#: Importing one framework slower than this (seconds) is reported: every kernel pays it.
SLOW_IMPORT = 30.0


@dataclass
class Line:
    """One finding: its kind (ok / PROBLEM / info), what was looked at, what was seen, and the fix."""

    kind: str
    what: str
    seen: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.kind:7} {self.what}: {self.seen}"
        return f"{text} -> fix: {self.fix}" if self.fix else text


def pinned_requirements(requires: list[str] | None = None) -> list[Requirement]:
    """The course's requirements that apply here (markers evaluated), its base ones and those of :data:`EXTRAS`."""
    if requires is None:
        requires = metadata.requires("course") or []
    chosen = []
    for text in requires:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in ("", *EXTRAS)):
            chosen.append(requirement)
    return chosen


def check_python() -> Line:
    try:
        allowed = metadata.metadata("course").get("Requires-Python") or ""
    except metadata.PackageNotFoundError:
        allowed = ""
    version = ".".join(map(str, sys.version_info[:3]))
    from packaging.specifiers import SpecifierSet

    if allowed and version not in SpecifierSet(allowed):
        return Line(PROBLEM, "Python", f"{version} at {sys.executable}, the course needs {allowed}",
                    f"create the environment with a Python {allowed} (python3.11 -m venv .venv)")
    return Line(OK, "Python", f"{version} at {sys.executable}")


def check_packages(requirements: list[Requirement],
                   version_of: Callable[[str], str] = metadata.version) -> list[Line]:
    """One line per pinned package: installed at the pinned version, another version, or missing."""
    lines = []
    for requirement in requirements:
        pin = str(requirement.specifier)
        install = f"pip install '{requirement.name}{pin}'"
        try:
            installed = version_of(requirement.name)
        except metadata.PackageNotFoundError:
            lines.append(Line(PROBLEM, requirement.name, f"not installed (the course pins {pin})", install))
            continue
        if requirement.specifier and installed not in requirement.specifier:
            lines.append(Line(PROBLEM, requirement.name, f"{installed} installed, the course pins {pin}", install))
        else:
            lines.append(Line(OK, requirement.name, installed))
    return lines


def check_kernel() -> Line:
    """The kernelspec ``python -m course lab`` gives JupyterLab (written when the lab starts)."""
    from . import lab

    path = lab.kernel_path()
    if not path.is_file():
        return Line(INFO, "kernel", f"python3 (course) will be written to {path} when the lab starts")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return Line(PROBLEM, "kernel", f"{path} is not valid JSON", f"delete it; `make lab` writes it again")
    if spec != lab.kernel_spec():
        return Line(PROBLEM, "kernel", f"{path} does not run {sys.executable} with the course's environment",
                    "delete it; `make lab` writes it again")
    return Line(OK, "kernel", f"python3 (course): {sys.executable} with {', '.join(lab.KERNEL_ENV)} set")


_IMPORT_PROBE = """
import json, time
import course
result = {}
for name in ("tensorflow", "torch"):
    start = time.perf_counter()
    try:
        __import__(name)
        result[name] = {"seconds": time.perf_counter() - start}
    except Exception as exc:
        result[name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
try:
    import keras
    result["keras_backend"] = keras.config.backend()
except Exception as exc:
    result["keras_backend"] = f"(keras does not import: {type(exc).__name__})"
print(json.dumps(result))
"""


def check_imports() -> list[Line]:
    """Import TensorFlow, torch and Keras in a fresh process with the kernel's environment, timed."""
    # The log variables as every kernel of the course has them; KERAS_BACKEND as this shell has it, so a backend
    # set elsewhere (~/.keras/keras.json, the environment) shows.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
    try:
        done = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True, env=env,
                              timeout=300)
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return [Line(PROBLEM, "frameworks", "importing TensorFlow and torch did not finish",
                     "run `make setup` (or reinstall the course) and try again")]
    lines = []
    for name, fix in (("tensorflow", "pip install the pinned tensorflow-cpu (see the package lines above)"),
                      ("torch", "pip install the pinned torch (see the package lines above)")):
        entry = result[name]
        if "error" in entry:
            lines.append(Line(PROBLEM, f"import {name}", entry["error"], fix))
        elif entry["seconds"] > SLOW_IMPORT:
            lines.append(Line(PROBLEM, f"import {name}", f"took {entry['seconds']:.1f} s",
                              "the disk or machine is very slow: close other programs, or use a local disk"))
        else:
            lines.append(Line(OK, f"import {name}", f"{entry['seconds']:.1f} s"))
    backend = result["keras_backend"]
    if backend == "tensorflow":
        lines.append(Line(OK, "Keras backend", "tensorflow"))
    else:
        lines.append(Line(PROBLEM, "Keras backend", backend,
                          "unset KERAS_BACKEND (or set it to tensorflow) and check ~/.keras/keras.json"))
    return lines


def diagnose(version_of: Callable[[str], str] = metadata.version, requires: list[str] | None = None,
             imports: bool = True) -> list[Line]:
    """Every finding, in the order they are printed."""
    try:
        requirements = pinned_requirements(requires)
    except metadata.PackageNotFoundError:
        return [check_python(), Line(PROBLEM, "course", "the course package is not installed in this Python",
                                     "pip install the course (the repository or its wheel)")]
    lines = [check_python(), *check_packages(requirements, version_of), check_kernel()]
    if imports:
        lines += check_imports()
    return lines


def run() -> int:
    """Print the findings; exit 1 if any is a problem."""
    lines = diagnose()
    for line in lines:
        print(line, flush=True)
    problems = sum(line.kind == PROBLEM for line in lines)
    print(f"{problems} problem(s) found." if problems else "Everything the course needs is in place.")
    return 1 if problems else 0
