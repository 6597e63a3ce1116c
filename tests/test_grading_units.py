"""The grader's small parts: the wire format, discovery, reading, seeds, redaction, verdicts, the command line."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from course.chapters import get_chapter
from course.grading import cache, discover, feedback, judging, reading, wire
from course.questions import VISIBLE_SEED

ROOT = Path(__file__).resolve().parents[1]


def test_wire_round_trips_plain_data():
    header, arrays = {"a": 1, "b": "x"}, {"y": np.arange(3.0), "n": np.int64(4) * np.ones(2, np.int64)}
    data = wire.encode(header, arrays)
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    got_header, got_arrays = wire.read_message(r)
    os.close(r)
    assert got_header == header and np.array_equal(got_arrays["y"], arrays["y"])



def test_a_message_in_memory_decodes_only_whole_and_under_the_caps():
    """What a Dask worker hands back: the same caps as a pipe, and exactly one message."""
    data = wire.encode({"a": 1}, {"y": np.arange(3.0)})
    header, arrays = wire.decode_message(data)
    assert header == {"a": 1} and np.array_equal(arrays["y"], np.arange(3.0))
    for bad in (data[:5], data[:-1], data + b"x", (10 ** 12).to_bytes(8, "little") + bytes(8)):
        with pytest.raises(wire.WireError):
            wire.decode_message(bad)


def test_wire_never_unpickles():
    buffer = io.BytesIO()
    np.savez(buffer, evil=np.array([object()], dtype=object))
    with pytest.raises(wire.WireError):
        wire.decode(b"{}", buffer.getvalue())
    with pytest.raises(wire.WireError):
        wire.decode(b"{}", pickle.dumps({"result": 1.0}))
    with pytest.raises(wire.WireError):
        wire.decode(b"[1]", b"")


def test_wire_refuses_oversized_messages_unread():
    r, w = os.pipe()
    os.write(w, (10 ** 12).to_bytes(8, "little") + (0).to_bytes(8, "little"))
    with pytest.raises(wire.WireError):
        wire.read_message(r)
    os.close(r)
    os.close(w)


def test_plain_case_inputs_keep_their_types():
    arrays = {}
    values = {"logits": np.ones((2, 3), np.float32), "axis": 0, "scale": np.float64(2.5), "name": "x"}
    spec = wire.split_plain(values, "q/0/", arrays)
    back = wire.join_plain(spec, "q/0/", arrays)
    assert back["logits"].dtype == np.float32 and back["axis"] == 0 and back["name"] == "x"
    assert isinstance(back["scale"], np.float64)
    with pytest.raises(TypeError):
        wire.split_plain({"f": len}, "", {})


@pytest.mark.parametrize("name", ["01_softmax.ipynb", "01_Softmax.ipynb", "01_softmax (1).ipynb",
                                  "01-softmax-copy.ipynb", "01_softmax-checkpoint.ipynb"])
def test_forgiving_names_match(name):
    assert discover._normal(name) == "01_softmax"


def test_exact_name_wins_over_a_copy(tmp_path):
    (tmp_path / "ann" / "old").mkdir(parents=True)
    (tmp_path / "ann" / "01_softmax.ipynb").write_text("{}")
    (tmp_path / "ann" / "old" / "01_softmax (2).ipynb").write_text("{}")
    (slot,) = discover.find(tmp_path, "ann", ["01_softmax"])
    assert slot.path == tmp_path / "ann" / "01_softmax.ipynb" and "other candidate" in slot.note


def test_reading_turns_magics_into_inert_calls_and_flags_hooks(tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "grading_fixtures"))
    import classroom

    path = tmp_path / "nb.ipynb"
    path.write_text(classroom.notebook("%matplotlib inline\nx = 1", "get_ipython().events.register('x', f)"))
    extracted = reading.extract(path)
    assert extracted.cells[0].startswith("get_ipython().run_line_magic")
    assert "IPython hooks or transformers" in extracted.flags


def test_hidden_seeds_are_secret_stable_and_not_the_visible_one(tmp_path):
    secret = judging.load_secret(tmp_path / "seed")
    assert (tmp_path / "seed").stat().st_mode & 0o777 == 0o600
    assert judging.load_secret(tmp_path / "seed") == secret
    seeds = {judging.question_seed(secret, "01_softmax", q) for q in ("softmax", "log_softmax")}
    assert len(seeds) == 2 and VISIBLE_SEED not in seeds
    assert judging.question_seed(b"another secret!!", "01_softmax", "softmax") not in seeds


def test_the_secret_is_the_instructors_own_file_found_by_the_xdg_rules(tmp_path):
    assert judging.default_secret_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "course" / "grading-secret"
    home = Path(os.path.expanduser("~"))
    assert judging.default_secret_path({}) == home / ".config" / "course" / "grading-secret"
    assert judging.default_secret_path({"XDG_CONFIG_HOME": "relative"}) == home / ".config/course/grading-secret"
    path = tmp_path / "config" / "course" / "grading-secret"
    secret = judging.load_secret(path)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o077 == 0
    assert os.listdir(path.parent) == ["grading-secret"]  # the temporary file it was written through is gone
    os.chmod(path, 0o640)  # a team sharing it through its group
    assert judging.load_secret(path) == secret


@pytest.mark.parametrize("mode", [0o644, 0o602])
def test_a_secret_others_can_read_or_change_is_refused_not_repaired(tmp_path, mode):
    from course.errors import CourseError

    path = tmp_path / "secret"
    judging.load_secret(path)
    os.chmod(path, mode)
    with pytest.raises(CourseError, match="every user of this machine.*chmod 600"):
        judging.load_secret(path)
    assert path.stat().st_mode & 0o777 == mode


def test_which_secret_a_run_uses(tmp_path, monkeypatch, capsys):
    """The one named (--secret-file, or its old name), else an older grader's one in OUT, else the instructor's."""
    from course.errors import CourseError
    from course.grading import pipeline, sandbox

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    out = tmp_path / "out"
    out.mkdir()
    options = pipeline.Options(tmp_path, out)
    assert pipeline._secret_file(options, out) == tmp_path / "config" / "course" / "grading-secret"
    (out / judging.LEGACY_SECRET).write_text("x" * 64)
    assert pipeline._secret_file(options, out) == out / judging.LEGACY_SECRET
    assert "older grader" in capsys.readouterr().err
    for named in (pipeline.Options(tmp_path, out, secret_file=tmp_path / "team"),
                  pipeline.Options(tmp_path, out, seed_file=tmp_path / "team")):
        assert pipeline._secret_file(named, out) == tmp_path / "team"
    visible = sandbox.allowed_paths(str(ROOT))[0]
    with pytest.raises(CourseError, match="sandboxes can read"):
        pipeline._secret_file(pipeline.Options(tmp_path, out, secret_file=Path(visible) / "secret"), out)


def test_the_old_seed_file_option_still_names_the_secret():
    import argparse

    from course.grading import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["subs", "--out", "o", "--seed-file", "s"])
    assert (args.secret_file or args.seed_file) == Path("s")
    assert "--seed-file" not in parser.format_help() and "--secret-file" in parser.format_help()


def test_hidden_cases_differ_from_the_visible_ones(tmp_path):
    chapter = get_chapter("01_softmax")
    hidden = judging.hidden_cases(chapter, judging.load_secret(tmp_path / "seed"))
    visible = chapter.question("softmax").cases()
    assert not np.array_equal(hidden["softmax"][0].inputs["logits"], visible[0].inputs["logits"])


def test_cache_key_changes_with_the_submission_the_secret_and_the_limits():
    base = cache.key(b"nb", "01_softmax", b"secret", {"memory_mb": 1})
    assert base == cache.key(b"nb", "01_softmax", b"secret", {"memory_mb": 1})
    assert base != cache.key(b"nb2", "01_softmax", b"secret", {"memory_mb": 1})
    assert base != cache.key(b"nb", "01_softmax", b"secret2", {"memory_mb": 1})
    assert base != cache.key(b"nb", "01_softmax", b"secret", {"memory_mb": 2})


@pytest.mark.parametrize("message", [
    "softmax differs: at (0, 1) got 0.2, expected 0.35",
    "softmax has NaN at (0, 1) where the answer is finite (0.25): an overflow or log(0) on the way",
    "softmax has shape (3,), expected (4, 5)",
    "steps 1 to 3 match, then step 4 departs from the reference: w[0] = 0.5, expected 0.35 (error 0.15)",
    "departs from Keras at step 7 (got 0.5, expected 0.35); largest gap 0.15 at step 9",
])
def test_redaction_removes_expected_values(message):
    redacted = feedback.redact(message)
    assert not any(value in redacted for value in ("0.35", "0.25", "(4, 5)", "0.15"))


def test_judging_statuses_from_case_outcomes():
    chapter = get_chapter("01_softmax")
    question = chapter.question("softmax")
    cases = question.cases(1)[:2]
    right = {f"softmax/c{i}k0": np.exp(c.inputs["logits"] - c.inputs["logits"].max(-1, keepdims=True)) /
             np.exp(c.inputs["logits"] - c.inputs["logits"].max(-1, keepdims=True)).sum(-1, keepdims=True)
             for i, c in enumerate(cases)}
    ok = {"status": "ran", "cases": [{"status": "ok", "message": "", "keys": ["result"]}] * 2}
    row = judging.judge_question(question, cases, ok, right, "s", "01_softmax")
    assert (row.status, row.points) == ("passed", 3)
    half = {"status": "ran", "cases": [ok["cases"][0], {"status": "error", "message": "raised ValueError: x"}]}
    row = judging.judge_question(question, cases, half, right, "s", "01_softmax")
    assert (row.status, row.points) == ("failed", 1.5) and "ValueError" in row.message
    row = judging.judge_question(question, cases, {"status": "timeout", "message": "timed out"}, {}, "s", "n")
    assert (row.status, row.points) == ("timeout", 0)


@pytest.mark.parametrize("args, words", [
    (["/no/such/folder", "--out", "/tmp/x"], "no such folder"),
    (["{tmp}/subs", "--out", "{tmp}/out", "--chapters", "99_nothing"], "unknown chapter"),
    (["{tmp}/subs", "--out", "{tmp}/subs/out", "--chapters", "01_softmax"], "must not be inside"),
    (["{tmp}/subs", "--out", "{tmp}/out", "--workers", "0"], "must be positive"),
])
def test_the_command_fails_in_one_line_only_when_it_cannot_run(tmp_path, args, words):
    (tmp_path / "subs").mkdir()
    args = [a.format(tmp=tmp_path) for a in args]
    result = subprocess.run([sys.executable, "-m", "course", "grade", *args], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 2 and words in result.stderr
    assert "Traceback" not in result.stderr


def test_a_lost_case_says_which_skill_it_tested():
    question = get_chapter("01_softmax").question("softmax")
    cases = [case for case in question.cases(1) if case.skill][:1]
    assert cases, "softmax has cases with a skill"
    wrong = {"softmax/c0k0": np.zeros_like(cases[0].inputs["logits"], dtype=float)}
    answer = {"status": "ran", "cases": [{"status": "ok", "message": "", "keys": ["result"]}]}
    row = judging.judge_question(question, cases, answer, wrong, "s", "01_softmax")
    assert row.status == "failed"
    assert row.cases[0].message.endswith(f"(this case tests {cases[0].skill})")


def _cross_entropy_answer(calls, value=float("inf")):
    question = get_chapter("01_softmax").question("cross_entropy_from_logits")
    cases = question.cases(1)
    arrays = {f"{question.name}/c{n}k0": np.array(value) for n in range(len(cases))}
    answer = {"status": "ran", "calls": calls,
              "cases": [{"status": "ok", "message": "", "keys": ["result"]} for _ in cases]}
    return question, cases, answer, arrays


def test_a_question_failing_through_an_earlier_failing_function_names_that_function_once():
    """The student's cross-entropy calls their broken log_softmax: fix log_softmax, not 'use log_softmax'."""
    question, cases, answer, arrays = _cross_entropy_answer(["log_softmax"])
    row = judging.judge_question(question, cases, answer, arrays, "s", "01_softmax",
                                 failed_earlier={"log_softmax": "failed"})
    assert row.status == "failed" and row.points == 0 and row.depends_on == "log_softmax"
    assert row.message.startswith("calls your `log_softmax`, which fails its own check: fix `log_softmax` first")
    assert "fix `log_softmax` first" in row.hint and "-log_softmax(logits)" not in row.hint
    assert all("log_softmax" in case.message for case in row.cases)
    page = feedback.page("s", "01_softmax", [row], [])
    assert "Hint: This question calls your `log_softmax`" in page and "use log_softmax" not in page
    # what the sandbox said it called is hostile: anything but a failing earlier question changes nothing
    plain = judging.judge_question(question, cases, {**answer, "calls": []}, arrays, "s", "01_softmax",
                                   failed_earlier={"log_softmax": "failed"})
    assert plain.depends_on == "" and "fix" not in plain.message and plain.points == row.points
    for calls, failing in [(["softmax"], {"log_softmax": "failed"}), (["log_softmax"], {}),
                           ("log_softmax" * 100, {"log_softmax": "failed"}), ([["log_softmax"]], {"log_softmax": 1})]:
        other = judging.judge_question(question, cases, {**answer, "calls": calls}, arrays, "s", "01_softmax",
                                       failed_earlier=failing)
        assert other.depends_on == "" and other.message == plain.message, calls


