"""``python -m course grade SUBMISSIONS --out OUT [--workers N] [--timeout SECONDS] [--memory MB]``."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import CourseError
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
    parser.add_argument("submissions", type=Path, help="folder with one sub-folder per student")
    parser.add_argument("--out", type=Path, required=True, help="folder for grades.csv, summary.csv, report.html, "
                                                                "feedback/ (created; kept private)")
    parser.add_argument("--workers", type=_positive(int), default=os.cpu_count() or 1,
                        help="submissions graded in parallel (default: the number of cores)")
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


def run(args: argparse.Namespace) -> int:
    """Grade; exit 0 whatever the submissions did (their problems are in the gradebook)."""
    from .pipeline import Options, grade

    if args.seed_file:
        print("note: --seed-file is now called --secret-file", file=sys.stderr)
    if args.submissions is None or not args.submissions.is_dir():
        raise CourseError(f"{args.submissions}: no such folder of submissions")
    limits = Limits(memory_mb=args.memory, cell_seconds=args.cell_timeout, question_seconds=args.question_timeout,
                    submission_seconds=args.timeout)
    options = Options(submissions=args.submissions, out=args.out, workers=args.workers, limits=limits,
                      secret_file=args.secret_file or args.seed_file, chapters=args.chapters,
                      assignment=args.assignment, progress=not args.no_progress)
    outcome = grade(options)
    print(outcome.paragraph(args.out))
    return 0
