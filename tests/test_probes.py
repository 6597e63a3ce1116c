"""The probe side (what runs beside student code) never reaches the judge side (oracles, mistakes, judges)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from course.chapters import all_chapters
from course.probes import all_probes

PROBES_DIR = Path(__file__).resolve().parent.parent / "course" / "probes"


def test_every_chapter_has_its_probes_and_the_questions_agree():
    chapters, probes = all_chapters(), all_probes()
    assert list(chapters) == list(probes)
    for chapter_id, chapter in chapters.items():
        side = probes[chapter_id]
        assert [q.name for q in chapter.questions] == [p.name for p in side.probes]
        for question in chapter.questions:
            probe = side[question.name]
            assert (question.probe, question.kind, question.apis) == (probe.run, probe.kind, probe.apis)


@pytest.mark.parametrize("path", sorted(PROBES_DIR.glob("*.py")), ids=lambda p: p.stem)
def test_probe_modules_import_nothing_from_the_judge_side(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            assert "chapters" not in module and "grading" not in module, f"{path.name} imports {module}"
        elif isinstance(node, ast.Import):
            assert not any("course.chapters" in alias.name for alias in node.names)


def test_what_the_sandbox_imports_leaves_the_judge_side_unloaded():
    """The modules a grading sandbox loads (probes, runner, the self-check in grader mode) pull in no oracle."""
    code = ("import json, os, sys; os.environ['COURSE_SKIP_CHECKS'] = '1'\n"
            "import course.probes, course.check, course.grading.runner, course.grading.wire\n"
            "course.probes.all_probes(); course.check.Checker('01_softmax')('softmax', print)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('course'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert "course.probes.softmax" in loaded
    assert not [m for m in loaded if m.startswith(("course.chapters", "course.grading.judging"))], loaded
