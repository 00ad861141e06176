"""quickstart and figures: what the trained models do, in four pictures.

quickstart draws them from the shipped CIFAR-10 weights (CPU, seconds); with --train it first
trains the tokenizer and VAR from scratch and evaluates them, by calling the same functions
as the train-tokenizer, train and evaluate commands. figures draws them from any weights.
"""
from __future__ import annotations

import io
import os
import time
from pathlib import Path

import torch
from PIL import Image

from .. import data
from ..classifier import features_and_logits
from ..config import TokenizerTrainConfig, TransformerTrainConfig, tokenizer_preset, transformer_config
from ..editing import edit_var, psnr_outside, region_mask
from ..metrics import psnr
from ..pretrained import load_classifier, load_tokenizer, load_transformer, metrics_of
from ..sampling import generate_var
from ..train import pick_device
from .classifier import evaluate_transformer
from .common import add_device, at_least, check_image_size, out_folder
from .tokenizer import train_and_export_tokenizer
from .transformer import train_and_export_transformer

FIGURES = ("reconstruction", "class_grid", "generation_strip", "inpainting")


def show_what_the_models_do(tokenizer_file, var_file, classifier_file, dataset: str, out: Path, device, cfg=None,
                            per_class: int = 8, seed: int = 0, prefix: str = "quickstart", dpi: int = 120) -> None:
    """The quickstart's four figures, from the given (shipped or just trained) weights:
    <prefix>_reconstruction.png, _class_grid.png, _generation_strip.png and _inpainting.png."""
    # viz needs matplotlib and torchvision (seconds to import), and only the two picture commands draw: imported here
    import matplotlib.pyplot as plt

    from ..viz import class_grid, coarse_to_fine_figure, inpainting_figure

    def save(fig, name):  # as RGB: matplotlib's PNG adds an alpha channel, opaque here
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        plt.close(fig)
        Image.open(buf).convert("RGB").save(out / f"{prefix}_{name}.png", optimize=True)

    names = data.class_names(dataset)
    C = len(names)

    tokenizer = load_tokenizer(tokenizer_file, device=device)
    check_image_size(dataset, tokenizer.cfg.image_size, tokenizer_file)
    model, var_tokenizer = load_transformer(var_file, device=device)
    classifier = load_classifier(classifier_file, device=device)  # every file is read before the first picture

    # 1. what the tokenizer keeps: real test images rebuilt from the first k scales
    images, labels = data.load_split(dataset, "test")
    first_of_class = torch.stack([(labels == c).nonzero()[0, 0] for c in range(C)])  # one image per class
    x = data.to_float(images[first_of_class]).to(device)
    per_scale = tokenizer.reconstruct_per_scale(x)
    save(coarse_to_fine_figure(x, per_scale, tokenizer.patch_nums, row_labels=names), "reconstruction")
    print(f"PSNR of these {C} images after each scale:",
          ", ".join(f"k={k + 1}: {psnr(r, x).mean():.1f} dB" for k, r in enumerate(per_scale)))

    # 2. what VAR makes: new images of every class, and how one of them grows scale by scale
    tokenizer = var_tokenizer  # the one whose tokens VAR learned
    if cfg is None:  # the strength with the best FID_cls, measured by evaluate and kept in the sidecar
        cfg = metrics_of(var_file).get(f"{dataset}_test", {}).get("best_cfg", 4.0)
    labels = torch.arange(C, device=device).repeat_interleave(per_class)
    generator = torch.Generator(device).manual_seed(seed)
    _, f_hats = generate_var(model, tokenizer.quantizer, labels, cfg=cfg, generator=generator, return_steps=True)
    samples = tokenizer.fhat_to_img(f_hats[-1]).cpu()
    save(class_grid(samples, labels.cpu(), names, per_class=per_class,
                    title=f"VAR samples, cfg={cfg:g}, seed {seed}"), "class_grid")
    first = torch.arange(C) * per_class  # the first sample of every class
    steps = [tokenizer.fhat_to_img(f[first.to(device)]).cpu() for f in f_hats]
    save(coarse_to_fine_figure(None, steps, tokenizer.patch_nums, row_labels=names), "generation_strip")
    agree = (features_and_logits(classifier, data.to_uint8(samples))[1].argmax(1) == labels.cpu()).float().mean()
    print(f"the classifier names the class VAR was asked for in {agree:.0%} of these {len(labels)} samples")

    # 3. a zero-shot edit: the centre quarter of the same test images hidden and regenerated,
    #    no class given: VAR makes the middle fit what it sees around it (editing.py)
    mask = region_mask(tokenizer.cfg.image_size, "centre")
    generator = torch.Generator(device).manual_seed(seed)
    edited = edit_var(model, tokenizer, x, mask, generator=generator).cpu()
    save(inpainting_figure(x, mask, edited), "inpainting")
    kept = psnr_outside(edited, x.cpu(), mask).mean()  # the pixels outside the hole
    print(f"in-painting: the centre quarter of {C} test images regenerated; "
          f"outside it, {kept:.1f} dB from the original")


