"""train: VAR (next-scale) or the raster baseline (next-token) on a tokenizer's tokens.
finetune: VAR fine-tuned on its own draws at the coarser scales (exposure bias).
exposure: per scale, VAR's loss with the true context and with its own draws."""
from __future__ import annotations

from pathlib import Path

import torch

from .. import distributed
from ..config import SelfForcing, TransformerConfig, TransformerTrainConfig, transformer_config
from ..data import DATASETS, REPO_ROOT, image_dataset_of
from ..pretrained import load_tokenizer, load_transformer, read_weights, transformer_record
from ..records import write_results
from ..train import exposure_gap, pick_device, token_cache, train_transformer
from ..transformer import build_transformer, count_params
from ..vqvae import VQVAE
from .common import (
    add_device,
    at_least,
    check_image_size,
    default_transformer_file,
    default_weights_name,
    export_run,
    megabytes,
    number,
    on_device,
    timed,
)


def train_and_export_transformer(cfg: TransformerConfig, tcfg: TransformerTrainConfig, tokenizer: VQVAE, name: str,
                                 out_dir, export, device=None, compile: bool | None = None,
                                 minutes: float | None = None, resume: bool = True, results_folder=None,
                                 self_forcing: SelfForcing | None = None):
    """Train a transformer on the tokens of `tokenizer` (loaded from tcfg.tokenizer; checkpoints
    in out_dir), export its weights to `export` with the record of its tokenizer, and write
    results/train_<name>.json. Returns the trained model (None on the other ranks under torchrun)."""
    device = pick_device(device)
    model = build_transformer(cfg)
    n_params, n_blocks = count_params(model), count_params(model.blocks) + count_params(model.head)
    if distributed.is_main():
        print(f"training {name}: {n_params / 1e6:.2f} M parameters ({n_blocks / 1e6:.2f} M in blocks and head), "
              f"{cfg.num_tokens} tokens per image, " + on_device(device))
    (model, history), seconds = timed(train_transformer, cfg, tcfg, tokenizer, out_dir, device=device,
                                      compile=compile, minutes=minutes, resume=resume, self_forcing=self_forcing)
    if not distributed.is_main():
        return None
    last = next((h for h in reversed(history) if "loss" in h), {})
    val = next((h for h in reversed(history) if "val_loss" in h), {})
    restored = history[-1].get("restored_best_step") if history else None
    summary = {"train_steps": history[-1]["step"] if history else 0, "train_seconds_this_run": round(seconds, 1),
               **({"exported_weights_of_step": restored} if restored is not None else {}),
               "final_train_loss": last.get("loss"), "final_val_loss": val.get("val_loss"),
               "final_val_accuracy": val.get("val_accuracy"), "processes": distributed.world()}
    path = export_run(model, export, "transformer", transformer_record(cfg, tokenizer, tcfg.tokenizer), summary,
                      f"train_{name}", history, seconds,
                      {"parameters": n_params, "parameters_blocks_and_head": n_blocks, **summary},
                      {"model": cfg.to_dict(), "train": tcfg.to_dict(), "tokenizer": tokenizer.cfg.to_dict(),
                       **({"self_forcing": self_forcing.to_dict()} if self_forcing else {})},
                      device, results_folder)
    print(f"saved {export} ({megabytes(export)}) and {path} after {seconds / 60:.1f} min")
    return model


