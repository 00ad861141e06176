"""What the commands share: argument types, the --device option, checks of files and data sets,
default file names, running a command, and the end of every training command (export the
weights, write the results).

    number(interval)     an argparse type: a finite number in an interval such as "(0, 1]"
    at_least(low)        the same for "[low, inf)", the common case
    add_device           the --device option every computing command has: a device this machine has
    out_folder           make an output folder, or say which option named one that cannot be made
    check_image_size     refuse a --dataset whose images are not the size the weights work on
    note                 a one-line note on stderr: what a command did to its input
    run_command          run a parsed command; under torchrun, leave the process group cleanly
    timed, export_run    the training commands' common sequence:
                             (model, history), seconds = timed(train_x, ...)
                             if distributed.is_main(): export_run(model, ...)
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from .. import distributed
from ..data import DATASETS, REPO_ROOT
from ..pretrained import PRETRAINED_DIR, REGISTRY, save_weights
from ..records import write_results


def number(interval: str, kind=float, what: str = "a number"):
    """An argparse type: a finite number of `kind` in `interval`, written as in maths: "[0, inf)"
    is >= 0, "(0, 1]" above 0 and at most 1. NaN and infinity are refused whatever the interval
    (a check such as `value < 0` lets NaN through: every comparison with NaN is False). argparse
    puts the argument in front of the error: "argument --top-p: 1.5: expected a probability in (0, 1]"."""
    low_open, high_open = interval[0] == "(", interval[-1] == ")"
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    expected = f"{what} {'>' if low_open else '>='} {low:g}" if high == math.inf else f"{what} in {interval}"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}") from None
        above_low = value > low if low_open else value >= low
        below_high = value < high if high_open else value <= high
        if not (math.isfinite(value) and above_low and below_high):
            raise argparse.ArgumentTypeError(f"{text}: expected {expected}")
        return value
    return parse


def at_least(low, kind=int, what="an integer"):
    """An argparse type: a number >= low (number("[low, inf)")), with an error that names the value and the bound."""
    return number(f"[{low}, inf)", kind, what)


def device_name(text: str) -> str:
    """An argparse type: the name of a torch device that this machine has ("cpu", "cuda", "cuda:1",
    "mps"), checked before any work starts rather than by the driver's error halfway through."""
    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected cpu, cuda, cuda:<index> or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: torch sees no CUDA GPU on this machine: expected cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text}: this machine has {torch.cuda.device_count()} CUDA GPU(s): "
                                         f"expected cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text}: torch sees no Apple GPU (MPS) on this machine: expected cpu")
    return text


def add_device(parser: argparse.ArgumentParser) -> None:
    """--device: "cpu", "cuda", "cuda:1"...; by default the GPU if there is one (train.pick_device)."""
    parser.add_argument("--device", type=device_name, default=None,
                        help="cpu, cuda, cuda:<index> or mps (default: the GPU if there is one)")


def out_folder(path, option: str = "--out") -> Path:
    """Make the output folder `path` (given by `option`) if needed and return it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"{option} {path}: the folder cannot be made ({e.strerror}): expected a folder you can write to") \
            from None
    return path


def check_image_size(dataset: str, image_size: int, weights) -> None:
    """Refuse a --dataset whose images are not image_size pixels, the size `weights` work on
    (the generated 'toy' set is made at any size)."""
    if dataset in DATASETS and DATASETS[dataset].image_size != image_size:
        raise ValueError(f"--dataset {dataset} has {DATASETS[dataset].image_size} px images, but {weights} works on "
                         f"{image_size} px ones: expected a data set of that size, or weights made for {dataset}")


def note(message: str) -> None:
    """Say on stderr, in one line, what a command did to its input that the user did not ask for."""
    print(f"note: {message}", file=sys.stderr)


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
