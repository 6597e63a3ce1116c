"""``python -m course``: regenerate exercises, execute solutions, grade a class and export it to an LMS; a student's
start, lab, check.

Every user error (a missing file, an unknown chapter, a broken notebook) ends with one line on stderr and exit
status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from .errors import CourseError


def cmd_exercises(args: argparse.Namespace) -> int:
    from . import notebooks
    from .chapters import all_chapters, get_chapter

    ids = [get_chapter(c).id for c in args.chapters] if args.chapters else list(all_chapters())
    if args.check:
        stale = notebooks.stale_exercises(ids)
        if stale:
            raise CourseError(f"stale exercises: {', '.join(stale)}; run `make exercises` and commit the result")
        print(f"exercises up to date: {len(ids)} chapters")
        return 0
    for chapter_id in ids:
        print(f"wrote {notebooks.write_exercise(chapter_id).relative_to(notebooks.ROOT)}")
    return 0


def cmd_execute(args: argparse.Namespace) -> int:
    from .execute import execute_in_place

    for path in args.notebooks:
        seconds = execute_in_place(path, timeout=args.timeout)
        print(f"executed {path} in {seconds:.1f} s")
    return 0


def cmd_page(args: argparse.Namespace) -> int:
    from .pages import run_page

    return max(run_page(path, args.save if len(args.pages) == 1 else None) for path in args.pages)


def cmd_instructor_sources(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .editions import write_instructor_sources

    for path in write_instructor_sources(Path(args.out)):
        print(f"wrote {path}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from .workfolder import start

    result = start(args.folder, args.chapters or None)
    for name in result.copied:
        print(f"added {result.folder / name}")
    if result.kept:
        print(f"kept as they are (never overwritten): {', '.join(result.kept)}")
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .lab import run_lab

    cmd_start(argparse.Namespace(folder=args.folder, chapters=[]))
    return run_lab(Path(args.folder), args.port)


def cmd_check(args: argparse.Namespace) -> int:
    from .student_check import check_all, format_report

    limits = {name: getattr(args, name) for name in ("cell_seconds", "question_seconds", "submission_seconds")
              if getattr(args, name) is not None}
    reports = check_all(args.notebooks, workers=args.workers, limits=limits)
    for report in reports:
        print(format_report(report), flush=True)
    return 0 if all(report.ok for report in reports) else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run

    return run()


def cmd_grade(args: argparse.Namespace) -> int:
    try:
        from .grading.cli import run
    except ImportError:
        raise CourseError("the grader is not installed in this checkout") from None
    return run(args)


def cmd_export(args: argparse.Namespace) -> int:
    try:
        from .grading.cli import run_export
    except ImportError:
        raise CourseError("the grader is not installed in this checkout") from None
    return run_export(args)


def cmd_grade_merge(args: argparse.Namespace) -> int:
    from .grading.cli import run_merge

    return run_merge(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("exercises", help="regenerate exercises/ from solutions/ (or --check that they are fresh)")
    p.add_argument("chapters", nargs="*", help="chapter ids such as 01_softmax (default: all)")
    p.add_argument("--check", action="store_true", help="fail if a committed exercise is stale")
    p.set_defaults(func=cmd_exercises)

    p = sub.add_parser("execute", help="execute notebooks in place, storing their outputs")
    p.add_argument("notebooks", nargs="+")
    p.add_argument("--timeout", type=int, default=120, help="seconds per cell (default 120)")
    p.set_defaults(func=cmd_execute)

    p = sub.add_parser("page", help="execute book pages outside Sphinx and report errors, stderr and time")
    p.add_argument("pages", nargs="+")
    p.add_argument("--save", help="write the executed notebook here (one page only)")
    p.set_defaults(func=cmd_page)

    p = sub.add_parser("instructor-sources", help="write the instructor edition's _config.yml and _toc.yml")
    p.add_argument("out", help="folder to write them into")
    p.set_defaults(func=cmd_instructor_sources)

    p = sub.add_parser("start", help="copy the exercise notebooks into your work folder (never overwrites)")
    p.add_argument("folder", help="your work folder (created if missing)")
    p.add_argument("chapters", nargs="*", help="chapter ids such as 01_softmax (default: all)")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("lab", help="start JupyterLab on 127.0.0.1 in your work folder (offline)")
    p.add_argument("folder", nargs="?", default="work", help="your work folder (default: work)")
    p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: 8888, or a free one)")
    p.set_defaults(func=cmd_lab)

    p = sub.add_parser("check", help="run notebooks the way the grader will, on the visible cases, and report")
    p.add_argument("notebooks", nargs="+")
    p.add_argument("--workers", type=int, default=1, help="notebooks checked in parallel (default 1)")
    # The grader's own options, for an instructor who grades with other limits than the defaults.
    p.add_argument("--timeout", dest="submission_seconds", type=float, help="as for grade: one notebook's limit")
    p.add_argument("--question-timeout", dest="question_seconds", type=float, help="as for grade")
    p.add_argument("--cell-timeout", dest="cell_seconds", type=float, help="as for grade")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("doctor", help="check this Python: version, pinned packages, Keras backend, kernel")
    p.set_defaults(func=cmd_doctor)

    try:
        from .grading.cli import add_arguments, add_merge_arguments
    except ImportError:
        add_arguments = add_merge_arguments = None
    p = sub.add_parser("grade", help="grade a folder of submissions")
    if add_arguments:
        add_arguments(p)
    p.set_defaults(func=cmd_grade)

    try:
        from .grading.cli import add_export_arguments
    except ImportError:
        add_export_arguments = None
    p = sub.add_parser("export", help="write a graded run as Canvas's or Moodle's gradebook import CSV")
    if add_export_arguments:
        add_export_arguments(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("grade-merge", help="merge the --shard I/N runs of a class into one gradebook")
    if add_merge_arguments:
        add_merge_arguments(p)
    p.set_defaults(func=cmd_grade_merge)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Kernels started from here inherit the environment: one thread each, as in the Makefile's builds and tests,
    # so that timings and float32 results match what the book and CI see.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CourseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