def add_train(sub) -> None:
    m = sub.add_parser("train", help="train VAR or the raster baseline on the tokenizer's tokens")
    m.add_argument("--model", required=True, choices=["var", "raster"], help="var: next-scale; raster: next-token")
    m.add_argument("--preset", default="cifar10", choices=["cifar10", "imagenette64", "tiny"])
    m.add_argument("--tokenizer", default=None,
                   help="weights of the tokenizer (default tokenizer_<preset> for var, vqvae_<preset> for raster)")
    m.add_argument("--dataset", default=None, choices=[*DATASETS, "toy"], help="defaults to the preset's name ('toy' for the tiny preset)")
    budget = m.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=at_least(1), default=20_000)
    budget.add_argument("--minutes", type=at_least(0.01, float, "a number of minutes"), default=None,
                        help="time budget: sets the step count after timing the first steps")
    m.add_argument("--batch-size", type=at_least(1), default=256,
                   help="the global batch: under torchrun it is split evenly over the processes")
    m.add_argument("--lr", type=number("(0, inf)", what="a learning rate"), default=1e-3)
    m.add_argument("--warmup-steps", type=at_least(0), default=None, help="default 500")
    m.add_argument("--depth", type=at_least(1), default=None, help="override the preset's depth")
    m.add_argument("--width", type=at_least(1), default=None, help="override the preset's width")
    m.add_argument("--heads", type=at_least(1), default=None, help="override the preset's number of heads")
    m.add_argument("--dropout", type=number("[0, 1)", what="a probability"), default=None, help="override the preset's dropout (0.1 for cifar10)")
    m.add_argument("--drop-path", type=number("[0, 1)", what="a probability"), default=None,
                   help="stochastic depth of the last block, 0 at the first (the reference: 0.1 * depth / 24, dropout 0)")
    m.add_argument("--key-bias", choices=["on", "off"], default="on",
                   help="a learned bias on the attention keys (off: held at 0, as in the reference)")
    m.add_argument("--seed", type=at_least(0), default=0)
    m.add_argument("--subset", type=at_least(0), default=0, help="train on N images only, spread over the classes")
    m.add_argument("--log-every", type=at_least(1), default=None, help="default 100")
    m.add_argument("--eval-every", type=at_least(0), default=None,
                   help="validation every N steps (default 1000; 0: never)")
    m.add_argument("--ckpt-every", type=at_least(1), default=None, help="default 2000")
    m.add_argument("--name", default=None, help="name of the run: results/train_<name>.json, checkpoints and "
                   "weights in runs/<name>/ (default <model>_<dataset>, whose VAR weights go to data/pretrained/)")
    m.add_argument("--out", default=None, help="checkpoint folder (default runs/<name>)")
    m.add_argument("--export", default=None, help="weights file to write (default data/pretrained/var_<dataset>."
                                                   "safetensors; runs/<name>/ for raster or a named run)")
    m.add_argument("--holdout", type=at_least(0), default=0,
                   help="validate (and early-stop) on N training images held out of training, not on the test split")
    m.add_argument("--keep-best", action="store_true", help="export the weights of the lowest validation loss "
                   "(early stopping) instead of the last ones")
    m.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    m.add_argument("--no-compile", action="store_true")
    add_device(m)
    m.set_defaults(func=cmd_train)


def cmd_train(args):
    quantizer = "multiscale" if args.model == "var" else "single"
    tokenizer_file = args.tokenizer or default_weights_name(args.preset, quantizer)
    tokenizer = load_tokenizer(tokenizer_file)  # read once: train_transformer moves it to the training device
    sizes = {k: v for k, v in (("depth", args.depth), ("width", args.width), ("heads", args.heads),
                               ("dropout", args.dropout), ("drop_path", args.drop_path)) if v is not None}
    sizes["key_bias"] = args.key_bias == "on"
    cfg = transformer_config(args.model, args.preset, tokenizer.cfg, **sizes)
    dataset = args.dataset or ("toy" if args.preset == "tiny" else args.preset)
    check_image_size(dataset, tokenizer.cfg.image_size, tokenizer_file)
    tcfg = TransformerTrainConfig(dataset=dataset, tokenizer=str(tokenizer_file), steps=args.steps,
                                  batch_size=args.batch_size, lr=args.lr, seed=args.seed, subset=args.subset,
                                  keep_best=args.keep_best, holdout=args.holdout)
    for key in ("warmup_steps", "log_every", "eval_every", "ckpt_every"):
        if getattr(args, key) is not None:
            setattr(tcfg, key, getattr(args, key))
    name = args.name or f"{args.model}_{dataset}"
    export = args.export or (REPO_ROOT / "runs" / name / f"{name}.safetensors" if args.name
                             else default_transformer_file(args.model, dataset))
    train_and_export_transformer(cfg, tcfg, tokenizer, name, Path(args.out or REPO_ROOT / "runs" / name), Path(export),
                                 device=args.device, compile=False if args.no_compile else None,
                                 minutes=args.minutes, resume=not args.fresh)


