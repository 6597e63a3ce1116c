"""report.html for the instructor: score distributions, pass rates, time and memory, and what needs a look."""
from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path

from .cache import write_atomic
from .judging import QuestionGrade


def _figure_html(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return f"<img alt='plot' src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"


def _score_distribution(grades: list[QuestionGrade]) -> str:
    import matplotlib.pyplot as plt

    per_notebook: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    maxima: dict[str, dict[str, int]] = defaultdict(dict)
    for g in grades:
        per_notebook[g.notebook][g.student] += g.points
        maxima[g.notebook][g.question] = g.max_points
    fig, axes = plt.subplots(1, len(per_notebook), figsize=(5 * len(per_notebook), 3.2), squeeze=False)
    for ax, notebook in zip(axes[0], sorted(per_notebook)):
        maximum = sum(maxima[notebook].values())
        ax.hist(list(per_notebook[notebook].values()), bins=min(20, max(5, maximum * 2)), range=(0, maximum),
                color="#4a78b0", label=f"{len(per_notebook[notebook])} students")
        ax.set(title=f"Scores: {notebook}", xlabel=f"points (of {maximum})", ylabel="students")
        ax.legend()
    return _figure_html(fig)


def _pass_rates(grades: list[QuestionGrade]) -> str:
    import matplotlib.pyplot as plt

    names = sorted({(g.notebook, g.question) for g in grades})
    rates = [sum(g.status == "passed" for g in grades if (g.notebook, g.question) == n) /
             max(1, sum((g.notebook, g.question) == n for g in grades)) for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    ax.barh([f"{nb} · {q}" for nb, q in names], rates, color="#2e8b57", label="passed every hidden case")
    ax.set(xlim=(0, 1), xlabel="fraction of students", title="Pass rate per question")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    return _figure_html(fig)


def _resources(runs: list[dict]) -> str:
    import matplotlib.pyplot as plt

    measured = [r for r in runs if r.get("seconds") is not None]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if measured:
        for notebook in sorted({r["notebook"] for r in measured}):
            points = [r for r in measured if r["notebook"] == notebook]
            ax.scatter([r["seconds"] for r in points], [r["peak_mb"] for r in points], label=notebook, alpha=0.7)
        ax.legend()
    ax.set(xlabel="wall time of the sandbox (s, all attempts)", ylabel="peak memory (MB, resident)",
           title="Time and memory per submission")
    return _figure_html(fig)


def _listing(title: str, items: list[str]) -> str:
    e = html.escape
    body = "".join(f"<li>{e(item)}</li>" for item in items) or "<li>none</li>"
    return f"<h2>{e(title)} ({len(items)})</h2><ul>{body}</ul>"


def page(grades: list[QuestionGrade], runs: list[dict], summary: str, stray: list[str],
         stray_notebooks: list[str] = ()) -> str:
    """The report's HTML."""
    def rows_with(*statuses, per_notebook=False):
        lines = [f"{g.student} · {g.notebook}" + ("" if per_notebook else f" · {g.question}") + f": {g.message}"
                 for g in grades if g.status in statuses]
        return list(dict.fromkeys(lines))  # a notebook that could not be read is listed once, not per question

    flagged = [f"{r['student']} · {r['notebook']}: {'; '.join(r['flags'] + r['notes'] + r.get('remarks', []))}"
               for r in runs if r.get("flags") or r.get("notes") or r.get("remarks")]
    parts = ["<!doctype html><meta charset='utf-8'><title>Grading report</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
             "img{max-width:100%}li{margin:.2rem 0}</style>",
             f"<h1>Grading report</h1><p>{html.escape(summary)}</p>",
             _score_distribution(grades), _pass_rates(grades), _resources(runs),
             _listing("Crashed", rows_with("crashed")),
             _listing("Timed out or out of memory", rows_with("timeout", "memory")),
             _listing("Forbidden calls (a question that asks for NumPy answered with a framework or the course's "
                      "own code)", rows_with("forbidden")),
             _listing("Unreadable or missing notebooks", rows_with("unreadable", "missing", per_notebook=True)),
             _listing("Flagged for a look (tampering patterns, misnamed files)", flagged),
             _listing("Notebooks not part of the assignment (not graded)", list(stray_notebooks)),
             _listing("Files at the top of the submissions folder (not graded)", stray)]
    return "\n".join(parts) + "\n"


def write(out: Path, grades: list[QuestionGrade], runs: list[dict], summary: str, stray: list[str],
          stray_notebooks: list[str] = ()) -> Path:
    """Write report.html."""
    path = out / "report.html"
    write_atomic(path, page(grades, runs, summary, stray, stray_notebooks))
    return path
