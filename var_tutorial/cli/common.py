"""What the commands share: argument types, the --device option, default file names, running
a command, and the end of every training command (export the weights, write the results).

    at_least(low)        an argparse type: a number >= low, with an error that names both
    add_device           the --device option every computing command has
    run_command          run a parsed command; under torchrun, leave the process group cleanly
    timed, export_run    the training commands' common sequence:
                             (model, history), seconds = timed(train_x, ...)
                             if distributed.is_main(): export_run(model, ...)
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from .. import distributed
from ..data import REPO_ROOT
from ..pretrained import PRETRAINED_DIR, REGISTRY, save_weights
from ..records import write_results


def at_least(low, kind=int, what="an integer"):
    """An argparse type: a number >= low, with an error that names the value and the bound."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {what} >= {low}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text}: expected {what} >= {low}")
        return value
    return parse


def add_device(parser: argparse.ArgumentParser) -> None:
    """--device: "cpu", "cuda", "cuda:1"...; by default the GPU if there is one (train.pick_device)."""
    parser.add_argument("--device", default=None)


def run_command(args: argparse.Namespace) -> None:
    """Run the command that args were parsed for (its handler is args.func). Under torchrun the
    process group is left after it: after a finished command every rank waits for the others,
    after a failure none does (distributed.close)."""
    try:
        args.func(args)
    except BaseException:
        distributed.close(finished=False)
        raise
    distributed.close()


# -- default file names ---------------------------------------------------------------------
def default_weights_name(preset: str, quantizer: str) -> str:
    """tokenizer_<preset> (multi-scale, VAR's) or vqvae_<preset> (single-scale, the raster baseline's)."""
    return f"{'tokenizer' if quantizer == 'multiscale' else 'vqvae'}_{preset}"


def default_transformer_file(model: str, dataset: str) -> Path:
    """VAR's weights ship (data/pretrained/var_<dataset>); the raster baseline's stay in runs/."""
    name = f"{model}_{dataset}"
    return PRETRAINED_DIR / REGISTRY[name][0] if name in REGISTRY else REPO_ROOT / "runs" / name / f"{name}.safetensors"


def on_device(device: torch.device) -> str:
    """'on cuda', or 'on cuda x 2 processes' under torchrun: how the training commands say where they run."""
    return f"on {device}" + (f" x {distributed.world_size_requested()} processes" if distributed.launched() else "")


# -- the end of every training command --------------------------------------------------------
def timed(train, *args, **kwargs):
    """(what train(*args, **kwargs) returns, the seconds it took)."""
    t0 = time.time()
    out = train(*args, **kwargs)
    return out, time.time() - t0


def export_run(model: torch.nn.Module, export, kind: str, weights_config: dict, weights_metrics: dict,
               results_name: str, history: list, seconds: float, results_metrics: dict, run_config: dict, device,
               results_folder=None) -> Path:
    """What a training command does after training (on rank 0 only): the weights go to `export`
    (float16 safetensors, weights_config inside, weights_metrics in the JSON sidecar beside it),
    and results/<results_name>.json records the run: its history, results_metrics and its
    seconds, with run_config. results_folder replaces results/. Returns the results file."""
    save_weights(model, Path(export), kind, weights_config, metrics=weights_metrics)
    metrics = {"history": history, **results_metrics, "train_seconds_this_run": round(seconds, 1)}
    return write_results(results_name, metrics, config=run_config, device=device, out_dir=results_folder)


def megabytes(path: Path) -> str:
    return f"{Path(path).stat().st_size / 1e6:.1f} MB"
