"""The LMS in and out (issue 14): rosters, Canvas and Moodle downloads, late penalties, gradebook exports.

Everything here is pure Python on synthetic folders and zips: no sandbox runs. The pipeline tests take their grades
from a stand-in cache (every notebook full marks), so they exercise the import, the join, the CSV columns and the
exports end to end in about a second each. That a Canvas zip and a Moodle folder grade to the plain layout's grades
with real sandboxes is checked in test_grading_intake.py, on the cache of its graded class.
"""
from __future__ import annotations

import csv
import io
import stat
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "grading_fixtures"))
import classroom  # noqa: E402

from course.chapters import all_chapters  # noqa: E402
from course.cli import main  # noqa: E402
from course.errors import CourseError  # noqa: E402
from course.grading import cache, export, gradebook, judging, lateness, layouts, roster  # noqa: E402
from course.grading.people import Identity  # noqa: E402

NOTEBOOK = classroom.correct()
CHAPTER = classroom.CHAPTER


def read_csv(path: Path, encoding: str = "utf-8") -> list[dict]:
    with open(path, newline="", encoding=encoding) as handle:
        return list(csv.DictReader(handle))


def make_zip(path: Path, members: dict[str, str | bytes], symlinks: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


ROSTER = """\ufeffName,Email,Section,LMS ID,SIS ID,Folder
"Smith, John",jsmith@uni.example,A,12345,S001,john
Ada Lovelace,ada@uni.example,B,23456,S002,ada
"Ñúñez, José",jose@uni.example,A,34567,S003,jose
Never Handed-In,never@uni.example,B,45678,S004,never
"""

# ------------------------------------------------------------------------------------------------------ the roster


def test_a_roster_reads_its_columns_by_any_usual_name_with_or_without_bom(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER, encoding="utf-8")
    entries = roster.read(path)
    assert [e.identity.name for e in entries] == ["Smith, John", "Ada Lovelace", "Ñúñez, José", "Never Handed-In"]
    assert entries[0].identity == Identity("Smith, John", "jsmith@uni.example", "A", "12345", "S001")
    assert entries[0].folder == "john"
    # a Canvas gradebook export, as Canvas writes it (Points Possible line included), is a roster
    canvas = ("Student,ID,SIS User ID,SIS Login ID,Integration ID,Section,Week 1 (4567)\n"
              "    Points Possible,,,,,,10\n\"Smith, John\",12345,S001,jsmith,,A,\n")
    (entry,) = roster.parse(canvas)
    assert entry.identity == Identity("Smith, John", "jsmith", "A", "12345", "S001")
    # a Moodle grading worksheet too: its identifier is "Participant <id>"
    moodle = "Identifier,Full name,Email address,Status,Grade\nParticipant 777,Ada Lovelace,ada@x.example,,\n"
    (entry,) = roster.parse(moodle)
    assert entry.identity == Identity("Ada Lovelace", "ada@x.example", "", "777", "")


@pytest.mark.parametrize("content, words", [
    ("Name,Email\nAda,ada@x\nBob,bob@x,extra\n", "line 3: 3 cells"),
    ("Colour,Size\nred,1\n", "line 1: no column names a student"),
    ("Name,LMS ID\nAda,1\nBob,1\n", "line 3: LMS id 1 is already on line 2"),
    ("Name,Section\nAda,A\n,B\n", "line 3: no name"),
    ("", "empty roster"),
    ('Name,Email\n"Ada,ada@x\n', "not CSV"),
])
def test_a_malformed_roster_is_refused_naming_the_line(content, words):
    with pytest.raises(CourseError, match=words):
        roster.parse(content, "r.csv")


def test_a_roster_that_is_not_utf8_says_so_with_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("Name\nAda\nJos\xe9\n".encode("latin-1"))
    with pytest.raises(CourseError, match="line 3: not UTF-8"):
        roster.read(path)


def test_folders_join_the_roster_by_id_then_folder_login_and_name():
    entries = roster.parse(ROSTER)
    assert roster.match("anything", "23456", entries)[0].identity.name == "Ada Lovelace"
    assert roster.match("john", "", entries)[0].identity.lms_id == "12345"
    assert roster.match("JSMITH", "", entries)[0].identity.lms_id == "12345"          # e-mail's local part
    assert roster.match("ñúñez, josé", "", entries)[0].identity.lms_id == "34567"   # the name, without case
    assert roster.match("stranger", "", entries) == []
    assert roster.match("x", "99999", entries, "smithjohn") == []      # the roster has ids: the id decides
    without_ids = roster.parse("Name,Email\n\"Smith, John\",js@x\nAda Lovelace,al@x\n")
    assert roster.match("smithjohn_1", "1", without_ids, "smithjohn")[0].identity.login == "js@x"
    assert roster.match("Ada Lovelace_7", "7", without_ids, "Ada Lovelace")[0].identity.login == "al@x"

# ------------------------------------------------------------------------------------------------------- layouts


def canvas_members(notebook: str = NOTEBOOK) -> dict[str, str]:
    return {f"smithjohn_12345_67890_{CHAPTER}.ipynb": notebook,
            f"lovelaceada_LATE_23456_67891_{CHAPTER}-1.ipynb": notebook,
            f"nunezjose_34567_67892_{CHAPTER}.ipynb": notebook,
            "smithjohn_12345_67890_notes.pdf": "%PDF"}


def test_a_canvas_zip_is_detected_and_staged_per_user_id_with_its_late_marks(tmp_path):
    archive = make_zip(tmp_path / "submissions.zip", canvas_members())
    with layouts.imported(archive) as result:
        assert result.layout == "canvas"
        staged = sorted(p.relative_to(result.root).as_posix() for p in result.root.rglob("*.ipynb"))
        assert staged == [f"lovelaceada_23456/{CHAPTER}.ipynb", f"nunezjose_34567/{CHAPTER}.ipynb",
                          f"smithjohn_12345/{CHAPTER}.ipynb"]
        assert result.lms_ids == {"smithjohn_12345": "12345", "lovelaceada_23456": "23456",
                                  "nunezjose_34567": "34567"}
        assert result.late == {("lovelaceada_23456", f"{CHAPTER}.ipynb")}
        assert result.ignored == ["smithjohn_12345_67890_notes.pdf"]
        assert stat.S_IMODE(result.root.stat().st_mode) == 0o700
        root = result.root
    assert not root.exists()  # the private copy is gone after grading


def test_canvas_resubmission_suffixes_keep_the_latest_upload(tmp_path):
    archive = make_zip(tmp_path / "s.zip", {f"smithjohn_12345_1_{CHAPTER}-1.ipynb": "old",
                                            f"smithjohn_12345_1_{CHAPTER}-2.ipynb": "new",
                                            f"smithjohn_12345_1_{CHAPTER}.ipynb": "first"})
    with layouts.imported(archive, "canvas") as result:
        assert (result.root / "smithjohn_12345" / f"{CHAPTER}.ipynb").read_text() == "new"
        assert "latest upload" in result.notes["smithjohn_12345"][0]


def test_a_moodle_folder_and_zip_are_detected_and_staged_per_participant(tmp_path):
    folder = tmp_path / "moodle"
    for name, participant in (("John Smith", 501), ("Ada Lovelace", 502)):
        (folder / f"{name}_{participant}_assignsubmission_file_").mkdir(parents=True)
        (folder / f"{name}_{participant}_assignsubmission_file_" / f"{CHAPTER}.ipynb").write_text(NOTEBOOK)
    (folder / "John Smith_501_assignsubmission_onlinetext_").mkdir()
    (folder / "John Smith_501_assignsubmission_onlinetext_" / "onlinetext.html").write_text("<p>hi</p>")
    with layouts.imported(folder) as result:
        assert result.layout == "moodle"
        assert result.lms_ids == {"John Smith_501": "501", "Ada Lovelace_502": "502"}
        assert (result.root / "Ada Lovelace_502" / f"{CHAPTER}.ipynb").read_text() == NOTEBOOK
    flat = make_zip(tmp_path / "m.zip", {f"Ada Lovelace_502_assignsubmission_file_{CHAPTER}.ipynb": NOTEBOOK})
    with layouts.imported(flat) as result:
        assert result.layout == "moodle" and result.lms_ids == {"Ada Lovelace_502": "502"}


def test_a_plain_folder_is_graded_where_it_is_and_a_plain_zip_is_unpacked(tmp_path):
    (tmp_path / "plain" / "ada").mkdir(parents=True)
    (tmp_path / "plain" / "ada" / f"{CHAPTER}.ipynb").write_text(NOTEBOOK)
    with layouts.imported(tmp_path / "plain") as result:
        assert result.layout == "plain" and result.root == tmp_path / "plain"
    archive = make_zip(tmp_path / "p.zip", {f"class/ada/{CHAPTER}.ipynb": NOTEBOOK, "class/readme.txt": "x"})
    with layouts.imported(archive) as result:
        assert result.layout == "plain"
        assert (result.root / "ada" / f"{CHAPTER}.ipynb").read_text() == NOTEBOOK


@pytest.mark.parametrize("members, symlinks, words", [
    ({"/etc/ada/01_softmax.ipynb": "x"}, (), "absolute path"),
    ({"../../ada_1_2_01_softmax.ipynb": "x"}, (), r"climbs out"),
    ({"ada/..\\..\\evil.ipynb": "x"}, (), r"climbs out"),
    ({}, ("ada_1_2_01_softmax.ipynb",), "symbolic link"),
])
def test_a_hostile_zip_is_refused_naming_the_member(tmp_path, members, symlinks, words):
    archive = make_zip(tmp_path / "evil.zip", members, symlinks)
    with pytest.raises(CourseError, match=words):
        with layouts.imported(archive):
            pass


def test_zip_caps_refuse_a_bomb_and_make_a_huge_notebook_unreadable(tmp_path, monkeypatch):
    monkeypatch.setattr(layouts, "MAX_MEMBERS", 3)
    many = make_zip(tmp_path / "many.zip", {f"s{i}_{i}_1_{CHAPTER}.ipynb": "x" for i in range(4)})
    with pytest.raises(CourseError, match="4 members, more than the 3"):
        with layouts.imported(many):
            pass
    monkeypatch.setattr(layouts.reading, "MAX_NOTEBOOK_BYTES", 1000)
    big = make_zip(tmp_path / "big.zip", {f"ada_1_2_{CHAPTER}.ipynb": "x" * 5000,
                                          f"bob_3_4_{CHAPTER}.ipynb": NOTEBOOK[:900]})
    with layouts.imported(big) as result:
        assert result.unreadable == {"ada_1": [(f"{CHAPTER}.ipynb", "0 MB, over the 0 MB limit")]}
        assert (result.root / "bob_3" / f"{CHAPTER}.ipynb").exists()
    monkeypatch.setattr(layouts, "MAX_TOTAL_BYTES", 1500)
    total = make_zip(tmp_path / "total.zip", {f"s{i}_{i}_1_{CHAPTER}.ipynb": "x" * 900 for i in range(2)})
    with pytest.raises(CourseError, match="of notebooks in the submissions; refused"):
        with layouts.imported(total):
            pass


def test_duplicate_and_overlong_member_names_cost_no_one_else(tmp_path):
    archive = tmp_path / "dup.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        with pytest.warns(UserWarning, match="Duplicate name"):
            for text_ in ("first", "second"):
                handle.writestr(f"ada/{CHAPTER}.ipynb", text_)
        handle.writestr("é" * 300 + f"/{CHAPTER}.ipynb", NOTEBOOK)
        handle.writestr("/".join(["deep"] * 40) + f"/{CHAPTER}.ipynb", NOTEBOOK)
    with layouts.imported(archive, "plain") as result:
        assert (result.root / "ada" / f"{CHAPTER}.ipynb").read_text() == "first"
        assert result.notes["ada"] == [f"two files named '{CHAPTER}.ipynb'; graded the first"]
        assert (result.root / ("é" * 100) / f"{CHAPTER}.ipynb").exists()  # cut to 200 bytes
        assert any(name.startswith("deep/deep") for name in result.ignored)


def test_a_corrupt_or_truncated_zip_is_a_clear_error(tmp_path):
    good = make_zip(tmp_path / "good.zip", canvas_members())
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CourseError, match="not a readable zip file"):
        with layouts.imported(tmp_path / "junk.zip"):
            pass
    data = bytearray(good.read_bytes())
    offset = data.index(b"Checker")  # corrupt a member's stored bytes: its CRC no longer matches
    data[offset:offset + 7] = b"XXXXXXX"
    (tmp_path / "crc.zip").write_bytes(bytes(data))
    with pytest.raises(CourseError, match="damaged zip at member"):
        with layouts.imported(tmp_path / "crc.zip"):
            pass

