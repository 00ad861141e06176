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
    train-classifier  train the CIFAR-10 classifier that evaluate measures samples with
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
"""
from __future__ import annotations

import argparse

from torch.distributed.elastic.multiprocessing.errors import record

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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m var_tutorial", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


@record  # under torchrun: a failing rank's traceback is reported, and torchrun stops the others
def main(argv=None):
    """Parse the command line (argv, or sys.argv[1:]) and run its command."""
    run_command(parser().parse_args(argv))
