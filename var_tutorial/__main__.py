"""Command line: ``python -m var_tutorial <command> --help``.

    quickstart        reconstruct real CIFAR-10 test images with the shipped tokenizer (CPU, seconds);
                      --train: train the tokenizer from scratch first (meant for a GPU)
    prepare-data      unpack and decode a data set archive into data/
    train-tokenizer   train the multi-scale (VAR) or single-scale tokenizer; export fp16 weights
    eval-tokenizer    PSNR per scale and codebook usage on a test split -> results/tokenizer_<dataset>.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from . import data
from .config import TokenizerTrainConfig, tokenizer_preset
from .metrics import evaluate_tokenizer
from .pretrained import PRETRAINED_DIR, load_tokenizer, record_metrics, save_weights
from .results import write_results
from .train import pick_device, train_tokenizer
from .vqvae import VQVAE

REPO_ROOT = Path(__file__).resolve().parents[1]


def cmd_prepare_data(args):
    for split in ("train", "test"):
        images, labels = data.load_split(args.dataset, split, archive_dir=args.archive_dir, download=args.download)
        print(f"{args.dataset}/{split}: {tuple(images.shape)} uint8, {len(labels.unique())} classes")


def default_weights_name(preset: str, quantizer: str) -> str:
    return f"{'tokenizer' if quantizer == 'multiscale' else 'vqvae'}_{preset}"


def cmd_train_tokenizer(args):
    cfg = tokenizer_preset(args.preset, args.quantizer)
    tcfg = TokenizerTrainConfig(dataset=args.dataset or args.preset, steps=args.steps, batch_size=args.batch_size,
                                lr=args.lr, seed=args.seed, subset=args.subset, init_from=args.init_from or "")
    if args.warmup is not None:
        tcfg.warmup_steps = args.warmup
    if args.log_every:
        tcfg.log_every = args.log_every
    name = default_weights_name(args.preset, args.quantizer)
    out_dir = Path(args.out or REPO_ROOT / "runs" / name)
    device = pick_device(args.device)
    n_params = sum(p.numel() for p in VQVAE(cfg).parameters())
    print(f"training {name}: {n_params / 1e6:.2f} M parameters, {cfg.num_tokens} tokens per image, on {device}")
    t0 = time.time()
    model, history = train_tokenizer(cfg, tcfg, out_dir, device=device, compile=False if args.no_compile else None,
                                     minutes=args.minutes, resume=not args.fresh)
    train_seconds = time.time() - t0
    export = Path(args.export or PRETRAINED_DIR / f"{name}.safetensors")
    save_weights(model, export, "tokenizer", cfg.to_dict(),
                 metrics={"train_steps": history[-1]["step"] if history else 0,
                          "train_seconds_this_run": round(train_seconds, 1),
                          "final_train_psnr": history[-1]["psnr"] if history else None})
    write_results(f"train_{name}" + ("_stage2" if args.init_from else ""), {"history": history, "parameters": n_params,
                                      "train_seconds_this_run": round(train_seconds, 1)},
                  config={"model": cfg.to_dict(), "train": tcfg.to_dict()}, device=device)
    print(f"saved {export} ({export.stat().st_size / 1e6:.1f} MB) after {train_seconds / 60:.1f} min")


def cmd_eval_tokenizer(args):
    device = pick_device(args.device)
    images, _ = data.load_split(args.dataset, args.split)
    if args.limit:
        images = images[: args.limit]
    results = {}
    for w in args.weights:
        model = load_tokenizer(w, device=device)  # the fp16 weights that ship, upcast to fp32
        m = evaluate_tokenizer(model, images, device=device)
        m["parameters"] = sum(p.numel() for p in model.parameters())
        m["quantizer"] = model.cfg.quantizer
        key = Path(w).stem if w.endswith(".safetensors") else w
        results[key] = m
        record_metrics(w, f"{args.dataset}_{args.split}" + (f"_first{args.limit}" if args.limit else ""), m)
        print(f"{key}: PSNR {m['psnr']:.2f} dB, per scale {m['psnr_per_scale']}, "
              f"codebook usage (last scale) {m['codebook_usage_last_scale']:.1%}")
    path = write_results(args.results or f"tokenizer_{args.dataset}",
                         {"split": args.split, "tokenizers": results}, device=device)
    print(f"wrote {path}")


def cmd_quickstart(args):
    from .viz import coarse_to_fine_figure

    device = pick_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.train:
        targs = argparse.Namespace(preset="cifar10", quantizer="multiscale", dataset="cifar10", steps=20_000,
                                   batch_size=256, lr=4e-4, seed=0, subset=0, log_every=0, out=None,
                                   device=args.device, no_compile=False, minutes=args.minutes, fresh=False,
                                   init_from=None, warmup=None,
                                   export=str(out / "tokenizer_cifar10.safetensors"))
        cmd_train_tokenizer(targs)
        tokenizer = load_tokenizer(targs.export, device=device)
    else:
        tokenizer = load_tokenizer("tokenizer_cifar10", device=device)
    images, labels = data.load_split("cifar10", "test")
    first_of_class = torch.stack([(labels == c).nonzero()[0, 0] for c in range(10)])  # one image per class
    x = data.to_float(images[first_of_class]).to(device)
    per_scale = tokenizer.reconstruct_per_scale(x)
    fig = coarse_to_fine_figure(x, per_scale, tokenizer.patch_nums, row_labels=data.class_names("cifar10"))
    path = out / "quickstart_reconstruction.png"
    fig.savefig(path, dpi=120)
    from .metrics import psnr
    print("PSNR of these 10 images after each scale:",
          ", ".join(f"k={k + 1}: {psnr(r, x).mean():.1f} dB" for k, r in enumerate(per_scale)))
    print(f"wrote {path} in {time.time() - t0:.1f} s")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m var_tutorial", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="reconstructions (and later samples) from the shipped weights")
    q.add_argument("--out", default=str(REPO_ROOT / "outputs"))
    q.add_argument("--train", action="store_true", help="train from scratch first (use a GPU)")
    q.add_argument("--minutes", type=float, default=8.0, help="training time budget with --train")
    q.add_argument("--device", default=None)
    q.set_defaults(func=cmd_quickstart)

    d = sub.add_parser("prepare-data", help="unpack and cache a data set")
    d.add_argument("--dataset", default="cifar10", choices=["cifar10", "imagenette64"])
    d.add_argument("--archive-dir", default=None, help="folder holding <dataset>.tar.xz")
    d.add_argument("--download", action="store_true", help="download CIFAR-10 with torchvision if no archive")
    d.set_defaults(func=cmd_prepare_data)

    t = sub.add_parser("train-tokenizer", help="train a tokenizer")
    t.add_argument("--preset", default="cifar10", choices=["cifar10", "imagenette64", "tiny"])
    t.add_argument("--quantizer", default="multiscale", choices=["multiscale", "single"])
    t.add_argument("--dataset", default=None, help="defaults to the preset's name; 'toy' for generated images")
    t.add_argument("--steps", type=int, default=20_000)
    t.add_argument("--minutes", type=float, default=None, help="time budget: sets --steps after timing the first steps")
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--lr", type=float, default=4e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--subset", type=int, default=0, help="train on the first N images only")
    t.add_argument("--log-every", type=int, default=0)
    t.add_argument("--out", default=None, help="checkpoint folder (default runs/<name>)")
    t.add_argument("--export", default=None, help="weights file to write (default data/pretrained/<name>.safetensors)")
    t.add_argument("--init-from", default=None, help="start from these weights (a second training stage)")
    t.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 500)")
    t.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    t.add_argument("--no-compile", action="store_true")
    t.add_argument("--device", default=None)
    t.set_defaults(func=cmd_train_tokenizer)

    e = sub.add_parser("eval-tokenizer", help="evaluate tokenizers on a test split")
    e.add_argument("--weights", nargs="+", default=["tokenizer_cifar10", "vqvae_cifar10"])
    e.add_argument("--dataset", default="cifar10")
    e.add_argument("--split", default="test", choices=["train", "test"])
    e.add_argument("--limit", type=int, default=0)
    e.add_argument("--results", default=None, help="results file name (default tokenizer_<dataset>)")
    e.add_argument("--device", default=None)
    e.set_defaults(func=cmd_eval_tokenizer)

    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
