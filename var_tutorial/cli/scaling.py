"""scaling, merge-scaling and ddp-scaling: how loss falls with model size (scaling.py), and
what a second GPU buys (distributed.py)."""
from __future__ import annotations

from ..data import DATASETS
from ..distributed import scaling_report
from ..scaling import merge_sweeps, run_sweep, summary
from ..train import pick_device
from .common import add_device, at_least, number


def add_scaling(sub) -> None:
    sc = sub.add_parser("scaling", help="model-size sweep and power-law fits -> results/scaling_<dataset>.json",
                        description="Train VAR at several depths d (width = width_per_depth * d, d heads) and the "
                        "raster baseline at a few, all on the same token budget and schedule; measure test loss and "
                        "token error rate; fit L = (beta X)^alpha for X = parameters and X = training FLOPs. Each "
                        "finished model is appended to the results file, and models already there are skipped.")
    sc.add_argument("--preset", default="cifar10", choices=["cifar10", "imagenette64", "tiny"])
    sc.add_argument("--dataset", default="cifar10", choices=list(DATASETS))
    sc.add_argument("--depths", type=at_least(1), nargs="+", default=[2, 3, 4, 5, 6, 8])
    sc.add_argument("--raster-depths", type=at_least(1), nargs="*", default=[2, 3, 4])
    sc.add_argument("--width-per-depth", type=at_least(1), default=64, help="64 in the paper")
    sc.add_argument("--steps", type=at_least(1), default=1500, help="the same for every model")
    sc.add_argument("--batch-size", type=at_least(1), default=256)
    sc.add_argument("--lr", type=number("(0, inf)", what="a learning rate"), default=1e-3)
    sc.add_argument("--warmup-steps", type=at_least(0), default=150)
    sc.add_argument("--lr-rule", choices=["constant", "inverse-width"], default="constant",
                    help="one lr for every model, or lr * 256 / width (Adam's best step shrinks with width)")
    sc.add_argument("--dropout", type=number("[0, 1)", what="a probability"), default=0.0,
                    help="the same for every model (the larger ones over-fit CIFAR-10's 50,000 images without)")
    sc.add_argument("--keep-best", action="store_true",
                    help="early stopping: test each model with the weights of its lowest loss on --val-images "
                    "held-out training images (measured 10 times per run)")
    sc.add_argument("--val-images", type=at_least(0), default=0,
                    help="training images held out for --keep-best (with their mirror images), e.g. 5000")
    sc.add_argument("--subset", type=at_least(0), default=0, help="images per split (0: all); for a quick CPU run")
    sc.add_argument("--seed", type=at_least(0), default=0,
                    help="initialisation and batch order of every model; "
                    "merge-scaling averages sweeps of several seeds")
    sc.add_argument("--compile", action="store_true", help="torch.compile every model (slow to start: off by default)")
    sc.add_argument("--results", default=None, help="results file name (default scaling_<dataset>)")
    sc.add_argument("--out", default=None, help="checkpoint folder, one sub-folder per model (default runs/scaling)")
    add_device(sc)
    sc.set_defaults(func=cmd_scaling)


def cmd_scaling(args):
    record = run_sweep(depths=args.depths, raster_depths=args.raster_depths, dataset=args.dataset, preset=args.preset,
                       steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
                       lr_rule=args.lr_rule, dropout=args.dropout, keep_best=args.keep_best,
                       val_images=args.val_images, width_per_depth=args.width_per_depth, subset=args.subset,
                       seed=args.seed, device=pick_device(args.device), compile=args.compile, results_name=args.results,
                       out_dir=args.out)
    print(summary(record))


def add_merge_scaling(sub) -> None:
    ms = sub.add_parser("merge-scaling", help="join the results files of a sweep run in parts -> one file, with fits",
                        description="A sweep may run in parts side by side (say, one per GPU, each with its own "
                        "--results name and its own --depths); this joins them into one results file and fits the "
                        "power laws over all the models. The parts must share budget, width rule and data set.")
    ms.add_argument("parts", nargs="+", help="results names of the parts (files in results/)")
    ms.add_argument("--results", default="scaling_cifar10", help="the joined file's name")
    ms.add_argument("--parts-folder", default=None, help="where the parts are (default results/)")
    ms.set_defaults(func=cmd_merge_scaling)


def cmd_merge_scaling(args):
    print(summary(merge_sweeps(args.parts, args.results, parts_folder=args.parts_folder)))


def add_ddp_scaling(sub) -> None:
    dd = sub.add_parser("ddp-scaling",
                        help="compare a one-GPU and a multi-GPU run of `train` -> results/ddp_scaling.json",
                        description="Read the train results of the same command run in one process (--single) and "
                        "through torchrun (--multi), each with its own VAR_TUTORIAL_RESULTS folder, and write the "
                        "throughput ratio and the first logged losses side by side.")
    dd.add_argument("--single", required=True, help="results folder of the one-process run")
    dd.add_argument("--multi", required=True, help="results folder of the torchrun run")
    dd.add_argument("--experiment", default="train_var_cifar10", help="the train results file in both folders")
    dd.add_argument("--skip", type=at_least(0), default=100, help="steps left out of the throughput (compilation)")
    dd.add_argument("--results", default="ddp_scaling", help="results file name")
    dd.set_defaults(func=cmd_ddp_scaling)


def cmd_ddp_scaling(args):
    path = scaling_report(args.single, args.multi, args.experiment, skip=args.skip, results_name=args.results)
    print(f"wrote {path}")


def register(sub) -> None:
    add_scaling(sub)
    add_merge_scaling(sub)
    add_ddp_scaling(sub)