# ------------------------------------------------------------------------------------------------------ lateness


def test_late_penalties_count_started_days_up_to_the_cap():
    policy = lateness.Policy(due=lateness.parse_time("2026-12-01T23:59+00:00"), per_day=0.1, cap=0.25)
    assert policy.lateness(0.0, "on time").penalty == 0
    assert policy.lateness(0.001, "x").penalty == pytest.approx(0.1)       # a minute late is a started day
    assert policy.lateness(1.0, "x").penalty == pytest.approx(0.1)
    assert policy.lateness(1.01, "x").penalty == pytest.approx(0.2)
    assert policy.lateness(9, "x").penalty == pytest.approx(0.25)          # the cap
    due = lateness.parse_time("2026-12-01T23:59+01:00")
    assert lateness.days_late(lateness.parse_time("2026-12-02T23:59+01:00"), due) == pytest.approx(1.0)
    assert lateness.days_late(lateness.parse_time("2026-12-01T23:59Z"), due) == pytest.approx(1 / 24)
    assert lateness.parse_fraction("10%") == pytest.approx(0.1)
    with pytest.raises(ValueError):
        lateness.parse_fraction("150%")


def test_gradebook_shows_raw_penalty_and_final_points_only_when_there_is_a_late_policy():
    grades = [judging.QuestionGrade("ada", CHAPTER, "softmax", 3.0, 3, "passed", ""),
              judging.QuestionGrade("bob", CHAPTER, "softmax", 2.0, 3, "failed", "")]
    plain = list(csv.DictReader(io.StringIO(gradebook.grades_csv(grades, {}))))
    assert list(plain[0]) == list(gradebook.GRADE_COLUMNS)
    late = {("ada", CHAPTER): lateness.Policy(per_day=0.1).lateness(2.0, "x"),
            ("bob", CHAPTER): lateness.Policy(per_day=0.1).lateness(0.0, "on time")}
    rows = list(csv.DictReader(io.StringIO(gradebook.grades_csv(grades, {}, late))))
    assert [(r["points"], r["raw_points"], r["late_days"], r["late_penalty"]) for r in rows] == [
        ("2.40", "3.00", "2", "0.20"), ("2.00", "2.00", "0", "0.00")]
    summary = list(csv.DictReader(io.StringIO(gradebook.summary_csv(grades, None, late))))
    assert [(r["total"], r["raw_total"], r["late_penalty"]) for r in summary] == [
        ("2.40", "3.00", "0.60"), ("2.00", "2.00", "0.00")]

