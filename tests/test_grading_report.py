"""report.html, the instructor's first page: built from synthetic grades (no sandbox), then opened in Chromium.

The class is made up: a few hundred students, hostile folder names, every status, flags, lateness and a roster
name. ``publish`` writes it like a real run (feedback pages included), so the browser test checks real links.
"""
from __future__ import annotations

import random
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from course.chapters import all_chapters
from course.grading import discover, pipeline, report
from course.grading.judging import CaseResult, QuestionGrade
from course.grading.people import Identity, Lateness

NOTEBOOKS = ("01_softmax", "02_losses")
HOSTILE = ["../x", "<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "a#b", "what?", "100%", "two  spaces",
           "José Ñúñez 李", "Jos\\xe9 (latin-1 zip)", "cell \\udcff", "'quote\"", "&amp;", "=HYPERLINK(\"x\")"]
#: names a folder on disk can have (no '/'): the ones publish writes feedback pages for
ON_DISK = [name for name in HOSTILE if "/" not in name]
STATUS_CYCLE = ["passed", "passed", "passed", "failed", "failed", "error", "not-attempted", "timeout", "memory",
                "crashed", "forbidden", "passed"]


def question_grades(student: str, notebook: str, rng: random.Random) -> list[QuestionGrade]:
    """One notebook's rows for a made-up student; a 'missing' or 'unreadable' notebook is so for every question."""
    chapter = all_chapters()[notebook]
    whole = rng.random()
    if whole < 0.03:
        return [QuestionGrade(student, notebook, q.name, 0.0, q.points, "missing", f"no {notebook}.ipynb")
                for q in chapter.questions]
    rows = []
    for q in chapter.questions:
        status = rng.choice(STATUS_CYCLE)
        cases = []
        if status == "failed":
            mistake = rng.choice(["softmax differs: at (0, 1) got 0.2, expected 0.3",
                                  "wrong shape: got (2,), expected (2, 3)"])
            cases = [CaseResult("plain logits", True, ""), CaseResult("logits of ±1000", False, mistake)]
        points = {"passed": float(q.points), "failed": q.points / 2}.get(status, 0.0)
        message = {"passed": "every hidden case passed", "failed": cases[-1].message if cases else "",
                   "error": "ValueError: <b>bad</b> \\ud800"}.get(status, f"{status}: it happened")
        rows.append(QuestionGrade(student, notebook, q.name, points, q.points, status, message, "a hint", cases))
    return rows


def synthetic(students: int, seed: int = 0):
    """(grades, runs) of a class: the hostile names first, then plain ones, both notebooks each."""
    rng = random.Random(seed)
    names = HOSTILE + [f"student {i:03d}" for i in range(students - len(HOSTILE))]
    grades, runs = [], []
    for name in names:
        for nb in NOTEBOOKS:
            grades += question_grades(name, nb, rng)
            runs.append({"student": name, "notebook": nb, "flags": ["ctypes"] if rng.random() < 0.05 else [],
                         "notes": [], "seconds": rng.uniform(2, 30), "peak_mb": rng.uniform(50, 900),
                         "queued_seconds": rng.uniform(0, 200), "attempts": 1})
    return grades, runs


def parse(page: str):
    """Every link, image (alt) and the table rows' first cells of a page; fails on HTML it cannot parse."""
    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.links, self.alts, self.scripts, self.text = [], [], [], []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "a":
                self.links.append(attrs.get("href"))
            if tag == "img":
                self.alts.append(attrs.get("alt"))
            if tag == "script":
                self.scripts.append(attrs)
            if tag in ("link", "iframe", "object", "embed"):
                raise AssertionError(f"<{tag}> in the report")

        def handle_data(self, data):
            self.text.append(data)

    collect = Collect()
    collect.feed(page)
    return collect


LATE = {("student 010", "01_softmax"): Lateness(days=2.5, penalty=0.2, source="canvas _LATE_ mark")}
SUMMARY = "summary <b>"


@pytest.fixture(scope="module")
def rendered():
    """One page of a 60-student class with lateness, rendered once for the tests that read it (figures cost time)."""
    grades, runs = synthetic(60)
    runs[7]["seconds"], runs[9]["peak_mb"] = 999.0, 5000.0
    args = (grades, runs, SUMMARY, ["README.txt"], ["<i>: x.ipynb"], {}, LATE, 321.0)
    return grades, runs, args, report.page(*args)