def test_a_question_passed_or_stuck_on_an_unwritten_function_says_so():
    question, cases, answer, arrays = _cross_entropy_answer(["log_softmax"])
    stub = {**answer, "cases": [{"status": "not-attempted", "message": "not attempted yet (the function still "
                                 "raises NotImplementedError)", "keys": []} for _ in cases]}
    row = judging.judge_question(question, cases, stub, {}, "s", "01_softmax",
                                 failed_earlier={"log_softmax": "not-attempted"})
    assert row.status == "not-attempted" and "calls your `log_softmax`, which is not written yet" in row.message


def test_an_untouched_question_says_not_attempted_once():
    question, cases, answer, _ = _cross_entropy_answer([])
    stub = {**answer, "cases": [{"status": "not-attempted", "message": "not attempted yet (the function still "
                                 "raises NotImplementedError)", "keys": []} for _ in cases]}
    row = judging.judge_question(question, cases, stub, {}, "s", "01_softmax")
    assert row.status == "not-attempted" and len(row.cases) > 1
    assert row.message.count("not attempted") == 1
    assert feedback.page("s", "01_softmax", [row], []).count("not attempted") == 1


def test_course_check_names_the_function_to_fix_once():
    from course.student_check import QuestionResult, Report, format_report

    report = Report(Path("01_softmax.ipynb"), get_chapter("01_softmax"), questions=[
        QuestionResult("log_softmax", "failed", 1.2, 3, "4/7 cases passed; ...", [("large logits", "-inf where ...")]),
        QuestionResult("cross_entropy_from_logits", "failed", 2, 4, "calls your `log_softmax`, which fails its own "
                       "check: fix `log_softmax` first (4/6 cases passed)", [("confident", "wrong result")],
                       depends_on="log_softmax")])
    text = format_report(report)
    assert text.count("fix `log_softmax` first") == 1 and "wrong result" not in text
