"""``python -m course grade SUBMISSIONS --out OUT [--workers N] [--roster CSV] [--executor E] [--shard I/N]
...``, ``python -m course export canvas|moodle OUT --assignment NAME`` and
``python -m course grade-merge OUT SHARD_DIRS...``."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import CourseError
from . import executors
from .lateness import Policy, parse_fraction, parse_time
from .layouts import LAYOUTS
from .sandbox import Limits


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be positive")
        return value
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The grade command's arguments."""
    parser.add_argument("submissions", type=Path, help="folder with one sub-folder per student, or Canvas's or "
                                                       "Moodle's download of the submissions (zip or folder)")
    parser.add_argument("--out", type=Path, required=True, help="folder for grades.csv, summary.csv, report.html, "
                                                                "feedback/ (created; kept private)")
    parser.add_argument("--workers", type=_positive(int), default=os.cpu_count() or 1,
                        help="submissions graded in parallel, by the local executor or a dask-local cluster "
                             "(default: the number of cores); a Dask cluster's are its workers' threads")
    parser.add_argument("--timeout", type=_positive(float), default=Limits.submission_seconds,
                        help=f"wall-time limit of one submission, all attempts (default {Limits.submission_seconds:.0f})")
    parser.add_argument("--question-timeout", type=_positive(float), default=Limits.question_seconds,
                        help=f"wall-time limit of one question's hidden cases (default {Limits.question_seconds:.0f})")
    parser.add_argument("--cell-timeout", type=_positive(float), default=Limits.cell_seconds,
                        help=f"wall-time limit of one notebook cell (default {Limits.cell_seconds:.0f})")
    parser.add_argument("--memory", type=_positive(int), default=Limits.memory_mb,
                        help=f"memory of one submission in MB, beyond the preloaded frameworks (default "
                             f"{Limits.memory_mb})")
    parser.add_argument("--secret-file", type=Path, metavar="FILE",
                        help="the secret the hidden cases are drawn from (default: your own, "
                             "$XDG_CONFIG_HOME/course/grading-secret or ~/.config/course/grading-secret, created "
                             "with mode 600 on first use); name one file to share a secret with your team")
    parser.add_argument("--seed-file", type=Path, dest="seed_file", help=argparse.SUPPRESS)  # its old name
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--chapters", nargs="+", help="the chapter ids every student must hand in, e.g. 01_softmax "
                                                      "(default: the chapters more than half of the students handed "
                                                      "in)")
    chosen.add_argument("--assignment", type=Path, help="a TOML file: chapters = [\"01_softmax\", ...] and "
                                                        "optionally [points] per chapter (see the grading guide)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--executor", choices=executors.EXECUTORS, default="local",
                        help="where the sandboxes run: this machine's workers (local, the default), a Dask cluster "
                             "(dask, with --scheduler) or a Dask LocalCluster of --workers processes (dask-local); "
                             "the Dask ones need pip install 'course[dask]'")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="the Dask scheduler's address (--executor dask)")
    parser.add_argument("--shard", metavar="I/N", help="grade only shard I of N of the students (a stable hash of "
                                                       "their folder names) and save the run for grade-merge")

    lms = parser.add_argument_group("LMS: roster, layouts, late work")
    lms.add_argument("--layout", choices=LAYOUTS, default="auto",
                     help="how SUBMISSIONS is laid out: plain (<student>/<NN_topic>.ipynb), canvas (Download "
                          "Submissions zip), moodle (Download all submissions); default: detected")
    lms.add_argument("--roster", type=Path, help="CSV of the students (name, login/email, section, LMS id, SIS id, "
                                                 "folder; a Canvas gradebook export or Moodle grading worksheet "
                                                 "works as it is): joins folders to LMS identities, lists students "
                                                 "who handed nothing in")
    lms.add_argument("--due", type=_time, help="due date and time, ISO 8601, e.g. 2026-12-01T23:59+01:00 (needed "
                                               "by --submitted-at)")
    lms.add_argument("--late-penalty", type=_percent, default=0.0, metavar="PERCENT",
                     help="points taken off a late notebook per started day, e.g. 10%% (default: none)")
    lms.add_argument("--late-cap", type=_percent, default=1.0, metavar="PERCENT",
                     help="largest late penalty (default 100%%)")
    lms.add_argument("--submitted-at", type=Path, metavar="CSV",
                     help="CSV student,submitted_at[,notebook]: the submission times (else only Canvas's _LATE_ "
                          "marks count, as one day)")
    lms.add_argument("--bom", action="store_true", help="write the CSV files with a UTF-8 byte-order mark (Excel)")


def _percent(text: str) -> float:
    try:
        return parse_fraction(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _time(text: str):
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    """The grade-merge command's arguments."""
    parser.add_argument("out", type=Path, help="folder for the merged grades.csv, summary.csv, report.html, feedback/")
    parser.add_argument("shards", type=Path, nargs="+", help="the --out folders of the N shards")


def run(args: argparse.Namespace) -> int:
    """Grade; exit 0 whatever the submissions did (their problems are in the gradebook)."""
    from .pipeline import Options, grade
    from .shards import parse

    if args.seed_file:
        print("note: --seed-file is now called --secret-file", file=sys.stderr)
    if args.submissions is None or not args.submissions.exists():
        raise CourseError(f"{args.submissions}: no such folder or zip file of submissions")
    limits = Limits(memory_mb=args.memory, cell_seconds=args.cell_timeout, question_seconds=args.question_timeout,
                    submission_seconds=args.timeout)
    options = Options(submissions=args.submissions, out=args.out, workers=args.workers, limits=limits,
                      secret_file=args.secret_file or args.seed_file, chapters=args.chapters,
                      assignment=args.assignment,
                      progress=not args.no_progress, layout=args.layout, roster=args.roster, bom=args.bom,
                      late=Policy(due=args.due, per_day=args.late_penalty, cap=args.late_cap,
                                  submitted_at=args.submitted_at),
                      executor=args.executor, scheduler=args.scheduler,
                      shard=parse(args.shard) if args.shard else None)
    executors.check(args.executor, args.scheduler)
    outcome = grade(options)
    print(outcome.paragraph(args.out))
    return 0


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The export command's arguments."""
    parser.add_argument("lms", choices=("canvas", "moodle"), help="whose gradebook import to write")
    parser.add_argument("out", type=Path, help="the folder a grading run wrote (grades.csv, summary.csv, ...)")
    parser.add_argument("--assignment", required=True,
                        help="the assignment's name as the LMS shows it (Canvas: its column; Moodle: the file name)")
    parser.add_argument("--assignment-id", help="Canvas: the assignment's id, so the import updates that assignment "
                                                "(its column becomes 'NAME (ID)')")
    parser.add_argument("--roster", type=Path, help="the roster, if grading had none (or to use another)")
    parser.add_argument("--file", type=Path, help="where to write (default OUT/<lms>-<assignment>.csv)")
    parser.add_argument("--bom", action="store_true", help="write a UTF-8 byte-order mark (Excel)")


def run_export(args: argparse.Namespace) -> int:
    """Write the gradebook import file; say where, and whom it left out."""
    from .export import export

    written = export(args.lms, args.out, args.assignment, assignment_id=args.assignment_id, roster_path=args.roster,
                     target=args.file, bom=args.bom)
    for warning in written.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"Wrote {written.path}: {written.rows} students for {args.lms}.")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    """Publish the N shards of a class as one run."""
    from .pipeline import merge

    outcome = merge(args.out, args.shards)
    print(outcome.paragraph(args.out.resolve()))
    return 0