# ------------------------------------------------------------------------------- the pipeline, from a stand-in cache


@pytest.fixture
def full_marks(monkeypatch):
    """Every notebook read comes "from the cache" with full marks: the pipeline without a sandbox."""
    chapter = all_chapters()[CHAPTER]

    def load(folder, key):
        return {"grades": [judging.QuestionGrade("x", CHAPTER, q.name, float(q.points), q.points, "passed",
                                                 "").to_json() for q in chapter.questions], "run": {}}
    monkeypatch.setattr(cache, "load", load)


def grade(submissions: Path, out: Path, *args: str) -> int:
    return main(["grade", str(submissions), "--out", str(out), "--chapters", CHAPTER, "--no-progress", *args])


def test_a_canvas_zip_with_a_roster_and_a_late_policy_grades_exports_and_reimports(tmp_path, full_marks, capsys):
    archive = make_zip(tmp_path / "submissions.zip", {**canvas_members(),
                                                      f"stranger_99999_1_{CHAPTER}.ipynb": NOTEBOOK})
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")
    out = tmp_path / "out"
    assert grade(archive, out, "--roster", str(tmp_path / "roster.csv"), "--late-penalty", "10%", "--bom") == 0
    raw = (out / "summary.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    summary = {r["student"]: r for r in read_csv(out / "summary.csv", "utf-8-sig")}
    assert summary["smithjohn_12345"]["total"] == "10.00"
    assert (summary["lovelaceada_23456"]["total"], summary["lovelaceada_23456"]["raw_total"]) == ("9.00", "10.00")
    grades = read_csv(out / "grades.csv", "utf-8-sig")
    never = [r for r in grades if r["student"] == "never"]
    assert {r["status"] for r in never} == {"missing"} and len(never) == 3
    report = (out / "report.html").read_text()
    assert "stranger_99999" in report and "not in the roster" in report
    late_page = (out / "feedback" / "lovelaceada_23456" / f"{CHAPTER}.html").read_text()
    assert "Handed in 1 day late" in late_page and "<strong>9.00 / 10</strong> after it" in late_page
    assert "late" not in (out / "feedback" / "smithjohn_12345" / f"{CHAPTER}.html").read_text()
    assert "notes.pdf (not a student" in report

    assert main(["export", "canvas", str(out), "--assignment", "Week 1", "--assignment-id", "4567"]) == 0
    rows = list(csv.reader(open(out / "canvas-Week-1.csv", newline="", encoding="utf-8")))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Week 1 (4567)"]
    assert rows[1] == ["    Points Possible", "", "", "", "", "10"]
    assert sorted(rows[2:]) == sorted([
        ["Smith, John", "12345", "S001", "jsmith@uni.example", "A", "10.00"],
        ["Ada Lovelace", "23456", "S002", "ada@uni.example", "B", "9.00"],
        ["Ñúñez, José", "34567", "S003", "jose@uni.example", "A", "10.00"],
        ["Never Handed-In", "45678", "S004", "never@uni.example", "B", "0.00"]])
    assert "stranger_99999: no Canvas ID" in capsys.readouterr().err

    written = export.export("moodle", out, "Week 1", bom=True, now=datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc))
    content = written.path.read_text(encoding="utf-8")
    assert content.startswith("\ufeff")
    rows = {r["Identifier"]: r for r in export.parse(content)}
    assert list(next(iter(rows.values()))) == list(export.MOODLE_COLUMNS)
    ada = rows["Participant 23456"]
    assert (ada["Full name"], ada["Email address"], ada["Grade"], ada["Maximum Grade"]) == (
        "Ada Lovelace", "ada@uni.example", "9.00", "10")
    assert ada["Last modified (grade)"] == "2026-12-03T09:00:00+0000"
    assert ada["Feedback comments"].startswith(f"{CHAPTER}: 10.00/10 (softmax passed")
    assert ada["Feedback comments"].endswith("; late 1 day(s): -10%, 9.00/10")