@pytest.fixture
def no_figures(monkeypatch):
    """Charts drawn but not encoded (PNG encoding is most of a page's cost), for tests that do not read them."""
    import matplotlib.pyplot as plt

    monkeypatch.setattr(report, "_figure", lambda fig, alt: plt.close(fig) or f"<img alt='{report._e(alt)}'>")


def test_hostile_names_are_escaped_and_their_links_quoted(rendered):
    page = rendered[3]
    assert "<script>alert" not in page and "<img src=x" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>bad</b>" not in page and "<i>:" not in page and "summary &lt;b&gt;" in page
    page.encode("utf-8")  # no lone surrogate reached the page
    found = parse(page)
    feedback = [link for link in found.links if link.startswith("feedback/")]
    assert "feedback/..%2Fx/01_softmax.html" in feedback
    assert "feedback/a%23b/02_losses.html" in feedback and "feedback/what%3F/01_softmax.html" in feedback
    assert "feedback/100%25/01_softmax.html" in feedback
    assert "feedback/Jos%5Cxe9%20%28latin-1%20zip%29/01_softmax.html" in feedback
    for link in feedback:
        student, notebook = [unquote(part) for part in link.split("/")[1:]]
        assert student in HOSTILE + [f"student {i:03d}" for i in range(60)] and notebook[:-5] in NOTEBOOKS, link
    assert all(link.startswith(("feedback/", "#")) for link in found.links), found.links
    assert found.scripts == [{}]  # one inline script, none from outside
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page)


def test_a_lone_surrogate_is_shown_escaped_never_written(no_figures):
    grades = [QuestionGrade("b\udcffd \ud800", "01_softmax", "softmax", 0.0, 3, "error", "bad \udc80 value")]
    page = report.page(grades, [], "s", [], [])
    page.encode("utf-8")
    assert "b\\xffd \\ud800" in page and "bad \\x80 value" in page
    assert "feedback/b%5Cxffd%20%5Cud800/01_softmax.html" in page


def test_the_table_lists_every_student_sorted_by_name_with_points_and_badges(no_figures):
    grades, runs = synthetic(300)
    identities = {"student 005": Identity(name="Aaron Zed")}
    page = report.page(grades, runs, "s", [], [], identities)
    body = page[page.index("<tbody>"):page.index("</tbody>")]
    rows = body.split("<tr>")[1:]
    assert len(rows) == 300
    names = [report.html.unescape(re.match(r"<td data-v='([^']*)'", row).group(1)) for row in rows]
    assert names == sorted(names, key=report._sort_key)
    assert report._sort_key("Ñúñez") == "nunez"
    aaron = names.index("Aaron Zed")
    assert aaron < names.index("student 000") and "(student 005)" in rows[aaron]
    for status in ("timeout", "crashed", "forbidden", "missing"):
        assert f"class='badge b-{status}'" in body
    # points of one student add up to the total shown
    expected = {nb: sum(g.points for g in grades if (g.student, g.notebook) == ("student 010", nb)) for nb in NOTEBOOKS}
    row = next(r for r in rows if r.startswith("<td data-v='student 010'"))
    cells = re.findall(r"data-v='([-\d.]+)'", row)
    assert [float(c) for c in cells[:3]] == pytest.approx([expected["01_softmax"], expected["02_losses"],
                                                           sum(expected.values())])
    assert "late penalty</th>" not in page  # no lateness, no lateness columns


def test_lateness_shows_raw_penalty_and_final_points(rendered):
    grades, _, _, page = rendered
    raw = sum(g.points for g in grades if (g.student, g.notebook) == ("student 010", "01_softmax"))
    assert "01_softmax raw</th>" in page and "01_softmax late penalty</th>" in page
    row = page[page.index("<tr><td data-v='student 010'"):]
    row = row[:row.index("</tr>")]
    assert f">{raw:.2f}</td>" in row and "−20%" in row and "2.5 d" in row
    assert f">{raw * 0.8:.2f}</a>" in row
    assert "<span class='badge b-late'" in row
    assert "Late (1)" in page and "canvas _LATE_ mark" in page


def test_questions_show_stacked_results_and_the_most_common_redacted_diagnosis(rendered):
    page = rendered[3]
    section = page[page.index("id='questions'"):page.index("id='scores'")]
    assert section.count("<div class='bar'") == 6
    assert "expected a different value" in section or "expected another shape" in section
    assert "expected 0.3" not in section and "expected (2, 3)" not in section
    assert re.search(r"\(\d+ students\)", section)


