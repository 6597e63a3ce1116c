"""What the API guard (course.apis) costs: each chapter's solution probed on its visible cases with and without it.

    python benchmarks/api_guard_overhead.py [CHAPTER ...]

Runs the solution notebook's code cells (self-checks off), then for every question times the probe of all visible
cases, best of 3, bare and under ``apis.guard`` with the question's rule. Timings on a loaded machine are noisy: it is
the ratio that matters.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ["COURSE_SKIP_CHECKS"] = "1"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course import apis  # noqa: E402
from course.chapters import all_chapters  # noqa: E402
from course.grading import reading, runner  # noqa: E402


def _probe(question):
    return getattr(question, "probe", None) or question.run


def best_of(n, fn):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(chapter_ids: list[str]) -> None:
    if not hasattr(next(iter(all_chapters().values())).questions[0], "apis"):
        apis.COURSE_CODE = ()  # before the probe/judge split the probes live in course.chapters: do not flag them
        apis._DIRS.clear()
    for chapter_id, chapter in all_chapters().items():
        if chapter_ids and chapter_id not in chapter_ids:
            continue
        path = ROOT / "solutions" / f"{chapter_id}.ipynb"
        if not path.exists():
            continue
        namespace = runner.fresh_namespace()
        for index, cell in enumerate(reading.extract(path).cells):
            runner.run_cell(cell, index, namespace)
        for question in chapter.questions:
            rule = getattr(question, "apis", "numpy")
            obj, cases, probe = namespace[question.name], question.cases(), _probe(question)

            def bare():
                for case in cases:
                    probe(obj, case)

            def guarded():
                for case in cases:
                    with apis.guard(rule):
                        probe(obj, case)

            bare()  # warm up (imports, tracing)
            if not hasattr(question, "apis"):  # before the split: the rule the solution passes
                try:
                    guarded()
                except apis.ForbiddenCall:
                    rule = "any"
            plain, watched = best_of(3, bare), best_of(3, guarded)
            print(f"{chapter_id} {question.name:28s} {rule:5s} bare {plain * 1e3:9.1f} ms  "
                  f"guarded {watched * 1e3:9.1f} ms  x{watched / max(plain, 1e-9):.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