def add_finetune(sub) -> None:
    f = sub.add_parser("finetune", help="fine-tune VAR on its own draws at the coarser scales (exposure bias)",
                       description="Continue training VAR from --weights, with --fraction of every batch built "
                       "from the model's own tokens at the coarser scales instead of the true ones "
                       "(train/transformer.self_forced_loss). --fraction 0 is plain teacher forcing for the same "
                       "steps: the control that says what the extra training alone does.")
    f.add_argument("--weights", default="var_cifar10", help="the VAR weights to start from (registry name or file)")
    f.add_argument("--fraction", type=number("[0, 1]", what="a fraction of the batch"), default=0.5,
                   help="share of every batch that sees its own context (0: plain teacher forcing)")
    f.add_argument("--draw", choices=["sample", "argmax"], default="sample",
                   help="the model's tokens: drawn as when generating, or the most likely")
    f.add_argument("--target", choices=["truth", "teacher"], default="truth",
                   help="what the self-forced rows learn: the true tokens, or the teacher-forced pass's distribution")
    f.add_argument("--dataset", default=None, choices=[*DATASETS, "toy"],
                   help="default: the data set of the tokenizer's image size (cifar10 at 32 px, imagenette64 at 64)")
    budget = f.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=at_least(1), default=2_000)
    budget.add_argument("--minutes", type=at_least(0.01, float, "a number of minutes"), default=None,
                        help="time budget: sets the step count after timing the first steps")
    f.add_argument("--batch-size", type=at_least(1), default=512)
    f.add_argument("--lr", type=number("(0, inf)", what="a learning rate"), default=1e-4)
    f.add_argument("--warmup-steps", type=at_least(0), default=100)
    f.add_argument("--seed", type=at_least(0), default=0)
    f.add_argument("--subset", type=at_least(0), default=0, help="train on N images only, spread over the classes")
    f.add_argument("--log-every", type=at_least(1), default=None, help="default 100")
    f.add_argument("--eval-every", type=at_least(0), default=0,
                   help="teacher-forced validation every N steps (default 0: never)")
    f.add_argument("--holdout", type=at_least(0), default=0,
                   help="validate on N training images held out of the fine-tuning, not on the test split")
    f.add_argument("--keep-best", action="store_true", help="export the weights of the lowest loss on the "
                   "--holdout images (early stopping) instead of the last ones")
    f.add_argument("--name", default=None, help="results/train_<name>.json, runs/<name>/ (default finetune_<dataset>)")
    f.add_argument("--out", default=None, help="checkpoint folder (default runs/<name>)")
    f.add_argument("--export", default=None, help="weights file to write (default runs/<name>/<name>.safetensors)")
    f.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    f.add_argument("--no-compile", action="store_true")
    add_device(f)
    f.set_defaults(func=cmd_finetune)


def cmd_finetune(args):
    start, tokenizer = load_transformer(args.weights)
    if start.cfg.kind != "var":
        raise ValueError(f"--weights {args.weights} holds a {start.cfg.kind!r} transformer: expected VAR "
                         "(self-forcing feeds the next scale its own coarser scales)")
    tokenizer_file = read_weights(args.weights, "transformer")[1]["tokenizer_file"]
    dataset = args.dataset or image_dataset_of(tokenizer.cfg.image_size, f"--weights {args.weights}")
    check_image_size(dataset, tokenizer.cfg.image_size, args.weights)
    forcing = SelfForcing(init_from=str(args.weights), fraction=args.fraction, draw=args.draw, target=args.target)
    tcfg = TransformerTrainConfig(dataset=dataset, tokenizer=str(tokenizer_file), steps=args.steps,
                                  batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
                                  seed=args.seed, subset=args.subset, eval_every=args.eval_every, holdout=args.holdout,
                                  keep_best=args.keep_best)
    if args.log_every is not None:
        tcfg.log_every = args.log_every
    name = args.name or f"finetune_{dataset}"
    export = Path(args.export or REPO_ROOT / "runs" / name / f"{name}.safetensors")
    train_and_export_transformer(start.cfg, tcfg, tokenizer, name, Path(args.out or REPO_ROOT / "runs" / name), export,
                                 device=args.device, compile=False if args.no_compile else None,
                                 minutes=args.minutes, resume=not args.fresh, self_forcing=forcing)


