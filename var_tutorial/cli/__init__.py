"""Command line: ``python -m var_tutorial <command> --help``.

    quickstart        from the shipped weights (CPU, seconds): real CIFAR-10 test images rebuilt scale by
                      scale, a class-conditional grid of VAR samples, and one sample per class growing
                      coarse to fine, and a zero-shot in-painting; --train: train tokenizer and VAR from
                      scratch first, and evaluate them (meant for a GPU)
    figures           the quickstart's four figures from any weights, e.g. Imagenette's trained on a GPU
    prepare-data      unpack and decode a data set archive into data/
    train-tokenizer   train the multi-scale (VAR) or single-scale tokenizer; export fp16 weights
    eval-tokenizer    PSNR per scale and codebook usage on a test split -> results/tokenizer_<dataset>.json
    train             train VAR (next-scale) or the raster baseline (next-token) on the tokenizer's tokens
    train-classifier  train the classifier of a data set that evaluate judges samples with
    evaluate          FID_cls and class agreement of generated samples, with a CFG sweep
                      -> results/<model>_<dataset>.json (FID_cls is NOT Inception FID: see evaluate --help)
    edit              zero-shot in-painting, out-painting or class editing of PNG/JPEG files with VAR
    eval-editing      the editing tasks measured on test images -> results/editing_<dataset>.json
    scaling           a model-size sweep (depth d, width 64*d) on one token budget, with power-law fits
                      -> results/scaling_<dataset>.json (resumable: finished models are skipped)
    merge-scaling     join a sweep's parts (run side by side) into one results file with the fits
    make-exercises    the student notebooks in notebooks/exercises/, generated from the solution notebooks
    update-docs       the tables of README.md and docs/*.md, rendered anew from results/*.json
    bench             speed (not tests): next-scale vs next-token generation, training throughput, and the
                      reference implementation's figures -> results/bench_*.json (--quick: tiny, CPU, seconds)

An error that a user can cause (a bad argument, a missing or bad file) ends a command with one
line, `python -m var_tutorial <command>: error: <what was given and what was expected>`, and exit
status 2 for a bad argument, 1 for a bad file; --debug (or VAR_TUTORIAL_DEBUG=1) shows its traceback.
"""
from __future__ import annotations

import argparse
import os

from torch.distributed.elastic.multiprocessing.errors import record

from ..data import BadFileError
from . import bench, classifier, data, docs, editing, exercises, quickstart, scaling, tokenizer, transformer
from .common import run_command

# The command groups, in the order --help lists their commands; each module holds its
# commands' parsers (register) next to their handlers (cmd_<command>).
GROUPS = (
    quickstart,   # quickstart, figures
    data,         # prepare-data
    tokenizer,    # train-tokenizer, eval-tokenizer
    transformer,  # train
    classifier,   # train-classifier, evaluate
    editing,      # edit, eval-editing
    scaling,      # scaling, merge-scaling, ddp-scaling
    exercises,    # make-exercises
    docs,         # update-docs
    bench,        # bench
)
DEBUG = "VAR_TUTORIAL_DEBUG"  # set to 1: every error shows its traceback, as --debug does


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m var_tutorial", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help=f"show the traceback of an error (or set {DEBUG}=1)")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    for command in sub.choices.values():  # --debug after the command works too (edit x.png --debug)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help=f"show the traceback of an error (or set {DEBUG}=1)")
    return p


@record  # under torchrun: a failing rank's traceback is reported, and torchrun stops the others
def main(argv=None):
    """Parse the command line (argv, or sys.argv[1:]) and run its command. The errors that the
    library raises for what a user can get wrong (ValueError for a value, BadFileError or OSError
    for a file) end it as argparse's own errors do, in one line: exit status 2 for a bad
    argument, 1 for a bad file. Any other exception is a bug, and shows its traceback."""
    p = parser()
    args = p.parse_args(argv)
    try:
        run_command(args)
    except (ValueError, OSError) as e:
        if args.debug or os.environ.get(DEBUG, "") not in ("", "0"):
            raise
        p.exit(1 if isinstance(e, (BadFileError, OSError)) else 2, f"{p.prog} {args.command}: error: {e}\n")