def train_from_scratch(out: Path, minutes: float, subset: int = 0, samples_per_class: int = 1000,
                       device=None) -> tuple[Path, Path]:
    """quickstart --train: the tokenizer, then VAR on its tokens, from scratch (half of `minutes`
    each), then their evaluation with the shipped classifier. Everything goes under out/ (the
    results in out/results, unless VAR_TUTORIAL_RESULTS names another folder), so the shipped
    weights and the committed results stay as they are. Returns the two weights files."""
    results = Path(os.environ.get("VAR_TUTORIAL_RESULTS") or out / "results")
    half = minutes / 2
    tokenizer_file, var_file = out / "tokenizer_cifar10.safetensors", out / "var_cifar10.safetensors"
    print(f"== 1/3 the multi-scale tokenizer ({half:g} min)")
    train_and_export_tokenizer(tokenizer_preset("cifar10"), TokenizerTrainConfig(dataset="cifar10", subset=subset),
                               "tokenizer_cifar10", out / "runs" / "tokenizer_cifar10", tokenizer_file, device=device,
                               minutes=half, results_folder=results)
    print(f"== 2/3 VAR on its tokens ({half:g} min)")
    tokenizer = load_tokenizer(tokenizer_file)  # the exported (float16) weights, whose tokens the cache holds
    tcfg = TransformerTrainConfig(dataset="cifar10", tokenizer=str(tokenizer_file), subset=subset,
                                  batch_size=512 if pick_device(device).type == "cuda" else 32)
    train_and_export_transformer(transformer_config("var", "cifar10", tokenizer.cfg), tcfg, tokenizer, "var_cifar10",
                                 out / "runs" / "var_cifar10", var_file, device=device, minutes=half,
                                 results_folder=results)
    print("== 3/3 evaluation with the shipped classifier")
    evaluate_transformer("var", var_file, cfg_values=[1.0, 4.0, 8.0, 16.0], samples_per_class=samples_per_class,
                         limit_real=subset, device=device, results_folder=results)
    return tokenizer_file, var_file


def add_quickstart(sub) -> None:
    q = sub.add_parser("quickstart", help="reconstructions, samples, a generation strip and an in-painting from the "
                       "shipped weights")
    q.add_argument("--out", default=str(data.REPO_ROOT / "outputs"))
    q.add_argument("--train", action="store_true", help="train from scratch first (use a GPU)")
    q.add_argument("--minutes", type=at_least(0.01, float, "a number of minutes"), default=8.0,
                   help="with --train: the time budget, half for the tokenizer and half for VAR")
    q.add_argument("--cfg", type=at_least(0.0, float, "a guidance strength"), default=None,
                   help="CFG strength of the samples (default: the best one measured by evaluate)")
    q.add_argument("--per-class", type=at_least(1), default=8, help="samples of each class in the grid")
    q.add_argument("--seed", type=at_least(0), default=0)
    q.add_argument("--subset", type=at_least(0), default=0, help="with --train: train on N images only (tests)")
    q.add_argument("--samples-per-class", type=at_least(1), default=1000,
                   help="with --train: samples per class for the evaluation")
    add_device(q)
    q.set_defaults(func=cmd_quickstart)


def cmd_quickstart(args):
    device = pick_device(args.device)
    out = out_folder(args.out)
    t0 = time.time()
    if args.train:
        files = train_from_scratch(out, args.minutes, args.subset, args.samples_per_class, args.device)
    else:
        files = ("tokenizer_cifar10", "var_cifar10")
    with torch.no_grad():
        show_what_the_models_do(*files, "classifier_cifar10", "cifar10", out, device, cfg=args.cfg,
                                per_class=args.per_class, seed=args.seed)
    print(f"wrote {', '.join(f'quickstart_{name}.png' for name in FIGURES)} to {out} in {time.time() - t0:.1f} s")


def add_figures(sub) -> None:
    fg = sub.add_parser("figures",
                        help="the quickstart's figures from any weights (e.g. Imagenette's, trained on a GPU)",
                        description="Reconstructions of one test image per class through every scale, a class grid of "
                        "VAR samples, one sample per class growing coarse to fine, and a centre in-painting of the "
                        "same test images: <out>/<prefix>_{reconstruction,class_grid,generation_strip,inpainting}.png.")
    fg.add_argument("--dataset", default="cifar10", choices=["cifar10", "imagenette64"])
    fg.add_argument("--tokenizer", default="tokenizer_cifar10", help="weights of the multi-scale tokenizer")
    fg.add_argument("--var", default="var_cifar10", help="weights of VAR (trained on that tokenizer's tokens)")
    fg.add_argument("--classifier", default="classifier_cifar10", help="weights of the data set's classifier")
    fg.add_argument("--cfg", type=at_least(0.0, float, "a guidance strength"), default=None,
                    help="CFG strength of the samples (default: the best one measured by evaluate)")
    fg.add_argument("--per-class", type=at_least(1), default=8, help="samples of each class in the grid")
    fg.add_argument("--seed", type=at_least(0), default=0)
    fg.add_argument("--prefix", default="figures", help="the files' name prefix")
    fg.add_argument("--dpi", type=at_least(20), default=120)
    fg.add_argument("--out", default=str(data.REPO_ROOT / "outputs"))
    add_device(fg)
    fg.set_defaults(func=cmd_figures)


def cmd_figures(args):
    out = out_folder(args.out)
    with torch.no_grad():
        show_what_the_models_do(args.tokenizer, args.var, args.classifier, args.dataset, out, pick_device(args.device),
                                cfg=args.cfg, per_class=args.per_class, seed=args.seed, prefix=args.prefix,
                                dpi=args.dpi)
    print(f"wrote {', '.join(f'{args.prefix}_{name}.png' for name in FIGURES)} to {out}")


def register(sub) -> None:
    add_quickstart(sub)
    add_figures(sub)
