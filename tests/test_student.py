"""The student's commands: ``course start`` never overwrites, bad input is one line and exit 2, ``doctor`` names
a missing package with its fix, and every exercise says how to install the course instead of a traceback."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from course import doctor, workfolder
from course.notebooks import EXERCISES, ROOT

IDS = sorted(p.stem for p in EXERCISES.glob("[0-9][0-9]_*.ipynb"))


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_start_copies_every_exercise_then_never_overwrites(tmp_path):
    work = tmp_path / "work"
    first = run_cli("start", str(work))
    assert first.returncode == 0, first.stderr
    assert sorted(p.stem for p in work.glob("*.ipynb")) == IDS
    assert (work / "01_softmax.ipynb").read_bytes() == (EXERCISES / "01_softmax.ipynb").read_bytes()

    (work / "01_softmax.ipynb").write_text("my work in progress", encoding="utf-8")
    (work / "02_losses.ipynb").unlink()  # as if chapter 02 were new since the last start
    before = digest(work)
    second = run_cli("start", str(work))
    assert second.returncode == 0, second.stderr
    assert (work / "01_softmax.ipynb").read_text(encoding="utf-8") == "my work in progress"
    assert "added" in second.stdout and "02_losses.ipynb" in second.stdout
    assert "kept" in second.stdout and "01_softmax.ipynb" in second.stdout
    after = digest(work)
    assert {k: v for k, v in after.items() if k != "02_losses.ipynb"} == before


def test_start_keeps_a_file_that_appears_while_copying(tmp_path, monkeypatch):
    """The copy uses exclusive creation: a notebook saved between the check and the write is not replaced."""
    real_open = open

    def racing_open(path, mode="r", *args, **kwargs):
        if mode == "xb" and Path(path).name == "01_softmax.ipynb":
            Path(path).write_text("saved a moment ago", encoding="utf-8")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", racing_open)
    result = workfolder.start(tmp_path, ["01_softmax"])
    assert result.copied == [] and result.kept == ["01_softmax.ipynb"]
    assert (tmp_path / "01_softmax.ipynb").read_text(encoding="utf-8") == "saved a moment ago"


@pytest.mark.parametrize("args, words", [
    (["start", "{tmp}/no/such/parent"], "no such folder"),
    (["start", "{tmp}/a_file"], "not a folder"),
    (["start", "{tmp}", "99_nothing"], "no chapter 99_nothing"),
    (["check", "{tmp}/missing.ipynb"], "no such notebook"),
    (["check", "{tmp}/01_softmax.ipynb"], "not a notebook"),
    (["check", "{tmp}/notes.ipynb"], "not a notebook of any chapter"),
])
def test_bad_input_is_one_line_and_exit_2_and_nothing_is_modified(tmp_path, args, words):
    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    (tmp_path / "01_softmax.ipynb").write_text("this is not JSON", encoding="utf-8")
    notebook = json.loads((EXERCISES / "01_softmax.ipynb").read_text(encoding="utf-8"))
    notebook["cells"] = [c for c in notebook["cells"] if "Checker(" not in "".join(c["source"])]
    (tmp_path / "notes.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    before = digest(tmp_path)
    result = run_cli(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert digest(tmp_path) == before


def test_doctor_reports_a_missing_package_with_its_fix():
    requires = ["numpy==2.4.6", "torch==2.13.0", 'jupyterlab==4.6.6; extra == "lab"', 'pytest==1; extra == "test"']
    installed = {"numpy": "2.4.6", "jupyterlab": "4.5.0"}

    def version_of(name: str) -> str:
        if name not in installed:
            raise metadata.PackageNotFoundError(name)
        return installed[name]

    lines = doctor.diagnose(version_of=version_of, requires=requires, imports=False)
    by_name = {line.what: line for line in lines}
    assert by_name["numpy"].kind == doctor.OK
    assert by_name["torch"].kind == doctor.PROBLEM and "not installed" in by_name["torch"].seen
    assert by_name["torch"].fix == "pip install 'torch==2.13.0'"
    assert by_name["jupyterlab"].kind == doctor.PROBLEM and "4.5.0" in str(by_name["jupyterlab"])
    assert "pytest" not in by_name, "the test extra is not a student's concern"


def test_doctor_passes_on_this_environment_and_names_every_pin():
    lines = doctor.diagnose(imports=False)
    assert [str(line) for line in lines if line.kind == doctor.PROBLEM] == []
    pins = {line.what for line in lines}
    assert {"Python", "torch", "keras", "jupyterlab", "kernel"} <= pins


@pytest.mark.parametrize("chapter_id", IDS)
def test_first_cell_says_how_to_install_the_course_when_it_is_missing(tmp_path, chapter_id):
    notebook = json.loads((EXERCISES / f"{chapter_id}.ipynb").read_text(encoding="utf-8"))
    first = "".join(next(c for c in notebook["cells"] if c["cell_type"] == "code")["source"])
    # -I -S: no site-packages, so no course, as in a Python where it was never installed
    result = subprocess.run([sys.executable, "-I", "-S", "-c", first], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: the course is not installed") and "pip install" in last
    assert "Traceback" in result.stderr and result.stderr.count("\n") <= 4, "a short error, not a long traceback"


def test_check_names_a_numpy_only_question_that_uses_a_framework():
    from course.chapters import get_chapter
    from course.student_check import forbidden_uses

    chapter = get_chapter("01_softmax")
    numpy_only = [q.name for q in chapter.questions if q.apis == "numpy"]
    assert numpy_only, "01_softmax's questions are NumPy only"
    name = numpy_only[0]
    cells = ["import numpy as np\nimport torch.nn.functional as F",
             f"def {name}(logits, axis=-1):\n    return F.softmax(torch_tensor(logits), dim=axis)",
             "def unrelated():\n    return F.relu"]
    problems = forbidden_uses(cells, chapter)
    assert len(problems) == 1 and problems[0].startswith(f"`{name}` uses torch")
    assert forbidden_uses(["import numpy as np", f"def {name}(logits, axis=-1):\n    return np.exp(logits)"],
                          chapter) == []


def test_the_wheel_carries_the_exercises_and_start_works_from_it(tmp_path):
    """What `make dist` builds, installed outside the repository: `course start` copies the packaged notebooks."""
    import shutil

    source = tmp_path / "source"  # a copy, so that building leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "course", source / "course", ignore=shutil.ignore_patterns("__pycache__", "exercises"))
    shutil.copytree(EXERCISES, source / "exercises")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("course-*.whl")
    site = tmp_path / "site"
    installed = subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    started = subprocess.run([sys.executable, "-m", "course", "start", str(tmp_path / "work")], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120, env=env)
    assert started.returncode == 0, started.stderr
    where = subprocess.run([sys.executable, "-c", "from course import workfolder; print(workfolder.exercise_folder())"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert where.stdout.strip() == str(site / "course" / "exercises"), where.stdout + where.stderr
    for chapter_id in IDS:
        assert (tmp_path / "work" / f"{chapter_id}.ipynb").read_bytes() == \
            (EXERCISES / f"{chapter_id}.ipynb").read_bytes()
