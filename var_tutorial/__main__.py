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
    bench             speed (not tests): next-scale vs next-token generation, training throughput, and the
                      reference implementation's figures -> results/bench_*.json (--quick: tiny, CPU, seconds)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from . import data, distributed
from .classifier import Classifier, features_and_logits
from .config import (
    ClassifierConfig,
    ClassifierTrainConfig,
    TokenizerTrainConfig,
    TransformerTrainConfig,
    tokenizer_preset,
    transformer_config,
)
from .data import REPO_ROOT
from .metrics import FID_CLS_NOTE, evaluate_generator, evaluate_tokenizer, inception_fid, psnr, sample_images
from .pretrained import (
    PRETRAINED_DIR,
    REGISTRY,
    load_classifier,
    load_tokenizer,
    load_transformer,
    metrics_of,
    record_metrics,
    resolve,
    save_weights,
    transformer_record,
)
from .records import write_results
from .train import pick_device, train_classifier, train_tokenizer, train_transformer, training_set
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
    if distributed.is_main():
        print(f"training {name}: {n_params / 1e6:.2f} M parameters, {cfg.num_tokens} tokens per image, on {device}"
              + (f" x {distributed.world_size_requested()} processes" if distributed.launched() else ""))
    t0 = time.time()
    model, history = train_tokenizer(cfg, tcfg, out_dir, device=device, compile=False if args.no_compile else None,
                                     minutes=args.minutes, resume=not args.fresh)
    train_seconds = time.time() - t0
    if not distributed.is_main():
        return  # under torchrun, rank 0 alone exports the weights and writes the results
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
                                  batch_size=args.batch_size, lr=args.lr, seed=args.seed, subset=args.subset,
                                  keep_best=args.keep_best)
    for key in ("warmup_steps", "log_every", "eval_every", "ckpt_every"):
        if getattr(args, key) is not None:
            setattr(tcfg, key, getattr(args, key))
    name = f"{args.model}_{dataset}"
    out_dir = Path(args.out or REPO_ROOT / "runs" / name)
    device = pick_device(args.device)
    model = build_transformer(cfg)
    n_params, n_blocks = count_params(model), count_params(model.blocks) + count_params(model.head)
    if distributed.is_main():
        print(f"training {name}: {n_params / 1e6:.2f} M parameters ({n_blocks / 1e6:.2f} M in blocks and head), "
              f"{cfg.num_tokens} tokens per image, on {device}"
              + (f" x {distributed.world_size_requested()} processes" if distributed.launched() else ""))
    t0 = time.time()
    model, history = train_transformer(cfg, tcfg, tokenizer, out_dir, device=device,
                                       compile=False if args.no_compile else None, minutes=args.minutes,
                                       resume=not args.fresh)
    train_seconds = time.time() - t0
    if not distributed.is_main():
        return  # under torchrun, rank 0 alone exports the weights and writes the results
    last = next((h for h in reversed(history) if "loss" in h), {})
    val = next((h for h in reversed(history) if "val_loss" in h), {})
    restored = history[-1].get("restored_best_step") if history else None
    summary = {"train_steps": history[-1]["step"] if history else 0, "train_seconds_this_run": round(train_seconds, 1),
               **({"exported_weights_of_step": restored} if restored is not None else {}),
               "final_train_loss": last.get("loss"), "final_val_loss": val.get("val_loss"),
               "final_val_accuracy": val.get("val_accuracy"), "processes": distributed.world()}
    export = Path(args.export or default_transformer_file(args.model, dataset))
    save_weights(model, export, "transformer", transformer_record(cfg, tokenizer, tokenizer_file), metrics=summary)
    path = write_results(f"train_{name}", {"history": history, "parameters": n_params,
                                           "parameters_blocks_and_head": n_blocks, **summary},
                         config={"model": cfg.to_dict(), "train": tcfg.to_dict(), "tokenizer": tokenizer.cfg.to_dict()},
                         device=device)
    print(f"saved {export} ({export.stat().st_size / 1e6:.1f} MB) and {path} after {train_seconds / 60:.1f} min")


