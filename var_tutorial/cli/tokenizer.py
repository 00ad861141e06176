"""train-tokenizer and eval-tokenizer: the multi-scale (VAR) or single-scale (raster) tokenizer."""
from __future__ import annotations

from pathlib import Path

from .. import distributed
from ..config import TokenizerConfig, TokenizerTrainConfig, tokenizer_preset
from ..data import DATASETS, REPO_ROOT, load_split
from ..metrics import evaluate_tokenizer
from ..pretrained import PRETRAINED_DIR, load_tokenizer, record_metrics
from ..records import write_results
from ..train import pick_device, train_tokenizer
from ..transformer import count_params
from ..vqvae import VQVAE
from .common import (
    add_device,
    at_least,
    check_image_size,
    default_weights_name,
    export_run,
    megabytes,
    number,
    on_device,
    timed,
)


def train_and_export_tokenizer(cfg: TokenizerConfig, tcfg: TokenizerTrainConfig, name: str, out_dir, export,
                               device=None, compile: bool | None = None, minutes: float | None = None,
                               resume: bool = True, results_folder=None) -> VQVAE | None:
    """Train a tokenizer (checkpoints in out_dir), export its weights to `export` and write
    results/train_<name>.json (train_<name>_stage2.json for a second stage, tcfg.init_from).
    Returns the trained model (None on the other ranks under torchrun: rank 0 alone exports)."""
    device = pick_device(device)
    n_params = count_params(VQVAE(cfg))
    if distributed.is_main():
        print(f"training {name}: {n_params / 1e6:.2f} M parameters, {cfg.num_tokens} tokens per image, "
              + on_device(device))
    (model, history), seconds = timed(train_tokenizer, cfg, tcfg, out_dir, device=device, compile=compile,
                                      minutes=minutes, resume=resume)
    if not distributed.is_main():
        return None
    last = history[-1] if history else {}
    export_run(model, export, "tokenizer", cfg.to_dict(),
               {"train_steps": last.get("step", 0), "train_seconds_this_run": round(seconds, 1),
                "final_train_psnr": last.get("psnr")},
               f"train_{name}" + ("_stage2" if tcfg.init_from else ""), history, seconds, {"parameters": n_params},
               {"model": cfg.to_dict(), "train": tcfg.to_dict()}, device, results_folder)
    print(f"saved {export} ({megabytes(export)}) after {seconds / 60:.1f} min")
    return model


def add_train_tokenizer(sub) -> None:
    t = sub.add_parser("train-tokenizer", help="train a tokenizer")
    t.add_argument("--preset", default="cifar10", choices=["cifar10", "imagenette64", "tiny"])
    t.add_argument("--quantizer", default="multiscale", choices=["multiscale", "single"])
    t.add_argument("--patch-nums", type=at_least(1), nargs="+", default=None, metavar="SIDE",
                   help="the multi-scale schedule, e.g. 1 2 4 8 (default: the preset's); it must start at 1 and "
                   "end at the latent side. With --init-from, a tokenizer of another schedule is fine-tuned to it")
    t.add_argument("--name", default=None, help="name of the weights and of results/train_<name>.json (default "
                   "tokenizer_<preset>, vqvae_<preset> for --quantizer single, plus _s1-2-4-8 for a --patch-nums)")
    t.add_argument("--dataset", default=None, choices=[*DATASETS, "toy"],
                   help="defaults to the preset's name; 'toy' for generated images")
    t.add_argument("--steps", type=at_least(1), default=20_000)
    t.add_argument("--minutes", type=at_least(0.01, float, "a number of minutes"), default=None,
                   help="time budget: sets --steps after timing the first steps")
    t.add_argument("--batch-size", type=at_least(1), default=256)
    t.add_argument("--lr", type=number("(0, inf)", what="a learning rate"), default=4e-4)
    t.add_argument("--seed", type=at_least(0), default=0)
    t.add_argument("--subset", type=at_least(0), default=0, help="train on N images only, spread over the classes")
    t.add_argument("--log-every", type=at_least(1), default=None, help="default 100")
    t.add_argument("--out", default=None, help="checkpoint folder (default runs/<name>)")
    t.add_argument("--export", default=None, help="weights file to write (default data/pretrained/<name>.safetensors)")
    t.add_argument("--init-from", default=None, help="start from these weights (a second training stage)")
    t.add_argument("--warmup", type=at_least(0), default=None, help="warm-up steps (default 500)")
    t.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    t.add_argument("--no-compile", action="store_true")
    add_device(t)
    t.set_defaults(func=cmd_train_tokenizer)


