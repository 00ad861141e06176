"""Command line: ``python -m var_tutorial <command> --help``.

    quickstart        reconstruct real CIFAR-10 test images with the shipped tokenizer (CPU, seconds);
                      --train: train the tokenizer from scratch first (meant for a GPU)
    prepare-data      unpack and decode a data set archive into data/
    train-tokenizer   train the multi-scale (VAR) or single-scale tokenizer; export fp16 weights
    eval-tokenizer    PSNR per scale and codebook usage on a test split -> results/tokenizer_<dataset>.json
    train             train VAR (next-scale) or the raster baseline (next-token) on the tokenizer's tokens
    train-classifier  train the CIFAR-10 classifier that evaluate measures samples with
    evaluate          FID_cls and class agreement of generated samples, with a CFG sweep
                      -> results/<model>_<dataset>.json (FID_cls is NOT Inception FID: see evaluate --help)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from . import data
from .data import REPO_ROOT
from .classifier import Classifier, ClassifierConfig
from .config import TokenizerTrainConfig, tokenizer_preset
from .metrics import FID_CLS_NOTE, evaluate_generator, evaluate_tokenizer, inception_fid, sample_images
from .pretrained import (PRETRAINED_DIR, REGISTRY, load_classifier, load_tokenizer, load_transformer, record_metrics,
                         resolve, save_weights, transformer_record)
from .results import write_results
from .train import (ClassifierTrainConfig, TransformerTrainConfig, pick_device, train_classifier, train_tokenizer,
                    train_transformer, training_set, transformer_config)
from .transformer import build_transformer, count_params
from .vqvae import VQVAE



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


def default_transformer_file(model: str, dataset: str) -> Path:
    """VAR's weights ship (data/pretrained/var_<dataset>); the raster baseline's stay in runs/."""
    name = f"{model}_{dataset}"
    return PRETRAINED_DIR / REGISTRY[name][0] if name in REGISTRY else REPO_ROOT / "runs" / name / f"{name}.safetensors"


def cmd_train(args):
    tokenizer_file = args.tokenizer or default_weights_name(args.preset, "multiscale" if args.model == "var" else "single")
    tokenizer = load_tokenizer(tokenizer_file)
    sizes = {k: v for k, v in (("depth", args.depth), ("width", args.width), ("heads", args.heads),
                               ("dropout", args.dropout)) if v is not None}
    cfg = transformer_config(args.model, args.preset, tokenizer.cfg, **sizes)
    dataset = args.dataset or ("toy" if args.preset == "tiny" else args.preset)
    tcfg = TransformerTrainConfig(dataset=dataset, tokenizer=str(tokenizer_file), steps=args.steps,
                                  batch_size=args.batch_size, lr=args.lr, seed=args.seed, subset=args.subset)
    for key in ("warmup_steps", "log_every", "eval_every", "ckpt_every"):
        if getattr(args, key) is not None:
            setattr(tcfg, key, getattr(args, key))
    name = f"{args.model}_{dataset}"
    out_dir = Path(args.out or REPO_ROOT / "runs" / name)
    device = pick_device(args.device)
    model = build_transformer(cfg)
    n_params, n_blocks = count_params(model), count_params(model.blocks) + count_params(model.head)
    print(f"training {name}: {n_params / 1e6:.2f} M parameters ({n_blocks / 1e6:.2f} M in blocks and head), "
          f"{cfg.num_tokens} tokens per image, on {device}")
    t0 = time.time()
    model, history = train_transformer(cfg, tcfg, out_dir, device=device, compile=False if args.no_compile else None,
                                       minutes=args.minutes, resume=not args.fresh)
    train_seconds = time.time() - t0
    last = next((h for h in reversed(history) if "loss" in h), {})
    val = next((h for h in reversed(history) if "val_loss" in h), {})
    summary = {"train_steps": history[-1]["step"] if history else 0, "train_seconds_this_run": round(train_seconds, 1),
               "final_train_loss": last.get("loss"), "final_val_loss": val.get("val_loss"),
               "final_val_accuracy": val.get("val_accuracy")}
    export = Path(args.export or default_transformer_file(args.model, dataset))
    save_weights(model, export, "transformer", transformer_record(cfg, tokenizer, tokenizer_file), metrics=summary)
    path = write_results(f"train_{name}", {"history": history, "parameters": n_params,
                                           "parameters_blocks_and_head": n_blocks, **summary},
                         config={"model": cfg.to_dict(), "train": tcfg.to_dict(), "tokenizer": tokenizer.cfg.to_dict()},
                         device=device)
    print(f"saved {export} ({export.stat().st_size / 1e6:.1f} MB) and {path} after {train_seconds / 60:.1f} min")


def cmd_train_classifier(args):
    ccfg = ClassifierConfig(width=args.width)
    tcfg = ClassifierTrainConfig(dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                 seed=args.seed, subset=args.subset)
    device = pick_device(args.device)
    n_params = count_params(Classifier(ccfg))
    print(f"training the {args.dataset} classifier: {n_params / 1e6:.2f} M parameters, on {device}")
    t0 = time.time()
    model, history, test = train_classifier(ccfg, tcfg, device=device, compile=False if args.no_compile else None,
                                            minutes=args.minutes)
    train_seconds = time.time() - t0
    export = Path(args.export or PRETRAINED_DIR / f"classifier_{args.dataset}.safetensors")
    save_weights(model, export, "classifier", ccfg.to_dict(),
                 metrics={f"{args.dataset}_test": test, "train_seconds": round(train_seconds, 1)})
    path = write_results(f"train_classifier_{args.dataset}",
                         {"history": history, "parameters": n_params, "test": test,
                          "train_seconds_this_run": round(train_seconds, 1)},
                         config={"model": ccfg.to_dict(), "train": tcfg.to_dict()}, device=device)
    print(f"test accuracy {test['accuracy']:.2%}; saved {export} ({export.stat().st_size / 1e6:.1f} MB) and {path} "
          f"after {train_seconds / 60:.1f} min")


def cmd_evaluate(args):
    device = pick_device(args.device)
    weights = args.weights or default_transformer_file(args.model, args.dataset)
    model, tokenizer = load_transformer(weights, tokenizer=args.tokenizer, device=device)
    if model.cfg.kind != args.model:
        raise ValueError(f"--weights {weights} holds a {model.cfg.kind!r} transformer: expected --model {args.model}")
    classifier = load_classifier(args.classifier, device=device)
    S = tokenizer.cfg.image_size
    test = training_set(args.dataset, "test", S, args.limit_real)
    train_u8 = training_set(args.dataset, "train", S, args.limit_real)[0]
    sampling = {"samples_per_class": args.samples_per_class, "cfg": args.cfg, "top_k": args.top_k,
                "top_p": args.top_p, "temperature": args.temperature, "seed": args.seed, "batch_size": args.batch_size}
    t0 = time.time()
    m = evaluate_generator(model, tokenizer, classifier, test, train_u8, cfg_values=args.cfg,
                           **{k: v for k, v in sampling.items() if k != "cfg"})
    if args.inception_fid:
        labels = torch.arange(model.cfg.num_classes).repeat_interleave(args.samples_per_class)
        fake = sample_images(model, tokenizer, labels, m["best_cfg"], args.batch_size, args.seed, args.top_k,
                             args.top_p, args.temperature)
        m["inception_fid_at_best_cfg"] = round(inception_fid(fake, test[0], device=device), 4)
    m.update(weights=str(weights), classifier=str(args.classifier), parameters=count_params(model),
             parameters_blocks_and_head=count_params(model.blocks) + count_params(model.head),
             class_names=data.class_names(args.dataset) if args.dataset in data.DATASETS else None,
             evaluate_seconds=round(time.time() - t0, 1))
    path = write_results(args.results or f"{args.model}_{args.dataset}", m, device=device,
                         config={"model": model.cfg.to_dict(), "tokenizer": tokenizer.cfg.to_dict(),
                                 "classifier": classifier.cfg.to_dict(), "sampling": sampling})
    if resolve(weights).with_suffix(".json").exists():  # the weights' sidecar keeps the headline numbers
        key = f"{args.dataset}_test" + (f"_{args.samples_per_class}_per_class" if args.samples_per_class != 1000 else "") \
            + (f"_real{args.limit_real}" if args.limit_real else "")  # a quick run never overwrites the full one
        record_metrics(weights, key, {k: m[k] for k in (
            "best_cfg", "best_fid_cls", "best_class_agreement", "max_class_agreement", "samples_per_class")})
    print(f"best cfg {m['best_cfg']:g}: FID_cls {m['best_fid_cls']:.3f} (floor, test vs train: "
          f"{m.get('fid_cls_floor_test_vs_train', float('nan')):.3f}), class agreement {m['best_class_agreement']:.1%}; "
          f"wrote {path}")


def cmd_quickstart(args):
    from .viz import coarse_to_fine_figure

    device = pick_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.train:
        targs = argparse.Namespace(preset="cifar10", quantizer="multiscale", dataset="cifar10", steps=20_000,
                                   batch_size=256, lr=4e-4, seed=0, subset=0, log_every=0,
                                   out=str(out / "runs" / "tokenizer_cifar10"),
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
    t.add_argument("--subset", type=int, default=0, help="train on N images only, spread over the classes")
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

    m = sub.add_parser("train", help="train VAR or the raster baseline on the tokenizer's tokens")
    m.add_argument("--model", required=True, choices=["var", "raster"], help="var: next-scale; raster: next-token")
    m.add_argument("--preset", default="cifar10", choices=["cifar10", "imagenette64", "tiny"])
    m.add_argument("--tokenizer", default=None,
                   help="weights of the tokenizer (default tokenizer_<preset> for var, vqvae_<preset> for raster)")
    m.add_argument("--dataset", default=None, help="defaults to the preset's name ('toy' for the tiny preset)")
    budget = m.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=at_least(1), default=20_000)
    budget.add_argument("--minutes", type=at_least(0.1, float, "a number"), default=None,
                        help="time budget: sets the step count after timing the first steps")
    m.add_argument("--batch-size", type=at_least(1), default=256)
    m.add_argument("--lr", type=float, default=1e-3)
    m.add_argument("--warmup-steps", type=int, default=None, help="default 500")
    m.add_argument("--depth", type=at_least(1), default=None, help="override the preset's depth")
    m.add_argument("--width", type=at_least(1), default=None, help="override the preset's width")
    m.add_argument("--heads", type=at_least(1), default=None, help="override the preset's number of heads")
    m.add_argument("--dropout", type=float, default=None, help="override the preset's dropout (0)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--subset", type=int, default=0, help="train on N images only, spread over the classes")
    m.add_argument("--log-every", type=at_least(1), default=None, help="default 100")
    m.add_argument("--eval-every", type=at_least(0), default=None, help="validation every N steps (default 1000; 0: never)")
    m.add_argument("--ckpt-every", type=at_least(1), default=None, help="default 2000")
    m.add_argument("--out", default=None, help="checkpoint folder (default runs/<model>_<dataset>)")
    m.add_argument("--export", default=None, help="weights file to write (default data/pretrained/var_<dataset>."
                                                   "safetensors; runs/raster_<dataset>/ for raster)")
    m.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    m.add_argument("--no-compile", action="store_true")
    m.add_argument("--device", default=None)
    m.set_defaults(func=cmd_train)

    c = sub.add_parser("train-classifier", help="train the evaluation classifier (FID_cls, class agreement)")
    c.add_argument("--dataset", default="cifar10", help="cifar10, or 'toy' for generated images")
    c.add_argument("--epochs", type=at_least(1), default=40)
    c.add_argument("--minutes", type=at_least(0.1, float, "a number"), default=None,
                   help="time budget: replaces --epochs by the steps that fit")
    c.add_argument("--batch-size", type=at_least(1), default=512)
    c.add_argument("--lr", type=float, default=0.4)
    c.add_argument("--width", type=at_least(1), default=64, help="channels of the first conv (64: 2.4 M parameters)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--subset", type=int, default=0, help="train on N images only, spread over the classes")
    c.add_argument("--export", default=None, help="default data/pretrained/classifier_<dataset>.safetensors")
    c.add_argument("--no-compile", action="store_true")
    c.add_argument("--device", default=None)
    c.set_defaults(func=cmd_train_classifier)

    v = sub.add_parser("evaluate", help="FID_cls and class agreement of generated samples (not Inception FID)",
                       description="Generate --samples-per-class images of every class with each CFG strength, "
                       "classify them, and write results/<model>_<dataset>.json. " + FID_CLS_NOTE)
    v.add_argument("--model", required=True, choices=["var", "raster"])
    v.add_argument("--weights", default=None, help="default var_<dataset> (shipped) or runs/raster_<dataset>/")
    v.add_argument("--tokenizer", default=None, help="default: the one recorded in the weights")
    v.add_argument("--classifier", default="classifier_cifar10")
    v.add_argument("--dataset", default="cifar10", help="the real images compared with ('toy' for tests)")
    v.add_argument("--cfg", type=at_least(0.0, float, "a guidance strength"), nargs="+", default=[0, 1, 1.5, 2, 3],
                   help="CFG strengths to sweep; the best (lowest FID_cls) is marked")
    v.add_argument("--samples-per-class", type=at_least(1, what="an integer (images generated per class)"),
                   default=1000)
    v.add_argument("--batch-size", type=at_least(1), default=1000)
    v.add_argument("--top-k", type=at_least(0), default=0)
    v.add_argument("--top-p", type=float, default=1.0)
    v.add_argument("--temperature", type=float, default=1.0)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--limit-real", type=int, default=0,
                   help="use N real images of each split, spread over the classes (tests)")
    v.add_argument("--inception-fid", action="store_true", help="also Inception FID at the best cfg (needs "
                   "torchmetrics, torch-fidelity and a download)")
    v.add_argument("--results", default=None, help="results file name (default <model>_<dataset>)")
    v.add_argument("--device", default=None)
    v.set_defaults(func=cmd_evaluate)

    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