def cmd_train_classifier(args):
    ccfg = ClassifierConfig(width=args.width)
    # the augmentation grows with the image: crops padded by S/8 and a cutout square of side S/4
    size = data.get_info(args.dataset).image_size if args.dataset in data.DATASETS else 32
    tcfg = ClassifierTrainConfig(dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                 seed=args.seed, subset=args.subset,
                                 crop_pad=size // 8 if args.crop_pad is None else args.crop_pad,
                                 cutout=size // 4 if args.cutout is None else args.cutout)
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


def quickstart_train(args, out: Path) -> tuple[str, str]:
    """quickstart --train: the tokenizer, then VAR, from scratch (half of --minutes each), then
    their evaluation with the shipped classifier. Everything goes under out/ (results in
    out/results), so the shipped weights and the committed results stay as they are."""
    import os

    before = os.environ.get("VAR_TUTORIAL_RESULTS")
    os.environ["VAR_TUTORIAL_RESULTS"] = before or str(out / "results")
    try:
        device = ["--device", args.device] if args.device else []
        subset = ["--subset", str(args.subset)] if args.subset else []
        half = f"{args.minutes / 2:g}"
        tokenizer, var = out / "tokenizer_cifar10.safetensors", out / "var_cifar10.safetensors"
        batch = "512" if pick_device(args.device).type == "cuda" else "32"
        print(f"== 1/3 the multi-scale tokenizer ({half} min)")
        main(["train-tokenizer", "--preset", "cifar10", "--minutes", half, "--out", str(out / "runs" / "tokenizer_cifar10"),
              "--export", str(tokenizer), *subset, *device])
        print(f"== 2/3 VAR on its tokens ({half} min)")
        main(["train", "--model", "var", "--preset", "cifar10", "--tokenizer", str(tokenizer), "--minutes", half,
              "--batch-size", batch, "--out", str(out / "runs" / "var_cifar10"), "--export", str(var), *subset, *device])
        print("== 3/3 evaluation with the shipped classifier")
        main(["evaluate", "--model", "var", "--weights", str(var), "--cfg", "1", "4", "8", "16",
              "--samples-per-class", str(args.samples_per_class),
              *(["--limit-real", str(args.subset)] if args.subset else []), *device])
    finally:  # leave the environment as it was (a notebook or a test may go on in this process)
        if before is None:
            del os.environ["VAR_TUTORIAL_RESULTS"]
    return str(tokenizer), str(var)


def read_image(path: Path, size: int, resize: bool) -> torch.Tensor:
    """A PNG or JPEG file -> uint8 (3, size, size); a wrong size is an error unless resize."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.functional import center_crop, pil_to_tensor
    from torchvision.transforms.functional import resize as resize_image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(path) as pil:
            img = pil_to_tensor(pil.convert("RGB"))  # uint8 (3, H, W)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"image {path} could not be decoded ({e}): expected a PNG or JPEG file") from None
    if tuple(img.shape[-2:]) != (size, size):
        if not resize:
            raise ValueError(f"image {path} is {img.shape[-1]}x{img.shape[-2]}: expected {size}x{size} "
                             "(add --resize to centre-crop and resize it)")
        side = min(img.shape[-2:])
        img = resize_image(center_crop(img, [side, side]), [size, size], antialias=True)
    return img


def edit_mask(args, size: int) -> torch.Tensor:
    from .editing import box_mask, region_mask

    if args.mask_file:
        m = read_image(args.mask_file, size, args.resize).float().mean(0) / 255  # white = regenerate
        return m > 0.5
    if args.box:
        return box_mask(size, *args.box)
    return region_mask(size, args.region)


def cmd_edit(args):
    from torchvision.utils import save_image

    from .editing import edit_var

    device = pick_device(args.device)
    model, tokenizer = load_transformer(args.weights, device=device)
    S = tokenizer.cfg.image_size
    images = torch.stack([read_image(p, S, args.resize) for p in args.images])
    mask = edit_mask(args, S)
    label = None
    if args.target is not None:
        names = data.class_names(args.dataset)
        if args.target in names:
            label = names.index(args.target)
        elif args.target.isdigit():
            label = int(args.target)  # edit_var says so if it is out of range
        else:
            raise ValueError(f"--target {args.target!r}: expected a class index or one of {names}")
    generator = torch.Generator(device).manual_seed(args.seed)
    edited = edit_var(model, tokenizer, images, mask, label, cfg=args.cfg, generator=generator, blend=args.blend)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path, img in zip(args.images, edited):
        target = out / f"{Path(path).stem}_edited.png"
        save_image((img.cpu() + 1) / 2, target)
        print(f"wrote {target}")


def cmd_eval_editing(args):
    from .editing import evaluate_editing

    device = pick_device(args.device)
    model, tokenizer = load_transformer(args.weights, device=device)
    raster, vqvae = load_transformer(args.raster_weights, device=device) if args.raster_weights else (None, None)
    classifier = load_classifier(args.classifier, device=device)
    images, labels = data.load_split(args.dataset, "test")
    per_class = args.images // model.cfg.num_classes
    pick = torch.cat([(labels == c).nonzero().flatten()[:per_class] for c in range(model.cfg.num_classes)])
    t0 = time.time()
    m = evaluate_editing(model, tokenizer, classifier, images[pick], labels[pick], raster, vqvae, cfg=args.cfg,
                         batch_size=args.batch_size, seed=args.seed)
    m.update(weights=str(args.weights), raster_weights=args.raster_weights, classifier=str(args.classifier),
             evaluate_seconds=round(time.time() - t0, 1))
    path = write_results(args.results or f"editing_{args.dataset}", m, device=device)
    for task, r in m["tasks"].items():
        verdict = "keeps_true_class" if r["labels"] == "none" else "target_class_rate"
        print(f"{task}: " + "; ".join(f"{name} {v['psnr_outside_db']:.1f} dB outside, {verdict} {v[verdict]:.1%}"
                                      for name, v in r.items() if isinstance(v, dict)))
    print(f"wrote {path}")


FIGURES = ("reconstruction", "class_grid", "generation_strip", "inpainting")


def cmd_quickstart(args):
    device = pick_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    tokenizer_file, var_file = quickstart_train(args, out) if args.train else ("tokenizer_cifar10", "var_cifar10")
    with torch.no_grad():
        show_what_the_models_do(tokenizer_file, var_file, "classifier_cifar10", "cifar10", out, device, cfg=args.cfg,
                                per_class=args.per_class, seed=args.seed)
    print(f"wrote {', '.join(f'quickstart_{name}.png' for name in FIGURES)} to {out} in {time.time() - t0:.1f} s")


def cmd_figures(args):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        show_what_the_models_do(args.tokenizer, args.var, args.classifier, args.dataset, out, pick_device(args.device),
                                cfg=args.cfg, per_class=args.per_class, seed=args.seed, prefix=args.prefix,
                                dpi=args.dpi)
    print(f"wrote {', '.join(f'{args.prefix}_{name}.png' for name in FIGURES)} to {out}")


def show_what_the_models_do(tokenizer_file, var_file, classifier_file, dataset: str, out: Path, device, cfg=None,
                            per_class: int = 8, seed: int = 0, prefix: str = "quickstart", dpi: int = 120) -> None:
    """The quickstart's four figures, from the given (shipped or just trained) weights:
    <prefix>_reconstruction.png, _class_grid.png, _generation_strip.png and _inpainting.png."""
    import matplotlib.pyplot as plt

    from .editing import edit_var, psnr_outside, region_mask
    from .sampling import generate_var
    from .viz import class_grid, coarse_to_fine_figure, image_rows_figure, mask_overlay

    def save(fig, name):
        fig.savefig(out / f"{prefix}_{name}.png", dpi=dpi)
        plt.close(fig)

    names = data.class_names(dataset)
    C = len(names)

    # 1. what the tokenizer keeps: real test images rebuilt from the first k scales
    tokenizer = load_tokenizer(tokenizer_file, device=device)
    images, labels = data.load_split(dataset, "test")
    first_of_class = torch.stack([(labels == c).nonzero()[0, 0] for c in range(C)])  # one image per class
    x = data.to_float(images[first_of_class]).to(device)
    per_scale = tokenizer.reconstruct_per_scale(x)
    save(coarse_to_fine_figure(x, per_scale, tokenizer.patch_nums, row_labels=names), "reconstruction")
    print(f"PSNR of these {C} images after each scale:",
          ", ".join(f"k={k + 1}: {psnr(r, x).mean():.1f} dB" for k, r in enumerate(per_scale)))

    # 2. what VAR makes: new images of every class, and how one of them grows scale by scale
    model, tokenizer = load_transformer(var_file, device=device)
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
    classifier = load_classifier(classifier_file, device=device)
    agree = (features_and_logits(classifier, data.to_uint8(samples))[1].argmax(1) == labels.cpu()).float().mean()
    print(f"the classifier names the class VAR was asked for in {agree:.0%} of these {len(labels)} samples")

    # 3. a zero-shot edit: the centre quarter of the same test images hidden and regenerated,
    #    no class given: VAR makes the middle fit what it sees around it (editing.py)
    mask = region_mask(tokenizer.cfg.image_size, "centre")
    generator = torch.Generator(device).manual_seed(seed)
    edited = edit_var(model, tokenizer, x, mask, generator=generator).cpu()
    save(image_rows_figure({"test image": x.cpu(), "centre hidden": mask_overlay(x, mask),
                            "in-painted by VAR": edited}), "inpainting")
    kept = psnr_outside(edited, x.cpu(), mask).mean()  # the pixels outside the hole
    print(f"in-painting: the centre quarter of {C} test images regenerated; outside it, {kept:.1f} dB from the original")


def cmd_scaling(args):
    from .scaling import run_sweep, summary

    record = run_sweep(depths=args.depths, raster_depths=args.raster_depths, dataset=args.dataset, preset=args.preset,
                       steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
                       lr_rule=args.lr_rule, dropout=args.dropout, keep_best=args.keep_best,
                       val_images=args.val_images, width_per_depth=args.width_per_depth, subset=args.subset,
                       seed=args.seed, device=pick_device(args.device), compile=args.compile, results_name=args.results,
                       out_dir=args.out)
    print(summary(record))


def cmd_merge_scaling(args):
    from .scaling import merge_sweeps, summary

    print(summary(merge_sweeps(args.parts, args.results, parts_folder=args.parts_folder)))


def cmd_bench(args):
    from .bench import run_bench

    run_bench(what=args.what, quick=args.quick, device=args.device, budget_minutes=args.budget_minutes)


def cmd_ddp_scaling(args):
    path = distributed.scaling_report(args.single, args.multi, args.experiment, skip=args.skip, results_name=args.results)
    print(f"wrote {path}")


def cmd_make_exercises(args):
    from .exercises import fill_in_answers, make_exercises  # they need nbformat (the notebooks/test extras)

    if args.answers and not args.out:
        raise ValueError("--answers needs --out: the folder for the notebooks to grade")
    written = fill_in_answers(args.answers, args.out) if args.answers else make_exercises(out_dir=args.out)
    print(f"{len(written)} exercise notebooks; check one with: pytest --nbval-lax --nbval-current-env "
          f"--nbval-sanitize-with notebooks/sanitize.cfg {args.out or 'notebooks/exercises'}/<notebook>.ipynb")


@record  # under torchrun: a failing rank's traceback is reported, and torchrun stops the others
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m var_tutorial", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="reconstructions, samples, a generation strip and an in-painting from the "
                       "shipped weights")
    q.add_argument("--out", default=str(REPO_ROOT / "outputs"))
    q.add_argument("--train", action="store_true", help="train from scratch first (use a GPU)")
    q.add_argument("--minutes", type=at_least(0.01, float, "a number"), default=8.0,
                   help="with --train: the time budget, half for the tokenizer and half for VAR")
    q.add_argument("--cfg", type=at_least(0.0, float, "a guidance strength"), default=None,
                   help="CFG strength of the samples (default: the best one measured by evaluate)")
    q.add_argument("--per-class", type=at_least(1), default=8, help="samples of each class in the grid")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--subset", type=at_least(0), default=0, help="with --train: train on N images only (tests)")
    q.add_argument("--samples-per-class", type=at_least(1), default=1000,
                   help="with --train: samples per class for the evaluation")
    q.add_argument("--device", default=None)
    q.set_defaults(func=cmd_quickstart)

    fg = sub.add_parser("figures", help="the quickstart's figures from any weights (e.g. Imagenette's, trained on a GPU)",
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
    fg.add_argument("--seed", type=int, default=0)
    fg.add_argument("--prefix", default="figures", help="the files' name prefix")
    fg.add_argument("--dpi", type=at_least(20), default=120)
    fg.add_argument("--out", default=str(REPO_ROOT / "outputs"))
    fg.add_argument("--device", default=None)
    fg.set_defaults(func=cmd_figures)

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
    budget.add_argument("--minutes", type=at_least(0.01, float, "a number"), default=None,
                        help="time budget: sets the step count after timing the first steps")
    m.add_argument("--batch-size", type=at_least(1), default=256,
                   help="the global batch: under torchrun it is split evenly over the processes")
    m.add_argument("--lr", type=float, default=1e-3)
    m.add_argument("--warmup-steps", type=int, default=None, help="default 500")
    m.add_argument("--depth", type=at_least(1), default=None, help="override the preset's depth")
    m.add_argument("--width", type=at_least(1), default=None, help="override the preset's width")
    m.add_argument("--heads", type=at_least(1), default=None, help="override the preset's number of heads")
    m.add_argument("--dropout", type=float, default=None, help="override the preset's dropout (0.1 for cifar10)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--subset", type=int, default=0, help="train on N images only, spread over the classes")
    m.add_argument("--log-every", type=at_least(1), default=None, help="default 100")
    m.add_argument("--eval-every", type=at_least(0), default=None, help="validation every N steps (default 1000; 0: never)")
    m.add_argument("--ckpt-every", type=at_least(1), default=None, help="default 2000")
    m.add_argument("--out", default=None, help="checkpoint folder (default runs/<model>_<dataset>)")
    m.add_argument("--export", default=None, help="weights file to write (default data/pretrained/var_<dataset>."
                                                   "safetensors; runs/raster_<dataset>/ for raster)")
    m.add_argument("--keep-best", action="store_true", help="export the weights of the lowest validation loss "
                   "(early stopping) instead of the last ones")
    m.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    m.add_argument("--no-compile", action="store_true")
    m.add_argument("--device", default=None)
    m.set_defaults(func=cmd_train)

    c = sub.add_parser("train-classifier", help="train the evaluation classifier (FID_cls, class agreement)")
    c.add_argument("--dataset", default="cifar10", help="cifar10, imagenette64, or 'toy' for generated images")
    c.add_argument("--epochs", type=at_least(1), default=40)
    c.add_argument("--minutes", type=at_least(0.01, float, "a number"), default=None,
                   help="time budget: replaces --epochs by the steps that fit")
    c.add_argument("--batch-size", type=at_least(1), default=512)
    c.add_argument("--lr", type=float, default=0.4)
    c.add_argument("--width", type=at_least(1), default=64, help="channels of the first conv (64: 2.4 M parameters)")
    c.add_argument("--crop-pad", type=at_least(0), default=None,
                   help="random crops of the image padded by N pixels (default: image size / 8)")
    c.add_argument("--cutout", type=at_least(0), default=None,
                   help="side of the square cut out of each training image, 0: none (default: image size / 4)")
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

    ed = sub.add_parser("edit", help="zero-shot in-painting, out-painting or class edit of PNG/JPEG images with VAR",
                        description="Regenerate part of each image with VAR and keep the rest (editing.py). "
                        "The region: --region (a preset), --box, or --mask-file (white = regenerate).")
    ed.add_argument("images", nargs="+", help="PNG or JPEG files, 32x32 for the CIFAR-10 model (or --resize)")
    ed.add_argument("--weights", default="var_cifar10")
    region = ed.add_mutually_exclusive_group()
    region.add_argument("--region", default="centre", choices=["centre", "top", "bottom", "left", "right", "frame"],
                        help="centre: the middle quarter; top/bottom/left/right: that half; frame: out-painting")
    region.add_argument("--box", type=int, nargs=4, metavar=("TOP", "LEFT", "HEIGHT", "WIDTH"))
    region.add_argument("--mask-file", default=None, help="an image the size of the inputs, white = regenerate")
    ed.add_argument("--target", default=None, help="a class name or index to edit towards (default: no class)")
    ed.add_argument("--dataset", default="cifar10", help="whose class names --target uses")
    ed.add_argument("--cfg", type=at_least(0.0, float, "a guidance strength"), default=16.0)
    ed.add_argument("--blend", default="none", choices=["none", "latent", "pixel"])
    ed.add_argument("--seed", type=int, default=0)
    ed.add_argument("--resize", action="store_true", help="centre-crop and resize inputs of another size")
    ed.add_argument("--out", default=str(REPO_ROOT / "outputs" / "edits"))
    ed.add_argument("--device", default=None)
    ed.set_defaults(func=cmd_edit)

    ee = sub.add_parser("eval-editing", help="measure in-painting, out-painting and class edits -> "
                        "results/editing_<dataset>.json")
    ee.add_argument("--weights", default="var_cifar10")
    ee.add_argument("--raster-weights", default=None, help="the raster baseline to compare with (not shipped)")
    ee.add_argument("--classifier", default="classifier_cifar10")
    ee.add_argument("--dataset", default="cifar10")
    ee.add_argument("--images", type=at_least(10), default=1000, help="test images, the same number of each class")
    ee.add_argument("--cfg", type=at_least(0.0, float, "a guidance strength"), default=16.0,
                    help="guidance of the class edits (the tasks without a class have none)")
    ee.add_argument("--batch-size", type=at_least(1), default=500)
    ee.add_argument("--seed", type=int, default=0)
    ee.add_argument("--results", default=None)
    ee.add_argument("--device", default=None)
    ee.set_defaults(func=cmd_eval_editing)

    sc = sub.add_parser("scaling", help="model-size sweep and power-law fits -> results/scaling_<dataset>.json",
                        description="Train VAR at several depths d (width = width_per_depth * d, d heads) and the raster "
                        "baseline at a few, all on the same token budget and schedule; measure test loss and token "
                        "error rate; fit L = (beta X)^alpha for X = parameters and X = training FLOPs. Each finished "
                        "model is appended to the results file, and models already there are skipped.")
    sc.add_argument("--preset", default="cifar10")
    sc.add_argument("--dataset", default="cifar10")
    sc.add_argument("--depths", type=at_least(1), nargs="+", default=[2, 3, 4, 5, 6, 8])
    sc.add_argument("--raster-depths", type=at_least(1), nargs="*", default=[2, 3, 4])
    sc.add_argument("--width-per-depth", type=at_least(1), default=64, help="64 in the paper")
    sc.add_argument("--steps", type=at_least(1), default=1500, help="the same for every model")
    sc.add_argument("--batch-size", type=at_least(1), default=256)
    sc.add_argument("--lr", type=at_least(0.0, float, "a learning rate"), default=1e-3)
    sc.add_argument("--warmup-steps", type=at_least(0), default=150)
    sc.add_argument("--lr-rule", choices=["constant", "inverse-width"], default="constant",
                    help="one lr for every model, or lr * 256 / width (Adam's best step shrinks with width)")
    sc.add_argument("--dropout", type=at_least(0.0, float, "a probability"), default=0.0,
                    help="the same for every model (the larger ones over-fit CIFAR-10's 50,000 images without)")
    sc.add_argument("--keep-best", action="store_true",
                    help="early stopping: test each model with the weights of its lowest loss on --val-images "
                    "held-out training images (measured 10 times per run)")
    sc.add_argument("--val-images", type=at_least(0), default=0,
                    help="training images held out for --keep-best (with their mirror images), e.g. 5000")
    sc.add_argument("--subset", type=at_least(0), default=0, help="images per split (0: all); for a quick CPU run")
    sc.add_argument("--seed", type=at_least(0), default=0,
                    help="initialisation and batch order of every model; merge-scaling averages sweeps of several seeds")
    sc.add_argument("--compile", action="store_true", help="torch.compile every model (slow to start: off by default)")
    sc.add_argument("--results", default=None, help="results file name (default scaling_<dataset>)")
    sc.add_argument("--out", default=None, help="checkpoint folder, one sub-folder per model (default runs/scaling)")
    sc.add_argument("--device", default=None)
    sc.set_defaults(func=cmd_scaling)

    ms = sub.add_parser("merge-scaling", help="join the results files of a sweep run in parts -> one file, with fits",
                        description="A sweep may run in parts side by side (say, one per GPU, each with its own "
                        "--results name and its own --depths); this joins them into one results file and fits the "
                        "power laws over all the models. The parts must share budget, width rule and data set.")
    ms.add_argument("parts", nargs="+", help="results names of the parts (files in results/)")
    ms.add_argument("--results", default="scaling_cifar10", help="the joined file's name")
    ms.add_argument("--parts-folder", default=None, help="where the parts are (default results/)")
    ms.set_defaults(func=cmd_merge_scaling)
    dd = sub.add_parser("ddp-scaling", help="compare a one-GPU and a multi-GPU run of `train` -> results/ddp_scaling.json",
                        description="Read the train results of the same command run in one process (--single) and "
                        "through torchrun (--multi), each with its own VAR_TUTORIAL_RESULTS folder, and write the "
                        "throughput ratio and the first logged losses side by side.")
    dd.add_argument("--single", required=True, help="results folder of the one-process run")
    dd.add_argument("--multi", required=True, help="results folder of the torchrun run")
    dd.add_argument("--experiment", default="train_var_cifar10", help="the train results file in both folders")
    dd.add_argument("--skip", type=at_least(0), default=100, help="steps left out of the throughput (compilation)")
    dd.add_argument("--results", default="ddp_scaling", help="results file name")
    dd.set_defaults(func=cmd_ddp_scaling)

    mx = sub.add_parser("make-exercises", help="generate the student exercise notebooks from the solution notebooks",
                        description="Write notebooks/exercises/<notebook>.ipynb for every solution notebook with "
                        "'### BEGIN SOLUTION' markers (var_tutorial/exercises.py); unchanged files are not rewritten.")
    mx.add_argument("--out", default=None, help="folder to write to (default notebooks/exercises)")
    mx.add_argument("--answers", nargs="+", default=None, metavar="NOTEBOOK",
                    help="grading: submitted exercise notebooks; writes the released ones with only their exercise "
                    "cells taken from these (checks and expected outputs from the release) into --out")
    mx.set_defaults(func=cmd_make_exercises)

    bn = sub.add_parser("bench", help="generation and training speed -> results/bench_*.json (benchmarks, not tests)",
                        description="Benchmarks with random weights (var_tutorial/bench.py): next-scale against "
                        "next-token generation, our model against the reference implementation's figures, training "
                        "throughput (eager / torch.compile, SDPA / FlexAttention). Parts run in the order generation, "
                        "reference, training; each results file is written after every measurement, and measurements "
                        "that no longer fit in --budget-minutes are skipped.")
    bn.add_argument("--what", nargs="+", choices=["generation", "reference", "training"],
                    default=["generation", "reference", "training"])
    bn.add_argument("--quick", action="store_true", help="tiny configs on the CPU, seconds (for tests)")
    bn.add_argument("--device", default=None)
    bn.add_argument("--budget-minutes", type=at_least(0.1, float, "a number of minutes"), default=7.0,
                    help="hard time limit of the whole run")
    bn.set_defaults(func=cmd_bench)

    args = p.parse_args(argv)
    try:
        args.func(args)
    except BaseException:
        distributed.close(finished=False)
        raise
    distributed.close()


if __name__ == "__main__":
    sys.exit(main())