def schedule_config(preset: str, quantizer: str, patch_nums) -> TokenizerConfig:
    """The preset's tokenizer config, with the scale schedule --patch-nums when one is given."""
    if patch_nums is None:
        return tokenizer_preset(preset, quantizer)
    given = "--patch-nums " + " ".join(map(str, patch_nums))
    if quantizer != "multiscale":
        raise ValueError(f"{given}: a schedule is for the multi-scale quantizer; --quantizer {quantizer} has one "
                         "token map, the whole latent")
    if patch_nums[0] != 1:
        raise ValueError(f"{given}: VAR's first scale must be 1 (a 1x1 map predicted from the class alone)")
    try:
        return tokenizer_preset(preset, quantizer, patch_nums=tuple(patch_nums))
    except ValueError as e:  # the config's own message, under the option's name
        raise ValueError(f"{given}: {str(e).split(': ', 1)[-1]}") from None


def cmd_train_tokenizer(args):
    cfg = schedule_config(args.preset, args.quantizer, args.patch_nums)
    check_image_size(args.dataset or args.preset, cfg.image_size, f"--preset {args.preset}")
    tcfg = TokenizerTrainConfig(dataset=args.dataset or args.preset, steps=args.steps, batch_size=args.batch_size,
                                lr=args.lr, seed=args.seed, subset=args.subset, init_from=args.init_from or "")
    if args.warmup is not None:
        tcfg.warmup_steps = args.warmup
    if args.log_every is not None:
        tcfg.log_every = args.log_every
    name = args.name or default_weights_name(args.preset, args.quantizer) + (
        "_s" + "-".join(map(str, cfg.patch_nums)) if args.patch_nums else "")
    train_and_export_tokenizer(cfg, tcfg, name, Path(args.out or REPO_ROOT / "runs" / name),
                               Path(args.export or PRETRAINED_DIR / f"{name}.safetensors"), device=args.device,
                               compile=False if args.no_compile else None, minutes=args.minutes,
                               resume=not args.fresh)


def add_eval_tokenizer(sub) -> None:
    e = sub.add_parser("eval-tokenizer", help="evaluate tokenizers on a test split")
    e.add_argument("--weights", nargs="+", default=["tokenizer_cifar10", "vqvae_cifar10"])
    e.add_argument("--dataset", default="cifar10", choices=list(DATASETS))
    e.add_argument("--split", default="test", choices=["train", "test"])
    e.add_argument("--limit", type=at_least(0), default=0, help="the first N images only (0: all)")
    e.add_argument("--results", default=None, help="results file name (default tokenizer_<dataset>)")
    add_device(e)
    e.set_defaults(func=cmd_eval_tokenizer)


def cmd_eval_tokenizer(args):
    device = pick_device(args.device)
    images, _ = load_split(args.dataset, args.split)
    if args.limit:
        images = images[: args.limit]
    results = {}
    for w in args.weights:
        model = load_tokenizer(w, device=device)  # the fp16 weights that ship, upcast to fp32
        check_image_size(args.dataset, model.cfg.image_size, w)
        m = evaluate_tokenizer(model, images, device=device)
        m["parameters"] = count_params(model)
        m["quantizer"] = model.cfg.quantizer
        key = Path(w).stem if w.endswith(".safetensors") else w
        results[key] = m
        record_metrics(w, f"{args.dataset}_{args.split}" + (f"_first{args.limit}" if args.limit else ""), m)
        print(f"{key}: PSNR {m['psnr']:.2f} dB, per scale {m['psnr_per_scale']}, "
              f"codebook usage (last scale) {m['codebook_usage_last_scale']:.1%}")
    path = write_results(args.results or f"tokenizer_{args.dataset}",
                         {"split": args.split, "tokenizers": results}, device=device)
    print(f"wrote {path}")


def register(sub) -> None:
    add_train_tokenizer(sub)
    add_eval_tokenizer(sub)
