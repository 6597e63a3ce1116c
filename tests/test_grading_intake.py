"""Every byte from a submission distrusted on the grader's side (issue 10, the intake half).

One small class is graded once by the real command (module fixture), then again from the cache; the other rows are
checked on the grader's parts directly (no sandbox needed). Each test names the submission, the grade it must get
and what must not happen.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "grading_fixtures"))
import classroom  # noqa: E402

from course.errors import CourseError  # noqa: E402
from course.grading import cache, discover, feedback, gradebook, judging, pipeline, reading, text  # noqa: E402
from course.questions import Case, Chapter, Question, Verdict, compare, to_plain  # noqa: E402

PYTHON = sys.executable
LIMITS = ["--timeout", "60", "--question-timeout", "5", "--cell-timeout", "5", "--memory", "1024", "--no-progress"]
LATIN1 = os.fsdecode(b"Jos\xe9 (latin-1 zip)")
SURROGATE = """def softmax(logits, axis=-1):
    raise ValueError("bad \\ud800 value")
raise RuntimeError("cell \\udcff \\ud800")"""
BANG = "\n".join(f"!echo {i}" for i in range(3000))
TORCH_SOFTMAX = """import torch
def softmax(logits, axis=-1):
    return torch.softmax(torch.as_tensor(logits), dim=axis).numpy()"""
TAMPER = classroom.SOFTMAX.replace("    shifted", "    import sys\n    sys.setprofile(None)\n    shifted", 1)

#: student folder -> (notebook text, points of 10)
CLASS = {
    "correct": (classroom.correct(), 10),
    "=HYPERLINK(\"x\",\"y\")": (classroom.correct(), 10),
    "+cmd": (classroom.correct(), 10),
    "@SUM(1)": (classroom.correct(), 10),
    LATIN1: (classroom.correct(), 10),
    "surrogates": (classroom.correct(softmax=SURROGATE), 7),
    "many bang lines": (classroom.correct(before=(BANG,)), 10),
    "torch in a numpy question": (classroom.correct(softmax=TORCH_SOFTMAX), 7),
    "switches the watch off": (classroom.correct(softmax=TAMPER), 7),
}


def grade(submissions: Path, out: Path, seed: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [PYTHON, "-m", "course", "grade", str(submissions), "--out", str(out), "--secret-file", str(seed),
               "--workers", "1", *LIMITS, *extra]
    return subprocess.run(command, cwd=classroom.ROOT, capture_output=True, text=True, timeout=400)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("intake")
    submissions, out, seed = base / "submissions", base / "out", base / "seed"
    for student, (text_, _) in CLASS.items():
        (submissions / student).mkdir(parents=True)
        (submissions / student / f"{classroom.CHAPTER}.ipynb").write_text(text_, encoding="utf-8")
    # one student's draft of a chapter nobody was assigned: graded into nobody's rows
    (submissions / "correct" / "02_losses_draft.ipynb").write_text(classroom.correct(), encoding="utf-8")
    # a notebook in a sub-folder whose name is Latin-1 bytes
    nested = submissions / "nested latin-1" / os.fsdecode(b"d\xe9p\xf4t")
    nested.mkdir(parents=True)
    (nested / "01_Softmax.ipynb").write_text(classroom.correct(), encoding="utf-8")
    # a hard link to a solution notebook kept outside the submissions; a FIFO
    solution = base / "solution.ipynb"
    solution.write_text(classroom.correct(), encoding="utf-8")
    (submissions / "hard link").mkdir()
    os.link(solution, submissions / "hard link" / f"{classroom.CHAPTER}.ipynb")
    (submissions / "fifo").mkdir()
    os.mkfifo(submissions / "fifo" / f"{classroom.CHAPTER}.ipynb")
    first = grade(submissions, out, seed)
    # the re-run comes from the cache, in this process (cheaper than another command): it must not fail either
    again = pipeline.grade(pipeline.Options(submissions, out, workers=1, secret_file=seed, progress=False,
                                            limits=_limits()))
    rows = read_csv(out / "grades.csv") if (out / "grades.csv").exists() else []
    totals: dict[str, float] = {}
    for row in rows:
        totals[row["student"]] = totals.get(row["student"], 0.0) + float(row["points"])
    return {"out": out, "first": first, "again": again, "rows": rows, "totals": totals,
            "by": {(r["student"], r["question"]): r for r in rows}}


def _limits():
    from course.grading.sandbox import Limits

    return Limits(memory_mb=1024, cell_seconds=5.0, question_seconds=5.0, submission_seconds=60.0)


def test_the_run_and_its_cached_rerun_finish_with_a_gradebook(graded):
    result = graded["first"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "01_softmax (handed in by most students" in result.stdout
    assert graded["again"].graded == 0 and graded["again"].cached == 10
    assert (graded["out"] / "grades.csv").read_bytes().decode("utf-8")  # valid UTF-8 throughout


@pytest.mark.parametrize("student, points", [(text.name(s), p) for s, (_, p) in CLASS.items()] +
                         [("nested latin-1", 10), ("hard link", 0), ("fifo", 0)])
def test_each_submission_gets_its_grade(graded, student, points):
    shown = student if not student.startswith(("=", "+", "@")) else "'" + student
    rows = [r for r in graded["rows"] if r["student"] == shown]
    assert len(rows) == 3, sorted(graded["totals"])
    assert graded["totals"][shown] == pytest.approx(points), [(r["question"], r["status"], r["message"])
                                                              for r in rows]


def test_surrogates_and_latin1_names_are_shown_escaped(graded):
    assert "Jos\\xe9 (latin-1 zip)" in graded["totals"]
    row = graded["by"][("surrogates", "softmax")]
    assert row["status"] == "error" and "bad \\ud800 value" in row["message"]
    page = (graded["out"] / "feedback" / "surrogates" / "01_softmax.html").read_text(encoding="utf-8")
    assert "cell \\xff \\ud800" in page  # the cell error, escaped, in the student's notes
    report = (graded["out"] / "report.html").read_text(encoding="utf-8")
    assert "graded &#x27;d\\xe9p\\xf4t/01_Softmax.ipynb&#x27;" in report


def test_no_csv_cell_is_a_formula(graded):
    for name in ("grades.csv", "summary.csv"):
        with open(graded["out"] / name, newline="", encoding="utf-8") as handle:
            cells = [cell for row in csv.reader(handle) for cell in row]
        formulas = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert formulas == [], formulas
    assert graded["by"][("'=HYPERLINK(\"x\",\"y\")", "softmax")]["status"] == "passed"


def test_a_stray_notebook_is_flagged_not_graded_into_everyones_rows(graded):
    assert {r["notebook"] for r in graded["rows"]} == {"01_softmax"}
    page = (graded["out"] / "feedback" / "correct" / "01_softmax.html").read_text(encoding="utf-8")
    assert "not graded (not part of this assignment): &#x27;02_losses_draft.ipynb&#x27;" in page
    report = (graded["out"] / "report.html").read_text(encoding="utf-8")
    assert "Notebooks not part of the assignment (not graded) (1)" in report
    assert "correct: 02_losses_draft.ipynb" in report


def test_links_and_special_files_are_unreadable_with_a_reason(graded):
    link = graded["by"][("hard link", "softmax")]
    assert link["status"] == "unreadable" and "2 hard links" in link["message"]
    fifo = graded["by"][("fifo", "softmax")]
    assert fifo["status"] == "unreadable" and "a FIFO" in fifo["message"]


def test_many_ipython_lines_are_bounded_and_noted(graded):
    page = (graded["out"] / "feedback" / "many bang lines" / "01_softmax.html").read_text(encoding="utf-8")
    assert "too much IPython syntax (magics, &#x27;!&#x27; lines) to translate" in page


def test_a_forbidden_call_costs_the_question_with_a_clear_message(graded):
    row = graded["by"][("torch in a numpy question", "softmax")]
    assert row["status"] == "forbidden" and row["points"] == "0.00"
    assert "uses torch.as_tensor; this question asks for NumPy only" in row["message"]
    tamper = graded["by"][("switches the watch off", "softmax")]
    assert tamper["status"] == "forbidden" and "call watch" in tamper["message"]
    assert "Forbidden calls" in (graded["out"] / "report.html").read_text(encoding="utf-8")


#: Three of the class above as an LMS knows them: (folder, name, LMS id).
LMS_CLASS = [("correct", "Ada Lovelace", "501"), ("surrogates", "Ñúñez, José", "502"),
             ("torch in a numpy question", "Grace Hopper", "503")]


def test_a_canvas_zip_and_a_moodle_folder_grade_like_the_plain_layout(graded, tmp_path):
    """The same notebooks in Canvas's zip and Moodle's folders: the same rows per student, all from the cache."""
    import json
    import shutil
    import zipfile

    roster = tmp_path / "roster.csv"
    roster.write_text("Name,ID,Email\n" + "".join(f'"{name}",{lms_id},{folder.split()[0]}@x.example\n'
                                                   for folder, name, lms_id in LMS_CLASS), encoding="utf-8")
    canvas = tmp_path / "canvas.zip"
    with zipfile.ZipFile(canvas, "w") as archive:
        for number, (folder, name, lms_id) in enumerate(LMS_CLASS):
            late = "_LATE" if number == 1 else ""
            archive.writestr(f"{name.split()[-1].lower()}{late}_{lms_id}_{9000 + number}_{classroom.CHAPTER}.ipynb",
                             CLASS[folder][0])
    moodle = tmp_path / "moodle"
    for folder, name, lms_id in LMS_CLASS:
        (moodle / f"{name}_{lms_id}_assignsubmission_file_").mkdir(parents=True)
        (moodle / f"{name}_{lms_id}_assignsubmission_file_" / f"{classroom.CHAPTER}.ipynb").write_text(
            CLASS[folder][0], encoding="utf-8")
    plain = {lms_id: sorted((r["question"], r["points"], r["status"], r["message"]) for r in graded["rows"]
                            if r["student"] == folder) for folder, _, lms_id in LMS_CLASS}
    for submissions in (canvas, moodle):
        out = tmp_path / f"out-{submissions.stem}"
        shutil.copytree(graded["out"] / ".cache", out / ".cache")  # identical bytes: graded once, by the fixture
        outcome = pipeline.grade(pipeline.Options(submissions, out, workers=1, secret_file=graded["out"].parent / "seed",
                                                  progress=False, limits=_limits(), chapters=[classroom.CHAPTER],
                                                  roster=roster))
        assert (outcome.graded, outcome.cached) == (0, 3)
        students = json.loads((out / "identities.json").read_text(encoding="utf-8"))["students"]
        rows = read_csv(out / "grades.csv")
        mine = {students[s]["lms_id"]: sorted((r["question"], r["points"], r["status"], r["message"])
                                              for r in rows if r["student"] == s) for s in students}
        assert mine == plain, submissions.name


# --- the parts, without a sandbox -------------------------------------------------------------------------------

def test_text_is_made_valid_utf8_and_keeps_the_name_visible():
    assert text.clean("a\ud800b\udce9\x00c") == "a\\ud800b\\xe9\\x00c"
    assert text.name(b"caf\xe9") == "caf\\xe9" and text.name("ok\tname") == "ok\\x09name"
    assert text.clean_tree({"k\ud800": ["x\udcff", 1, None]}) == {"k\\ud800": ["x\\xff", 1, None]}
    assert len(text.clean("x" * 50, 20)) == 20 and text.clean("x" * 50, 20).endswith("[truncated]")
    assert text.capped("y" * 100, 20).endswith("[truncated]") and len(text.capped("y" * 100, 20)) == 20
    for value in ("=1+1", "+cmd", "-2+3", "@A1", "\tx", "\rx"):
        assert text.csv_cell(value)[0] not in "=+-@\t\r"
    assert text.csv_cell("-2.50") == "-2.50" and text.csv_cell("Ann") == "Ann"


def test_every_csv_the_grader_writes_goes_through_the_safe_cell():
    row = judging.QuestionGrade("=cmd|' /C calc'!A0", "01_softmax", "softmax", 1.0, 3, "passed", "@SUM(A1)")
    for output in (gradebook.grades_csv([row], {}), gradebook.summary_csv([row])):
        assert "\n=cmd" not in output and "'=cmd" in output
    assert ",'@SUM(A1)" in gradebook.grades_csv([row], {})


def test_assigned_chapters_come_from_the_instructor_or_a_clear_majority(tmp_path):
    for student in ("ann", "bob", "cy"):
        (tmp_path / student).mkdir()
        (tmp_path / student / "01_softmax.ipynb").write_text("{}")
    (tmp_path / "cy" / "02_losses_draft.ipynb").write_text("{}")
    known = ["01_softmax", "02_losses"]
    assert discover.majority_chapters(tmp_path, known) == ["01_softmax"]
    assert discover.stray_notebooks(tmp_path, "cy", ["01_softmax"]) == ["02_losses_draft.ipynb"]
    spec = tmp_path.parent / f"{tmp_path.name}-assignment.toml"
    spec.write_text('chapters = ["02_losses", "01_softmax"]\n[points]\n02_losses = 20\n')
    assignment = discover.load_assignment(spec, known)
    assert assignment.chapters == ["02_losses", "01_softmax"] and assignment.points == {"02_losses": 20.0}
    for bad, words in (('chapters = "01_softmax"', "a list of chapter ids"), ('chapters = ["99_x"]', "unknown"),
                       ('chapters = ["01_softmax"]\n[points]\n02_losses = 3', "not assigned"),
                       ("chapters = [", "TOML")):
        spec.write_text(bad)
        with pytest.raises(CourseError, match=words):
            discover.load_assignment(spec, known)


def test_points_of_an_assignment_rescale_the_summary():
    rows = [judging.QuestionGrade("ann", "01_softmax", q, p, m, "passed", "")
            for q, p, m in (("a", 3.0, 3), ("b", 0.0, 7))]
    summary = gradebook.summary_csv(rows, {"01_softmax": 20.0}).splitlines()
    assert summary[1] == "ann,6.00,6.00,20"


def test_the_command_line_refuses_both_options_and_a_bad_file(tmp_path):
    (tmp_path / "subs").mkdir()
    both = subprocess.run([PYTHON, "-m", "course", "grade", str(tmp_path / "subs"), "--out", str(tmp_path / "o"),
                           "--chapters", "01_softmax", "--assignment", "a.toml"], capture_output=True, text=True,
                          cwd=classroom.ROOT, timeout=120)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_only_a_regular_file_with_one_link_is_read(tmp_path):
    good = tmp_path / "good.ipynb"
    good.write_text("{}")
    assert reading.read_bytes(good) == b"{}"
    os.link(good, tmp_path / "second.ipynb")
    with pytest.raises(reading.Unreadable, match="2 hard links"):
        reading.read_bytes(good)
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "missing")
    with pytest.raises(reading.Unreadable, match="symbolic link"):
        reading.read_bytes(tmp_path / "link.ipynb")
    os.mkfifo(tmp_path / "fifo.ipynb")
    with pytest.raises(reading.Unreadable, match="FIFO"):
        reading.read_bytes(tmp_path / "fifo.ipynb")
    with pytest.raises(reading.Unreadable, match="folder"):
        reading.read_bytes(tmp_path)


def test_the_ipython_transform_is_bounded_and_deterministic():
    cells, notes = reading.to_python(["%matplotlib inline\nx = 1", BANG, "!ls"])
    assert cells[0].startswith("get_ipython().run_line_magic") and cells[2].startswith("get_ipython().system")
    assert cells[1] == BANG and notes == ["code cell(s) 2: too much IPython syntax (magics, '!' lines) to "
                                          "translate within the grader's budget; run as plain Python"]
    assert reading.to_python([BANG])[0] == cells[1:2]  # a budget of work, not of seconds: the same every time


def test_the_cache_is_looked_up_before_any_transform(tmp_path, monkeypatch):
    path = tmp_path / "nb.ipynb"
    path.write_text(classroom.notebook("!ls\n" * 100))
    chapter = pipeline.all_chapters()["01_softmax"]
    slot = pipeline.Slot(discover.Submission("ann", "01_softmax", path, folder="ann"), chapter)
    key = cache.key(path.read_bytes(), "01_softmax", b"secret" * 4, {})
    grades = judging.rows_without_run(chapter, "ann", "01_softmax", "error", "cached")
    cache.store(tmp_path / "cache", key, {"grades": [g.to_json() for g in grades], "run": {}})
    monkeypatch.setattr(reading, "transform", lambda source: pytest.fail("transformed before the cache lookup"))
    assert pipeline._prepare(slot, b"secret" * 4, {}, {}, [], tmp_path / "cache") is True
    assert [g.message for g in slot.grades] == ["cached"] * 3


def test_exotic_tensors_are_refused_with_what_they_are():
    torch = pytest.importorskip("torch")
    cases = {"meta": (torch.empty(3, device="meta"), "'meta' tensor"),
             "sparse": (torch.eye(3).to_sparse(), "sparse"),
             "complex": (torch.ones(2, dtype=torch.complex64), "complex"),
             "numpy complex": (np.ones(2, dtype=complex), "complex"),
             "object": (np.array([1, "a"], dtype=object), "object")}
    for label, (value, words) in cases.items():
        with pytest.raises(TypeError, match=words):
            to_plain({"result": value})
    assert to_plain({"result": torch.ones(2)})["result"].tolist() == [1.0, 1.0]


def test_pages_and_cache_entries_are_capped_with_a_note(tmp_path):
    grades = [judging.QuestionGrade("ann", "01_softmax", f"q{i}", 0.0, 1, "failed", "m" * 300,
                                    cases=[judging.CaseResult(f"case {j}", False, "x" * 300) for j in range(200)])
              for i in range(10)]
    page = feedback.page("ann", "01_softmax", grades, [])
    assert len(page) < feedback.MAX_PAGE_CHARS + 1000 and "[truncated" in page
    cache.store(tmp_path, "k", {"grades": [g.to_json() for g in grades], "run": {"cell_errors": {"0": "e" * 10**6}}})
    entry = cache.load(tmp_path, "k")
    assert (tmp_path / "k.json").stat().st_size <= cache.MAX_ENTRY_BYTES
    assert entry["run"]["remarks"][0].startswith("truncated") and len(entry["grades"]) == 10


def _slow_judge(case, outputs):
    import time

    time.sleep(30)
    return Verdict(True)


def test_a_slow_judge_is_an_error_not_a_hang(monkeypatch):
    monkeypatch.setattr(judging, "_warm", True)  # the frameworks' import is not what is tested here
    question = Question("q", 1, lambda rng: [Case("one", {})], lambda obj, case: {}, _slow_judge)
    answer = {"status": "ran", "cases": [{"status": "ok", "message": "", "keys": ["result"]}]}
    row = judging.judge_question(question, [Case("one", {})], answer, {"q/c0k0": np.zeros(1)}, "ann", "01",
                                 seconds=0.5)
    assert row.status == "error" and "judging took longer than 0.5 s" in row.message


def test_known_mistakes_are_computed_once_per_case(monkeypatch):
    monkeypatch.setattr(judging, "_warm", True)
    calls = []

    def expensive():
        calls.append(1)
        return np.array([5.0])

    def judge(case, outputs):
        return compare(outputs["result"], np.array([1.0]), mistakes={"a costly mistake": expensive})

    question = Question("q", 1, lambda rng: [], lambda obj, case: {}, judge)
    case = Case("one", {"x": np.arange(3.0)})
    answer = {"status": "ran", "cases": [{"status": "ok", "message": "", "keys": ["result"]}]}
    for wrong in (2.0, 3.0, 5.0):  # three students, three different wrong answers
        row = judging.judge_question(question, [case], answer, {"q/c0k0": np.array([wrong])}, "s", "01")
    assert row.message.endswith("a costly mistake") and len(calls) == 1


def test_an_exception_on_one_slot_is_its_crashed_row_and_the_gradebook_is_written(tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    for student in ("ann", "bob"):
        (subs / student).mkdir(parents=True)
        (subs / student / "01_softmax.ipynb").write_text("{}")

    def explode(path):
        if "ann" in str(path):
            raise RuntimeError("boom \ud800")
        raise reading.Unreadable("not a notebook")

    monkeypatch.setattr(reading, "read", explode)
    pipeline.grade(pipeline.Options(subs, tmp_path / "out", chapters=["01_softmax"], progress=False))
    rows = read_csv(tmp_path / "out" / "grades.csv")
    assert {(r["student"], r["status"]) for r in rows} == {("ann", "crashed"), ("bob", "unreadable")}
    assert "boom \\ud800" in rows[0]["message"]
