"""make-exercises: the student notebooks, generated from the solution notebooks (exercises.py)."""
from __future__ import annotations

from pathlib import Path


def add_make_exercises(sub) -> None:
    mx = sub.add_parser("make-exercises", help="generate the student exercise notebooks from the solution notebooks",
                        description="Write notebooks/exercises/<notebook>.ipynb for every solution notebook with "
                        "'### BEGIN SOLUTION' markers (var_tutorial/exercises.py); unchanged files are not rewritten.")
    mx.add_argument("--out", default=None, help="folder to write to (default notebooks/exercises)")
    mx.add_argument("--answers", nargs="+", default=None, metavar="NOTEBOOK",
                    help="grading: submitted exercise notebooks; writes the released ones with only their exercise "
                    "cells taken from these (checks and expected outputs from the release) into --out")
    mx.set_defaults(func=cmd_make_exercises)


def cmd_make_exercises(args):
    # exercises.py needs nbformat, which only the notebooks/test extras install: imported when this command runs
    from ..exercises import fill_in_answers, make_exercises

    if args.answers and not args.out:
        raise ValueError("--answers needs --out: the folder for the notebooks to grade")
    for answer in args.answers or ():
        if not Path(answer).is_file():
            raise FileNotFoundError(f"--answers {answer} does not exist: expected a submitted exercise notebook")
    written = fill_in_answers(args.answers, args.out) if args.answers else make_exercises(out_dir=args.out)
    print(f"{len(written)} exercise notebooks; check one with: pytest --nbval-lax --nbval-current-env "
          f"--nbval-sanitize-with notebooks/sanitize.cfg {args.out or 'notebooks/exercises'}/<notebook>.ipynb")


def register(sub) -> None:
    add_make_exercises(sub)
