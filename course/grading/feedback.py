"""One HTML page per student and notebook: what passed, what failed and a hint for each failure.

The page never shows test code or expected values: case labels describe the inputs, messages name the likely
mistake, and any number a judge gave as "expected" is removed (:func:`redact`).
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from .cache import write_atomic
from .judging import QuestionGrade
from .people import Lateness

#: Largest feedback page (characters). A page of a chapter's questions with their cases is a few kilobytes; past the
#: cap the rest is left out with a note, so no answer can make a page (or the folder of pages) enormous.
MAX_PAGE_CHARS = 200_000

def redact(message: str) -> str:
    """A verdict message without expected values.

    >>> redact("softmax differs: at (0, 1) got 0.2, expected 0.3")
    'softmax differs: at (0, 1) got 0.2, expected a different value'
    >>> redact("has NaN at (0,) where the answer is finite (0.25): an overflow")
    'has NaN at (0,) where the answer is finite: an overflow'
    """
    message = re.sub(r"expected\s+[-+]?[\d.]+(e[-+]?\d+)?", "expected a different value", message, flags=re.I)
    message = re.sub(r"expected\s+\(?[\d, ]+\)?(?=\s|$|;)", "expected another shape", message, flags=re.I)
    message = re.sub(r"(answer is \w+)\s*\([^)]*\)", r"\1", message, flags=re.I)
    # got ± error would give the expected value back
    message = re.sub(r"\s*\((abs(olute)? )?error [^)]*\)", "", message, flags=re.I)
    message = re.sub(r"(largest (gap|error|difference))\s+[-+]?[\d.]+(e[-+]?\d+)?", r"\1", message, flags=re.I)
    return message


_STYLE = """body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:top}.passed{color:#176b2c}.failed,.error,.timeout,.memory,.crashed,.forbidden{color:#a11}
.hint{background:#f3f6fa;border-left:3px solid #4a78b0;padding:.4rem .7rem}"""


def page(student: str, notebook: str, grades: list[QuestionGrade], notes: list[str],
         late: Lateness | None = None) -> str:
    """The feedback page's HTML; ``late`` (when the notebook was late) says what the penalty took off, so the score
    the student reads is the one in the gradebook."""
    e = html.escape
    total = sum(g.points for g in grades)
    maximum = sum(g.max_points for g in grades)
    score = f"Score: <strong>{total:.2f} / {maximum}</strong>."
    if late is not None and late.days > 0:
        days = f"{late.days:g} day{'s' if late.days != 1 else ''}"
        score = (f"Handed in {e(days)} late ({e(late.source)}): {late.penalty:.0%} of the points taken off. "
                 f"Score: {total:.2f} before the penalty, <strong>{total * (1 - late.penalty):.2f} / {maximum}"
                 f"</strong> after it.")
    parts = [f"<!doctype html><meta charset='utf-8'><title>{e(notebook)}: {e(student)}</title>",
             f"<style>{_STYLE}</style><h1>{e(notebook)}</h1><p>Student: {e(student)}. {score}</p>"]
    for note in notes:
        parts.append(f"<p class='hint'>{e(note)}</p>")
    for g in grades:
        parts.append(f"<h2>{e(g.question)}: <span class='{e(g.status)}'>{e(g.status)}</span> "
                     f"({g.points:.2f} / {g.max_points})</h2>")
        if g.cases and g.status != "not-attempted":  # an untouched question is said once, not once per case
            parts.append("<table><tr><th>hidden check</th><th>result</th></tr>")
            for case in g.cases:
                verdict = "passed" if case.passed else e(redact(case.message)) or "failed"
                parts.append(f"<tr><td>{e(case.label)}</td><td class='{'passed' if case.passed else 'failed'}'>"
                             f"{verdict}</td></tr>")
            parts.append("</table>")
        elif g.status != "passed":
            parts.append(f"<p>{e(redact(g.message))}</p>")
        if g.status != "passed" and g.hint:
            parts.append(f"<p class='hint'>Hint: {e(g.hint)}</p>")
    return _capped(parts)


def _capped(parts: list[str]) -> str:
    """The page's parts joined, stopping at a whole part once :data:`MAX_PAGE_CHARS` is reached, with a note."""
    kept, size = [], 0
    for part in parts:
        if size + len(part) > MAX_PAGE_CHARS:
            kept.append(f"<p class='hint'>[truncated: this page was over {MAX_PAGE_CHARS // 1000} kB; the rest of "
                        f"it is left out]</p>")
            break
        kept.append(part)
        size += len(part) + 1
    return "\n".join(kept) + "\n"


def write(out: Path, student: str, notebook: str, grades: list[QuestionGrade], notes: list[str],
          late: Lateness | None = None) -> Path:
    """Write one feedback page; the student's folder name is used as is (it is a name that already exists)."""
    path = out / "feedback" / student / f"{notebook}.html"
    write_atomic(path, page(student, notebook, grades, notes, late))
    return path
