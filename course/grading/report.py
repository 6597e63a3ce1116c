"""report.html, the page an instructor opens first: who got what, what the class gets wrong, what needs a look.

One self-contained file that works offline: no script, font or style from outside, the charts are PNGs inside the
page (data: URLs), and the table's column sorting is a few lines of inline script (the rows are already sorted by
name without it). The HTML is written by hand rather than with a template library: it is a handful of tables and
lists, and the one rule that matters (every string from a submission goes through :func:`_e`, every link through
:func:`_href`) is easier to see in twenty lines of Python than across a template and its filters.

Sections with nothing in them are left out, and the empty ones among "needs a look" are named in one line.
"""
from __future__ import annotations

import base64
import html
import io
import re
import statistics
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import quote

from . import gradebook, text
from .cache import write_atomic
from .feedback import redact
from .judging import QuestionGrade
from .people import Identity, Lateness

#: Per-question result groups, in the order of the stacked bars: (label, statuses, colour).
GROUPS = (("passed", ("passed",), "#2e8b57"), ("failed", ("failed",), "#e3a33b"),
          ("error", ("error",), "#c0392b"), ("not attempted", ("not-attempted",), "#b8bec6"),
          ("timeout or memory", ("timeout", "memory"), "#7d4ea8"), ("crashed", ("crashed",), "#6b1d1d"),
          ("forbidden", ("forbidden",), "#d4601a"), ("unreadable or missing", ("unreadable", "missing"), "#5d6d7e"))