def test_a_diagnosis_is_counted_once_whatever_case_it_was_seen_on():
    grades = [QuestionGrade(f"s{i}", "01_softmax", "softmax", 0.0, 3, "failed", "m",
                            cases=[CaseResult("a", False, f"got 1, expected 2 (this case tests skill {i % 2})")])
              for i in range(4)]
    assert report._diagnosis(grades) == "got 1, expected a different value <span class='note'>(4 students)</span>"


def test_score_histograms_and_figures_say_what_they_show(rendered):
    found = parse(rendered[3])
    assert len(found.alts) == 3  # two notebooks' scores, one scatter of time and memory
    assert all(alt and alt != "plot" and len(alt) > 40 for alt in found.alts), found.alts
    assert "Histogram of the points of 60 students in 01_softmax (of 10)" in found.alts[0]


def test_outliers_are_named_and_the_times_say_what_they_measure(rendered):
    _, runs, _, page = rendered
    section = page[page.index("id='resources'"):page.index("id='attention'")]
    assert "Time in the sandbox" in section and "Waiting in the queue" in section and "321.0 s of wall time" in section
    slowest = section[section.index("slowest"):section.index("largest")]
    assert runs[7]["student"] in report.html.unescape(slowest) and "999.0" in slowest
    assert "5000" in section[section.index("largest"):]


def test_empty_sections_are_one_line_not_lists_of_none(no_figures):
    grades = [QuestionGrade("ann", "01_softmax", q.name, float(q.points), q.points, "passed", "ok")
              for q in all_chapters()["01_softmax"].questions]
    page = report.page(grades, [{"student": "ann", "notebook": "01_softmax", "flags": [], "notes": []}], "s", [], [])
    assert "<li>none</li>" not in page and "Crashed" not in page
    assert "None this run: crashes, timeouts or memory kills" in page
    assert "id='resources'" not in page  # nothing ran in a sandbox, nothing to plot


def test_the_report_is_the_same_bytes_for_the_same_run(rendered):
    assert report.page(*rendered[2]) == rendered[3]


# --- a published OUT in Chromium -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """An OUT folder written by publish() from synthetic grades: gradebook, feedback pages and report."""
    out = tmp_path_factory.mktemp("out")
    grades, runs = synthetic(40)
    chapters = all_chapters()
    slots = []
    for run in runs:
        if run["student"] not in ON_DISK and not run["student"].startswith("student"):
            continue
        submission = discover.Submission(run["student"], run["notebook"], None)
        slot = pipeline.Slot(submission, chapters[run["notebook"]], run=run)
        slot.grades = [g for g in grades if (g.student, g.notebook) == (run["student"], run["notebook"])]
        slots.append(slot)
    identities = {"José Ñúñez 李": Identity(name="Ñúñez, José")}
    lateness = {("a#b", "02_losses"): Lateness(days=1.0, penalty=0.1, source="file time")}
    run = pipeline.Run(out=out, root=out, assignment=discover.Assignment(list(NOTEBOOKS), {}, "test"), slots=slots,
                       strays=[], stray_files=[], identities=identities, lateness=lateness)
    pipeline.publish(run)
    return out


def test_the_published_report_works_offline_in_chromium(published, browser):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))  # a name's script that ran
    page.on("request", lambda r: problems.append(f"outside request: {r.url}")
            if not r.url.startswith(("file://", "data:")) else None)
    page.goto((published / "report.html").as_uri(), wait_until="load")
    assert problems == []
    links = page.eval_on_selector_all("a[href^='feedback/']", "links => links.map(a => a.href)")
    pages = list((published / "feedback").glob("*/*.html"))
    assert len(pages) == 2 * (len(ON_DISK) + 40 - len(HOSTILE)) and len(set(links)) == len(pages)
    missing = [url for url in links if not Path(unquote(urlparse(url).path)).is_file()]
    assert missing == []
    for hostile in ("a%23b", "what%3F", "100%25", "%3Cimg%20src%3Dx"):  # the browser itself finds these pages
        url = next(url for url in links if f"/{hostile}" in url)
        page.goto(url, wait_until="load")
        assert page.title().startswith(("01_softmax", "02_losses")), url
    assert problems == []
    page.goto((published / "report.html").as_uri(), wait_until="load")
    assert page.locator("table.sortable td", has_text="Ñúñez, José").count() == 1  # the roster name
    first = page.eval_on_selector("table.sortable tbody tr", "row => row.cells[0].dataset.v")
    page.click("table.sortable th:first-child")  # already by name: the first click sorts ascending
    page.click("table.sortable th:first-child")
    assert page.eval_on_selector("table.sortable tbody tr", "row => row.cells[0].dataset.v") != first
    context.close()
    assert problems == []