def measure_exposure(weights, dataset: str | None = None, split: str = "test", images: int = 2000,
                     draw: str = "sample", seed: int = 0, batch_size: int = 500, results_name: str | None = None,
                     device=None, results_folder=None) -> dict:
    """exposure_gap of a VAR file on `images` images of a split (the test split by default: this
    measures, it selects nothing), written to results/<results_name>.json."""
    device = pick_device(device)
    model, tokenizer = load_transformer(weights, device=device)
    if model.cfg.kind != "var":
        raise ValueError(f"--weights {weights} holds a {model.cfg.kind!r} transformer: expected VAR")
    tokenizer_file = read_weights(weights, "transformer")[1]["tokenizer_file"]
    dataset = dataset or image_dataset_of(tokenizer.cfg.image_size, f"--weights {weights}")
    check_image_size(dataset, tokenizer.cfg.image_size, weights)
    idx, labels = token_cache(tokenizer_file, dataset, split, device=device)
    n = len(idx) // 2  # the unflipped images; a seeded random choice of them (the cache is sorted by class)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:images]
    idx, labels = idx[:n][order], labels[:n][order]
    m = exposure_gap(model, model.cfg, tokenizer.quantizer, (idx.to(device), labels.to(device)), batch_size, draw, seed)
    gap = [round(o - t, 5) for o, t in zip(m["own_context"]["loss_per_scale"], m["true_context"]["loss_per_scale"])]
    m.update(loss_gap_per_scale=gap, patch_nums=list(model.cfg.patch_nums), images=len(idx), split=split,
             dataset=dataset, draw=draw, weights=str(weights))
    path = write_results(results_name or f"exposure_{dataset}", m, device=device, out_dir=results_folder,
                         config={"model": model.cfg.to_dict(), "tokenizer": tokenizer.cfg.to_dict()})
    print("scale  side  loss (true context)  loss (own context)  accuracy (true)  accuracy (own)")
    for k, pn in enumerate(model.cfg.patch_nums):
        print(f"{k + 1:5d}  {pn:4d}  {m['true_context']['loss_per_scale'][k]:19.3f}  "
              f"{m['own_context']['loss_per_scale'][k]:18.3f}  {m['true_context']['accuracy_per_scale'][k]:15.1%}  "
              f"{m['own_context']['accuracy_per_scale'][k]:14.1%}")
    print(f"wrote {path}")
    return m


def add_exposure(sub) -> None:
    e = sub.add_parser("exposure", help="per scale, VAR's loss with the true context and with its own draws",
                       description="Measure exposure bias: the loss and accuracy of every scale when the coarser "
                       "scales are the true token maps (teacher forcing) and when they are the model's own draws.")
    e.add_argument("--weights", default="var_cifar10", help="VAR weights (registry name or file)")
    e.add_argument("--dataset", default=None, choices=[*DATASETS, "toy"],
                   help="default: the data set of the tokenizer's image size")
    e.add_argument("--split", default="test", choices=["train", "test"])
    e.add_argument("--images", type=at_least(1), default=2000, help="how many images to measure on")
    e.add_argument("--draw", choices=["sample", "argmax"], default="sample")
    e.add_argument("--seed", type=at_least(0), default=0)
    e.add_argument("--batch-size", type=at_least(1), default=500)
    e.add_argument("--results", default=None, help="results file name (default exposure_<dataset>)")
    add_device(e)
    e.set_defaults(func=cmd_exposure)


def cmd_exposure(args):
    measure_exposure(args.weights, args.dataset, args.split, args.images, args.draw, args.seed, args.batch_size,
                     args.results, args.device)


def register(sub) -> None:
    add_train(sub)
    add_finetune(sub)
    add_exposure(sub)