#: Statuses shown as a badge in the students' table (the others are ordinary results).
BADGES = ("timeout", "memory", "crashed", "forbidden", "unreadable", "missing")
#: Statuses whose messages are a diagnosis of the answer (not a missing file or an untouched stub).
DIAGNOSED = ("failed", "error", "timeout", "memory", "crashed", "forbidden")
#: Longest message shown in a cell or list item (the full text is in grades.csv and the feedback page).
MESSAGE_CHARS = 240
_NL = "\n"  # f-strings before Python 3.12 take no backslash
#: Outliers named in the time and memory section.
OUTLIERS = 5

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:72rem;margin:1.5rem auto;padding:0 1rem;color:#222;line-height:1.4}
h1{margin-bottom:.3rem}h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}h3{margin:1.2rem 0 .3rem}
nav a{margin-right:1rem}img{max-width:100%;height:auto}.note{color:#555;font-size:.9rem}
.box{overflow:auto;max-width:100%;border:1px solid #ddd;margin:.5rem 0 1rem}
.tall{max-height:75vh}
table{border-collapse:collapse;font-size:.88rem;width:100%}
th,td{padding:.18rem .45rem;border-bottom:1px solid #eee;text-align:left;vertical-align:top;white-space:nowrap}
td.wrap{white-space:normal;min-width:18rem}td.badges{white-space:normal;min-width:9rem}
th{position:sticky;top:0;background:#f4f6f8;z-index:1;border-bottom:1px solid #ccc;white-space:normal;
vertical-align:bottom}
th[data-type]{cursor:pointer}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafbfc}
.sortable td:first-child,.sortable th:first-child{position:sticky;left:0;background:#fff}
.sortable th:first-child{z-index:2;background:#f4f6f8}
.sortable tbody tr:nth-child(even) td:first-child{background:#fafbfc}
.sortable td:first-child{max-width:16rem;overflow:hidden;text-overflow:ellipsis}
@media (max-width:40rem){.sortable td:first-child{max-width:9rem}body{padding:0 .5rem}}
.folder{color:#666;font-size:.8rem}
.badge{display:inline-block;padding:0 .35rem;margin:0 .15rem .1rem 0;border-radius:.6rem;font-size:.75rem;
color:#fff;background:#777}
.b-timeout,.b-memory{background:#7d4ea8}.b-crashed{background:#6b1d1d}.b-forbidden{background:#d4601a}
.b-unreadable,.b-missing{background:#5d6d7e}.b-late{background:#b03a2e}.b-flag{background:#fff;color:#8a5a00;
border:1px solid #c9a227}
.bar{display:flex;width:16rem;height:1rem;background:#eee;margin-top:.15rem}.bar span{display:block;height:100%}
td.results{white-space:normal;width:16rem;min-width:16rem}td.results .note{font-size:.78rem}
.legend span{display:inline-block;margin-right:.8rem;font-size:.85rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.25rem;vertical-align:-.1rem}
ul.items{padding:.3rem .5rem .3rem 1.7rem;margin:.3rem 0;max-height:18rem;overflow:auto;border:1px solid #eee}
ul.items li{margin:.15rem 0}
"""

#: Click a header to sort by that column (numbers by their data-v value); click again to reverse.
_SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, column) {
    if (!th.dataset.type) return;
    th.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var value = function (row) {
        var cell = row.cells[column];
        return cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent;
      };
      var compare = th.dataset.type === "num"
        ? function (x, y) { return parseFloat(x) - parseFloat(y); }
        : function (x, y) { return x.localeCompare(y, undefined, {sensitivity: "base"}); };
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) { return (up ? 1 : -1) * compare(value(a), value(b)); });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _e(value: object) -> str:
    """Any text for HTML: made valid (text.clean) and escaped, quotes included (it may land in an attribute)."""
    return html.escape(text.clean(value), quote=True)


def _short(message: str) -> str:
    return text.capped(" ".join(text.clean(message).split()), MESSAGE_CHARS, "…")


def _href(student: str, notebook: str) -> str:
    """The relative link to a feedback page: each part percent-quoted whole ('/', '#', '?', '%', '..' stay text)."""
    parts = [text.clean(student), f"{text.clean(notebook)}.html"]
    return "feedback/" + "/".join(quote(part, safe="") for part in parts)


def _link(student: str, notebook: str, label: str) -> str:
    return f"<a href='{_e(_href(student, notebook))}'>{label}</a>"


def _points(value: float) -> str:
    return f"{value:.2f}"


def _figure(fig, alt: str) -> str:
    """A matplotlib figure as an <img> inside the page, with the alt text that says what it shows."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<p><img alt='{_e(alt)}' src='data:image/png;base64,{data}'></p>"


def _sort_key(name: str) -> str:
    """Names in a reader's order: case and accents ignored (Ñúñez between Nilsson and Nyberg)."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


# --- facts -------------------------------------------------------------------------------------------------------

class _Facts:
    """What every section reads: the grades by student and notebook, the maxima, names, lateness and runs."""

    def __init__(self, grades: list[QuestionGrade], runs: list[dict], identities: dict[str, Identity],
                 lateness: dict[tuple[str, str], Lateness]):
        self.grades = grades
        # the gradebook's own sums, so the page and summary.csv cannot disagree
        self.notebooks, per_student, self.maxima = gradebook.totals(grades)
        self.points: dict[tuple[str, str], float] = defaultdict(float, {
            (student, nb): points for student, by_notebook in per_student.items() for nb, points in by_notebook.items()})
        # by notebook, each notebook's questions in the order they come (the chapter's): a stable sort
        self.questions = sorted(dict.fromkeys((g.notebook, g.question) for g in grades), key=lambda nq: nq[0])
        self.by_slot: dict[tuple[str, str], list[QuestionGrade]] = defaultdict(list)
        for g in grades:
            self.by_slot[g.student, g.notebook].append(g)
        self.identities = identities
        self.lateness = lateness
        self.runs = {(r.get("student"), r.get("notebook")): r for r in runs}
        self.students = sorted({g.student for g in grades} | {r.get("student") for r in runs if r.get("student")},
                               key=lambda s: (_sort_key(self.name(s)), s))

    def name(self, student: str) -> str:
        """The roster's name when there is one, else the folder's."""
        identity = self.identities.get(student)
        return identity.name if identity and identity.name else student

    def final(self, student: str, notebook: str) -> float:
        late = self.lateness.get((student, notebook))
        raw = self.points[student, notebook]
        return raw * (1 - late.penalty) if late else raw


# --- sections ----------------------------------------------------------------------------------------------------

def _students_table(facts: _Facts) -> str:
    late_notebooks = [nb for nb in facts.notebooks if any(n == nb for (_, n) in facts.lateness)]
    total_max = sum(facts.maxima.values())
    heads = ["<th data-type='text'>student</th>"]
    for nb in facts.notebooks:
        if nb in late_notebooks:
            heads += [f"<th class='num' data-type='num'>{_e(nb)} raw</th>",
                      f"<th class='num' data-type='num'>{_e(nb)} late penalty</th>",
                      f"<th class='num' data-type='num'>{_e(nb)} final (of {facts.maxima[nb]})</th>"]
        else:
            heads.append(f"<th class='num' data-type='num'>{_e(nb)} (of {facts.maxima[nb]})</th>")
    heads += [f"<th class='num' data-type='num'>total (of {total_max})</th>", "<th data-type='text'>status</th>",
              "<th data-type='num'>flags</th>"]
    rows = []
    for student in facts.students:
        name = facts.name(student)
        full = name if name == student else f"{name} ({student})"
        cells = [f"<td data-v='{_e(name)}' title='{_e(full)}'>{_e(name)}"
                 + (f" <span class='folder'>({_e(student)})</span>" if name != student else "") + "</td>"]
        total = 0.0
        for nb in facts.notebooks:
            raw, final = facts.points[student, nb], facts.final(student, nb)
            total += final
            has_page = (student, nb) in facts.by_slot
            shown = _link(student, nb, _points(final)) if has_page else "–"
            if nb in late_notebooks:
                cells += [f"<td class='num' data-v='{raw:.4f}'>{_points(raw)}</td>",
                          _penalty_cell(facts.lateness.get((student, nb)))]
            cells.append(f"<td class='num' data-v='{final:.4f}'>{shown}</td>")
        cells.append(f"<td class='num' data-v='{total:.4f}'>{_points(total)}</td>")
        cells.append(f"<td class='badges'>{_badges(facts, student)}</td>")
        flags = _flags_of(facts, student)
        flag = f"<span class='badge b-flag' title='{_e(_NL.join(flags))}'>⚑ {len(flags)}</span>" if flags else ""
        cells.append(f"<td data-v='{len(flags)}'>{flag}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = ("Points are the questions' own (grades.csv), before any rescaling by an assignment file's [points]. "
            "Click a column's header to sort by it; a notebook's points link to the student's feedback page.")
    if late_notebooks:
        note += " Final points are the raw points × (1 − late penalty)."
    return (f"<h2 id='students'>Students ({len(facts.students)})</h2><p class='note'>{note}</p>"
            f"<div class='box tall'><table class='sortable'><thead><tr>{''.join(heads)}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _penalty_cell(late: Lateness | None) -> str:
    if late is None:
        return "<td class='num' data-v='0'></td>"
    said = f"−{late.penalty:.0%}" if late.penalty else "0%"
    return (f"<td class='num' data-v='{late.penalty:.4f}' title='{_e(late.source)}'>{said} "
            f"<span class='folder'>({late.days:g} d)</span></td>")


def _badges(facts: _Facts, student: str) -> str:
    found: dict[str, list[str]] = defaultdict(list)
    for nb in facts.notebooks:
        for g in facts.by_slot.get((student, nb), []):
            if g.status in BADGES:
                where = nb if g.status in ("unreadable", "missing") else f"{nb} · {g.question}"
                line = f"{where}: {_short(g.message)}"
                if line not in found[g.status]:
                    found[g.status].append(line)
        late = facts.lateness.get((student, nb))
        if late and late.days > 0:
            found["late"].append(f"{nb}: {late.days:g} days late ({late.source}), −{late.penalty:.0%}")
    return "".join(f"<span class='badge b-{status}' title='{_e(_NL.join(lines))}'>{status}"
                   f"{f' ×{len(lines)}' if len(lines) > 1 else ''}</span>" for status, lines in found.items())


def _flags_of(facts: _Facts, student: str) -> list[str]:
    return [f"{nb}: {_short(item)}" for nb in facts.notebooks
            for item in _run_flags(facts.runs.get((student, nb), {}))]


def _run_flags(run: dict) -> list[str]:
    return list(run.get("flags", [])) + list(run.get("notes", [])) + list(run.get("remarks", []))


def _questions(facts: _Facts) -> str:
    legend = "".join(f"<span><i style='background:{colour}'></i>{label}</span>" for label, _, colour in GROUPS)
    rows = []
    for nb, question in facts.questions:
        graded = [g for g in facts.grades if (g.notebook, g.question) == (nb, question)]
        counts = [(label, sum(g.status in statuses for g in graded), colour) for label, statuses, colour in GROUPS]
        bar = "".join(f"<span style='width:{100 * n / len(graded):.2f}%;background:{colour}' title='{label}: {n}'>"
                      f"</span>" for label, n, colour in counts if n)
        said = ", ".join(f"{n} {label}" for label, n, _ in counts if n)
        rows.append(f"<tr><td>{_e(nb)} · {_e(question)}</td><td class='results'><div class='bar' role='img' "
                    f"aria-label='{said}'>{bar}</div><span class='note'>{said}</span></td>"
                    f"<td class='wrap'>{_diagnosis(graded)}</td></tr>")
    return (f"<h2 id='questions'>Questions</h2><p class='note'>How each question went for the class, and the most "
            f"common failing hidden case's message (expected values removed): what the class gets wrong. Counts are "
            f"students.</p><p class='legend'>{legend}</p><div class='box'><table><thead><tr><th>question</th>"
            f"<th>results (students)</th><th>most common diagnosis</th></tr></thead><tbody>{''.join(rows)}"
            f"</tbody></table></div>")


#: What judging adds to a failed case's message about the case itself: left out when counting diagnoses, so that one
#: mistake made on two kinds of case counts as one diagnosis.
_SKILL_NOTE = re.compile(r"\s*\(this case tests .*\)$")


def _diagnosis(graded: list[QuestionGrade]) -> str:
    """The two most frequent messages of the students who did not pass (each student counted once per message)."""
    seen: Counter = Counter()
    for g in graded:
        if g.status not in DIAGNOSED:
            continue
        messages = {_short(_SKILL_NOTE.sub("", redact(c.message))) for c in g.cases if not c.passed and c.message}
        seen.update(messages or ({_short(redact(g.message))} if g.message else set()))
    if not seen:
        return ""
    top = sorted(seen.items(), key=lambda item: (-item[1], item[0]))[:2]
    return "<br>".join(f"{_e(message)} <span class='note'>({n} student{'' if n == 1 else 's'})</span>"
                       for message, n in top)


def _score_figures(facts: _Facts) -> str:
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    parts = []
    for nb in facts.notebooks:
        maximum = facts.maxima[nb]
        scores = [facts.points[s, nb] for s in facts.students if (s, nb) in facts.by_slot]
        if maximum <= 25:
            # one bar per whole point, centred on it: a score of 7.5 counts as 8 (round half up), full marks apart
            edges = np.arange(-0.5, maximum + 1.0, 1.0)
            values = np.floor(np.asarray(scores) + 0.5)
        else:
            edges, values = np.linspace(0, maximum, 21), np.asarray(scores)
        counts, edges = np.histogram(np.clip(values, 0, maximum), bins=edges)
        fig, ax = plt.subplots(figsize=(6.4, 2.8))
        bars = ax.bar((edges[:-1] + edges[1:]) / 2, counts, width=(edges[1] - edges[0]) * 0.9, color="#4a78b0")
        ax.bar_label(bars, labels=[str(c) if c else "" for c in counts], fontsize=8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if maximum <= 25:
            ax.set_xticks(range(0, maximum + 1))
        ax.set(title=f"{nb}: points of {len(scores)} students", xlabel=f"points (of {maximum})", ylabel="students",
               ylim=(0, max(1, counts.max()) * 1.18))
        ax.spines[["top", "right"]].set_visible(False)
        full = sum(s >= maximum for s in scores)
        zero = sum(s <= 0 for s in scores)
        median = statistics.median(scores) if scores else 0
        alt = (f"Histogram of the points of {len(scores)} students in {nb} (of {maximum}), "
               f"{'one bar per whole point' if maximum <= 25 else 'in 20 bins'}: median {median:.2f}, "
               f"{full} with full marks, {zero} with 0 points.")
        parts.append(_figure(fig, alt))
    return ("<h2 id='scores'>Scores</h2><p class='note'>Points before any late penalty; a score between two whole "
            "points is counted at the nearest one.</p>" + "".join(parts))


def _resources(facts: _Facts, runs: list[dict], wall_seconds: float | None) -> str:
    import matplotlib.pyplot as plt

    measured = [r for r in runs if r.get("seconds") is not None]
    waited = [r["queued_seconds"] for r in runs if r.get("queued_seconds") is not None]
    cached = sum(bool(r.get("cached")) for r in runs)
    lines = []
    if wall_seconds is not None:
        lines.append(f"The whole run took {wall_seconds:.1f} s of wall time (what you waited).")
    if measured:
        times = [r["seconds"] for r in measured]
        lines.append(f"Time in the sandbox (the worker's clock for one submission, all attempts; what --timeout "
                     f"limits): median {statistics.median(times):.1f} s, longest {max(times):.1f} s, over "
                     f"{len(measured)} submissions.")
    if waited:
        lines.append(f"Waiting in the queue (from the start of grading until a ready worker took the submission, "
                     f"the workers' start-up included): longest {max(waited):.1f} s.")
    held = [r["worker_seconds"] for r in runs if r.get("worker_seconds") is not None]
    if held:
        lines.append(f"With a worker (handed over until the answer was back: the sandbox time plus setting up "
                     f"each sandbox): median {statistics.median(held):.1f} s, longest {max(held):.1f} s.")
    if cached:
        lines.append(f"{cached} submissions came from the cache: their sandbox time and memory were measured by the "
                     f"run that first graded them, and they did not wait in this run's queue.")
    if not measured:
        return (f"<h2 id='resources'>Time and memory</h2><p>{' '.join(lines)} No submission ran in a sandbox.</p>"
                if lines else "")
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for nb in sorted({r["notebook"] for r in measured}):
        points = [r for r in measured if r["notebook"] == nb]
        ax.scatter([r["seconds"] for r in points], [r.get("peak_mb") or 0 for r in points], label=nb, alpha=0.7)
    ax.legend(fontsize=8)
    ax.set(xlabel="time in the sandbox (s, all attempts)", ylabel="peak memory (MB, resident)",
           title="Time and memory per submission")
    slowest = sorted(measured, key=lambda r: (-r["seconds"], r["student"], r["notebook"]))[:OUTLIERS]
    largest = sorted([r for r in measured if r.get("peak_mb") is not None],
                     key=lambda r: (-r["peak_mb"], r["student"], r["notebook"]))[:OUTLIERS]
    alt = (f"Scatter plot of {len(measured)} submissions, time in the sandbox against peak memory. Slowest: "
           + ", ".join(f"{r['student']} ({r['seconds']:.1f} s)" for r in slowest[:3])
           + ". Largest: " + ", ".join(f"{r['student']} ({r['peak_mb']:.0f} MB)" for r in largest[:3]) + ".")
    return (f"<h2 id='resources'>Time and memory</h2><p>{' '.join(lines)}</p>{_figure(fig, alt)}"
            f"<h3>The {len(slowest)} slowest</h3>{_outliers(facts, slowest)}"
            f"<h3>The {len(largest)} largest</h3>{_outliers(facts, largest)}")


def _outliers(facts: _Facts, runs: list[dict]) -> str:
    rows = "".join(
        f"<tr><td>{_link(r['student'], r['notebook'], _e(facts.name(r['student'])))}</td><td>{_e(r['notebook'])}</td>"
        f"<td class='num'>{r['seconds']:.1f}</td>"
        f"<td class='num'>{'' if r.get('peak_mb') is None else format(r['peak_mb'], '.0f')}</td>"
        f"<td class='num'>{'' if r.get('queued_seconds') is None else format(r['queued_seconds'], '.1f')}</td>"
        f"<td class='num'>{r.get('attempts') or ''}</td></tr>" for r in runs)
    return ("<div class='box'><table><thead><tr><th>student</th><th>notebook</th><th class='num'>time in the "
            "sandbox (s)</th><th class='num'>peak memory (MB)</th><th class='num'>waited in the queue (s)</th>"
            f"<th class='num'>attempts</th></tr></thead><tbody>{rows}</tbody></table></div>")


def _attention(facts: _Facts, runs: list[dict], stray: list[str], stray_notebooks: list[str]) -> str:
    def rows_with(*statuses, per_notebook=False):
        items = [(g.student, g.notebook, f"{g.student} · {g.notebook}"
                  + ("" if per_notebook else f" · {g.question}") + f": {_short(g.message)}")
                 for g in facts.grades if g.status in statuses]
        return list(dict.fromkeys(items))  # a notebook that could not be read is listed once, not per question

    flagged = [(r["student"], r["notebook"], f"{r['student']} · {r['notebook']}: {'; '.join(_run_flags(r))}")
               for r in runs if _run_flags(r)]
    late = [(s, nb, f"{s} · {nb}: {v.days:g} days late ({v.source}), −{v.penalty:.0%}")
            for (s, nb), v in sorted(facts.lateness.items()) if v.days > 0]
    lists = [("Crashed", "crashes", rows_with("crashed")),
             ("Timed out or out of memory", "timeouts or memory kills", rows_with("timeout", "memory")),
             ("Forbidden calls (a question that asks for NumPy answered with a framework or the course's own code)",
              "forbidden calls", rows_with("forbidden")),
             ("Unreadable or missing notebooks", "unreadable or missing notebooks",
              rows_with("unreadable", "missing", per_notebook=True)),
             ("Flagged for a look (tampering patterns, misnamed files)", "flags", flagged),
             ("Late", "late submissions", late),
             ("Notebooks not part of the assignment (not graded)", "stray notebooks",
              [(None, None, item) for item in stray_notebooks]),
             ("Files at the top of the submissions folder (not graded)", "stray files",
              [(None, None, item) for item in stray])]
    parts, empty = [], []
    for title, plural, items in lists:
        if not items:
            empty.append(plural)
            continue
        body = "".join(f"<li>{_e(line)}" + (f" {_link(student, nb, 'feedback')}" if student is not None else "")
                       + "</li>" for student, nb, line in items)
        parts.append(f"<h3>{_e(title)} ({len(items)})</h3><ul class='items'>{body}</ul>")
    if empty:
        parts.append(f"<p class='note'>None this run: {', '.join(empty)}.</p>")
    return "<h2 id='attention'>Needs a look</h2>" + "".join(parts)


def page(grades: list[QuestionGrade], runs: list[dict], summary: str, stray: list[str],
         stray_notebooks: list[str] = (), identities: dict[str, Identity] | None = None,
         lateness: dict[tuple[str, str], Lateness] | None = None, wall_seconds: float | None = None) -> str:
    """The report's HTML.

    ``identities`` maps a student (the shown folder name, as in ``grades``) to their roster entry, ``lateness`` a
    (student, notebook) to its lateness; ``wall_seconds`` is the whole run's wall time.
    """
    facts = _Facts(grades, runs, identities or {}, lateness or {})
    nav = [("students", "Students"), ("questions", "Questions"), ("scores", "Scores"),
           ("resources", "Time and memory"), ("attention", "Needs a look")]
    sections = [_attention(facts, runs, list(stray), list(stray_notebooks))]
    if grades:
        sections = [_students_table(facts), _questions(facts), _score_figures(facts),
                    _resources(facts, runs, wall_seconds)] + sections
    shown = [(anchor, label) for anchor, label in nav if any(f"id='{anchor}'" in s for s in sections)]
    parts = ["<!doctype html><html lang='en'><meta charset='utf-8'>"
             "<meta name='viewport' content='width=device-width, initial-scale=1'><title>Grading report</title>",
             f"<style>{_STYLE}</style>",
             f"<h1>Grading report</h1><p>{_e(summary)}</p>",
             "<nav>" + "".join(f"<a href='#{anchor}'>{label}</a>" for anchor, label in shown) + "</nav>",
             *sections,
             f"<script>{_SORT_SCRIPT}</script>"]
    return "\n".join(parts) + "\n"


def write(out: Path, grades: list[QuestionGrade], runs: list[dict], summary: str, stray: list[str],
          stray_notebooks: list[str] = (), identities: dict[str, Identity] | None = None,
          lateness: dict[tuple[str, str], Lateness] | None = None, wall_seconds: float | None = None) -> Path:
    """Write report.html (see :func:`page` for the arguments)."""
    path = out / "report.html"
    write_atomic(path, page(grades, runs, summary, stray, stray_notebooks, identities, lateness, wall_seconds))
    return path