def test_a_plain_folder_without_roster_writes_what_it_always_did(tmp_path, full_marks):
    (tmp_path / "subs" / "ada").mkdir(parents=True)
    (tmp_path / "subs" / "ada" / f"{CHAPTER}.ipynb").write_text(NOTEBOOK)
    assert grade(tmp_path / "subs", tmp_path / "out") == 0
    assert (tmp_path / "out" / "grades.csv").read_text().startswith(",".join(gradebook.GRADE_COLUMNS) + "\n")
    assert (tmp_path / "out" / "summary.csv").read_text().splitlines()[0] == f"student,{CHAPTER},total,max_total"
    assert not (tmp_path / "out" / "identities.json").exists()
    with pytest.raises(CourseError, match="no student identities"):
        export.export("canvas", tmp_path / "out", "Week 1")
    (tmp_path / "roster.csv").write_text("Name,ID,Folder\nAda L,7,ada\n", encoding="utf-8")
    written = export.export("canvas", tmp_path / "out", "Week 1", roster_path=tmp_path / "roster.csv")
    assert export.parse(written.path.read_text())[1]["ID"] == "7"


def test_submission_times_from_a_file_set_the_days_late(tmp_path, full_marks):
    for student in ("ada", "bob"):
        (tmp_path / "subs" / student).mkdir(parents=True)
        (tmp_path / "subs" / student / f"{CHAPTER}.ipynb").write_text(NOTEBOOK)
    times = tmp_path / "times.csv"
    times.write_text(f"student,notebook,submitted_at\nada,{CHAPTER},2026-12-03T10:00+00:00\n"
                     "bob,,2026-12-01T12:00+00:00\n", encoding="utf-8")
    out = tmp_path / "out"
    assert grade(tmp_path / "subs", out, "--due", "2026-12-01T23:59+00:00", "--late-penalty", "15",
                 "--submitted-at", str(times)) == 0
    summary = {r["student"]: r for r in read_csv(out / "summary.csv")}
    assert (summary["ada"]["total"], summary["ada"]["late_penalty"]) == ("7.00", "3.00")  # 2 started days × 15 %
    assert summary["bob"]["total"] == "10.00"
    times.write_text("student,submitted_at\ncarol,2026-12-03T10:00\n", encoding="utf-8")
    assert grade(tmp_path / "subs", out, "--due", "2026-12-01T23:59", "--submitted-at", str(times)) == 2


def test_a_zip_that_is_not_one_ends_with_one_line_and_no_gradebook(tmp_path, capsys):
    (tmp_path / "class.zip").write_bytes(b"garbage")
    assert grade(tmp_path / "class.zip", tmp_path / "out") == 2
    assert "not a readable zip file" in capsys.readouterr().err
    assert not (tmp_path / "out" / "grades.csv").exists()
