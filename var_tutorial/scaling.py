"""Scaling laws: train a family of models of growing size, fit L = (beta * X)^alpha.

The paper (Sec. 5) trains VAR at depths 6..30 with width 64*d and d heads and finds
that test loss and token error rate fall as power laws of the parameter count N and of
the training compute C, with Pearson correlations near -0.998 in log-log space. This
module does the same experiment at classroom scale:

    family      depth d, width 64*d, d heads (the paper's rule), d = 2..8 here
    budget      every model sees the same tokens: the same steps, batch, schedule and dropout
    lr rule     one learning rate for all ("constant"), or lr * 256 / width ("inverse-width":
                Adam's best step size shrinks roughly as 1/width, Yang et al. 2022, "muP")
    measure     test loss and test token error rate (1 - accuracy) on the CIFAR-10 test tokens,
                with the last weights or (keep_best) those of the lowest loss on held-out
                training images: early stopping, for models that over-fit their data
    compute     FLOPs of one training step counted by torch's FlopCounterMode, times the steps
    fit         least squares on log L = alpha * log beta + alpha * log X,
                with the standard errors of alpha and beta and the Pearson r
    seeds       a sweep may be repeated with another seed (initialisation and batch order);
                merge_sweeps then fits the mean over the seeds of each size, and each seed alone

Each finished model is appended to results/scaling_<dataset>.json at once, so a sweep
may span several GPU commands: models already in the file are skipped. Parts of one sweep
run side by side (one results file each) are joined by merge_sweeps.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from .config import TransformerConfig, TransformerTrainConfig, transformer_config
from .data import REPO_ROOT
from .powerlaw import fit_power_law
from .pretrained import load_tokenizer
from .records import read_results, write_results
from .train import hold_out, setup_device, token_cache, train_transformer, validate
from .transformer import build_transformer, count_params, scale_index

TOKENIZERS = {"var": "tokenizer_{dataset}", "raster": "vqvae_{dataset}"}  # which tokens each model learns


def family_config(kind: str, depth: int, tokenizer_cfg, preset: str = "cifar10", width_per_depth: int = 64,
                  dropout: float = 0.0) -> TransformerConfig:
    """The sweep's model of a given depth: width = width_per_depth * depth, heads = depth
    (so every head is width_per_depth wide), fitted to the tokenizer like the preset."""
    if depth < 1:
        raise ValueError(f"depth={depth}: expected a positive integer")
    if width_per_depth < 1:
        raise ValueError(f"width_per_depth={width_per_depth}: expected a positive integer (64 in the paper)")
    return transformer_config(kind, preset, tokenizer_cfg, depth=depth, width=width_per_depth * depth, heads=depth,
                              dropout=dropout)


def training_flops_per_sequence(cfg: TransformerConfig) -> int:
    """FLOPs of one training sequence (one image), forward and backward, counted by torch.

    The model runs once on the CPU with batch 1 under FlopCounterMode, which adds up the
    matrix multiplications (2 FLOPs per multiply-add) of every linear layer and of the
    attention (SDPA on its math path, so that its two matmuls are counted too). The mask
    is not exploited, as in the kernels that really run. Element-wise work (norms, GELU,
    softmax) is left out, as in the usual 6·N·tokens estimate that this count refines.
    """
    model = build_transformer(cfg).train()
    L = cfg.num_tokens
    label = torch.zeros(1, dtype=torch.long)
    x = torch.zeros(1, L - 1, cfg.latent_channels) if cfg.kind == "var" else torch.zeros(1, L, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):
        model(label, x).sum().backward()
    return int(counter.get_total_flops())


def fits(entries: list[dict], kind: str = "var") -> dict:
    """The power laws of one model kind's entries: test loss and error rate against
    parameters and against training compute (each needs >= 3 models)."""
    rows = sorted((e for e in entries if e["kind"] == kind), key=lambda e: e["parameters"])
    out = {}
    for y in ("test_loss", "test_error", "test_loss_last_scale"):
        for x in ("parameters", "train_flops"):
            out[f"{y}_vs_{x}"] = fit_power_law([e[x] for e in rows], [e[y] for e in rows])
    return out


LR_RULES = ("constant", "inverse-width")
LR_BASE_WIDTH = 256  # the width at which the inverse-width rule uses the given lr unchanged


def model_lr(lr: float, width: int, rule: str = "constant") -> float:
    """The learning rate of the family's model of a given width under an lr rule:
    "constant" gives every model lr; "inverse-width" gives lr * 256 / width, so that the
    width-128 model steps twice as far and the width-512 model half as far as width 256."""
    if rule not in LR_RULES:
        raise ValueError(f"lr_rule={rule!r}: expected one of {', '.join(LR_RULES)}")
    return lr if rule == "constant" else lr * LR_BASE_WIDTH / width


# what files written before these budget keys existed did: one lr, no dropout, no early stopping
BUDGET_DEFAULTS = {"lr_rule": "constant", "dropout": 0.0, "keep_best": False, "val_images": 0, "seed": 0}


def _same_budget(entry: dict, budget: dict) -> bool:
    return all(entry.get(k, BUDGET_DEFAULTS.get(k)) == v for k, v in budget.items())


def _same_run(entry: dict, kind: str, depth: int, budget: dict) -> bool:
    return entry["kind"] == kind and entry["depth"] == depth and _same_budget(entry, budget)


def _fits_of(entries: list[dict]) -> dict:
    """The fits of every kind with >= 3 sizes; with several seeds of a size, over their means."""
    means = seed_means(entries)
    return {k: fits(means, k) for k in ("var", "raster") if len({e["depth"] for e in means if e["kind"] == k}) >= 3}


MEASURES = ("test_loss", "test_error", "test_loss_last_scale")  # what a model is measured by, and fitted


def seed_means(entries: list[dict]) -> list[dict]:
    """One entry per (kind, depth): itself if it ran with one seed; else the first seed's entry
    with each measure replaced by the mean over the seeds, and the seeds' own values kept
    beside it (e.g. "test_loss_seeds": [5.316, 5.310]) with "seeds": [0, 1].
    train_seconds becomes the sum (the compute spent on that size)."""
    groups: dict[tuple, list[dict]] = {}
    for e in entries:
        groups.setdefault((e["kind"], e["depth"]), []).append(e)
    out = []
    for group in groups.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        group = sorted(group, key=lambda e: e.get("seed", 0))
        mean = dict(group[0], seeds=[e.get("seed", 0) for e in group],
                    train_seconds=round(sum(e["train_seconds"] for e in group), 1))
        for k in MEASURES:
            mean[f"{k}_seeds"] = [e[k] for e in group]
            mean[k] = sum(mean[f"{k}_seeds"]) / len(group)
        out.append(mean)
    return out


def run_sweep(depths=(2, 3, 4, 5, 6, 8), raster_depths=(2, 3, 4), dataset: str = "cifar10", preset: str = "cifar10",
              steps: int = 1500, batch_size: int = 256, lr: float = 1e-3, warmup_steps: int = 150,
              lr_rule: str = "constant", dropout: float = 0.0, keep_best: bool = False, val_images: int = 0,
              width_per_depth: int = 64, subset: int = 0, seed: int = 0, device=None, compile: bool = False,
              results_name: str | None = None, results_folder=None, out_dir=None, progress: bool = True,
              log=print, tokenizers: dict | None = None, caches: dict | None = None) -> dict:
    """Train and measure every model of the family; returns the results record.

    Every model gets the same budget (steps x batch_size sequences, the same schedule and
    seed: seed sets the initialisation and the order of the batches). After each model the
    results file is rewritten with everything so far, and the fits when there are >= 3
    models of a kind; models already there are skipped (resume).
    Models run from the smallest to the largest, so that a sweep cut short by a time limit
    has the cheap ones. tokenizers ({"var": file, "raster": file}) and caches ({kind:
    (train tokens, test tokens)}) replace the data set's defaults (the tests use toy ones);
    results_folder replaces results/ (the notebook's live sweep writes under runs/).

    keep_best: early stopping, as Kaplan et al. (2020) did for models limited by their data:
    val_images training images (with their mirrors) are held out, the loss on them is measured
    10 times per run, and each model is tested with the weights of its lowest held-out loss.
    The test set itself is never used to choose.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name}={value}: expected a positive integer")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout={dropout}: expected a probability in [0, 1)")
    if keep_best and val_images < 1:
        raise ValueError(f"keep_best=True with val_images={val_images}: early stopping needs held-out training "
                         "images (val_images > 0); the test set is never used to choose")
    model_lr(lr, width_per_depth, lr_rule)  # an unknown rule fails before any work
    if not depths:
        raise ValueError("depths=(): expected at least one VAR depth (and 3 or more to fit a power law)")
    device, _ = setup_device(device)
    name = results_name or f"scaling_{dataset}"
    try:
        entries = read_results(name, results_folder)["metrics"]["models"]
    except FileNotFoundError:
        entries = []
    budget = {"steps": steps, "batch_size": batch_size, "lr": lr, "lr_rule": lr_rule, "dropout": dropout,
              "keep_best": keep_best, "val_images": val_images if keep_best else 0, "warmup_steps": warmup_steps,
              "subset": subset, "seed": seed}
    out_dir = Path(out_dir or REPO_ROOT / "runs" / "scaling")
    plan = sorted([("var", d) for d in set(depths)] + [("raster", d) for d in set(raster_depths)],
                  key=lambda kd: (kd[1], kd[0] == "var"))
    tokenizers = {k: v.format(dataset=dataset) for k, v in TOKENIZERS.items()} | (tokenizers or {})
    caches, loaded = dict(caches or {}), {}
    for kind, depth in plan:
        if any(_same_run(e, kind, depth, budget) for e in entries):
            log(f"{kind} depth {depth}: already in {name}.json, skipped")
            continue
        tok_file = tokenizers[kind]
        if kind not in caches:
            train = token_cache(tok_file, dataset, "train", subset, device, progress=progress)
            test = token_cache(tok_file, dataset, "test", subset, device, progress=progress)
            caches[kind] = (train, tuple(t[: len(t) // 2] for t in test))  # the unflipped test images
        if kind not in loaded:  # each tokenizer is read once, and every model of its kind learns its tokens
            loaded[kind] = load_tokenizer(tok_file, device=device)
        tokenizer = loaded[kind]
        cfg = family_config(kind, depth, tokenizer.cfg, preset, width_per_depth, dropout)
        lr_model = model_lr(lr, cfg.width, lr_rule)
        tcfg = TransformerTrainConfig(dataset=dataset, tokenizer=str(tok_file), steps=steps, batch_size=batch_size,
                                      lr=lr_model, warmup_steps=warmup_steps, log_every=max(1, steps // 10),
                                      eval_every=max(1, steps // 10) if keep_best else 0, keep_best=keep_best,
                                      ckpt_every=steps, subset=subset, seed=seed)
        train_tokens, val_tokens = hold_out(caches[kind][0], val_images) if keep_best else (caches[kind][0], None)
        t0 = time.time()
        model, history = train_transformer(cfg, tcfg, tokenizer, out_dir / f"{kind}_d{depth}", device=device,
                                           compile=compile, resume=False, progress=progress, tokens=train_tokens,
                                           val_tokens=val_tokens)
        seconds = time.time() - t0
        scale_L = scale_index(cfg.patch_nums).to(device)
        test = validate(model, cfg, tokenizer.quantizer, tuple(t.to(device) for t in caches[kind][1]), scale_L,
                        batch_size)
        flops = training_flops_per_sequence(cfg)
        blocks = count_params(model.blocks) + count_params(model.head)
        entry = {"kind": kind, "depth": depth, "width": cfg.width, "heads": cfg.heads, **budget, "model_lr": lr_model,
                 "parameters": count_params(model), "parameters_blocks_and_head": blocks,
                 "tokens_per_sequence": cfg.num_tokens, "flops_per_sequence": flops,
                 "train_flops": flops * steps * batch_size, "train_seconds": round(seconds, 1),
                 "final_train_loss": next(h["loss"] for h in reversed(history) if "loss" in h),
                 "test_loss": test["val_loss"], "test_error": 1 - test["val_accuracy"],
                 "test_loss_last_scale": test["val_loss_per_scale"][-1],
                 "test_loss_per_scale": test["val_loss_per_scale"]}
        if keep_best:
            restored = history[-1]
            entry |= {"restored_best_step": restored["restored_best_step"],
                      "best_heldout_loss": restored["restored_best_val_loss"],
                      "train_flops_to_best": flops * restored["restored_best_step"] * batch_size}
        entries.append(entry)
        log(f"{kind} depth {depth}: {entry['parameters'] / 1e6:.2f} M parameters, {entry['train_flops']:.3g} FLOPs, "
            f"test loss {entry['test_loss']:.4f}, error {entry['test_error']:.4f} ({seconds:.0f} s)")
        write_results(name, {"models": entries, "fits": _fits_of(entries)},
                      config={"budget": budget, "width_per_depth": width_per_depth, "dataset": dataset,
                              "preset": preset}, device=device, out_dir=results_folder)
    return read_results(name, results_folder) if entries else {}


def merge_sweeps(parts: list[str], results_name: str, results_folder=None, parts_folder=None) -> dict:
    """Join the results files of one sweep run in parts (say, one part per GPU) into one
    file with the fits over all the models. The parts must share budget, family rule and
    data set, and no model may appear twice; each part's command, commit and device are
    kept under "parts". Returns the joined record.

    Parts may differ in their seed only: a sweep repeated with another seed. The fits are
    then made on the mean over the seeds of each size (seed_means), and "fits_per_seed"
    holds each seed's own fits; the joined budget's "seed" is the list of seeds."""
    if len(parts) < 2:
        raise ValueError(f"parts={parts!r}: expected two or more results files to merge")
    records = [read_results(p, parts_folder) for p in parts]
    for rec in records:  # a part written before a budget key existed did what BUDGET_DEFAULTS says
        rec["config"]["budget"] = BUDGET_DEFAULTS | rec["config"]["budget"]

    def but_seed(config: dict) -> dict:
        return config | {"budget": {k: v for k, v in config["budget"].items() if k != "seed"}}

    first = records[0]["config"]
    for part, rec in zip(parts[1:], records[1:]):
        if but_seed(rec["config"]) != but_seed(first):
            raise ValueError(f"{part}: its config {rec['config']} differs from {parts[0]}'s {first}: "
                             "expected parts of one sweep (same budget, width rule and data set; the seed may differ)")
    entries, seen = [], {}
    for part, rec in zip(parts, records):
        seed = rec["config"]["budget"]["seed"]
        for e in rec["metrics"]["models"]:
            e = {"seed": seed} | e
            key = (e["kind"], e["depth"], seed)
            if key in seen:
                raise ValueError(f"{e['kind']} depth {e['depth']} is in both {seen[key]} and {part} (seed {seed} in "
                                 "both): expected each model of a seed in one part only")
            seen[key] = part
            entries.append(e)
    entries.sort(key=lambda e: (e["depth"], e["kind"] == "var", e["seed"]))
    seeds = sorted({e["seed"] for e in entries})
    config = first if len(seeds) == 1 else first | {"budget": first["budget"] | {"seed": seeds}}
    provenance = [{"name": p, **{k: r.get(k) for k in ("command", "git_commit", "device", "date")}}
                  for p, r in zip(parts, records)]
    metrics = {"models": entries, "fits": _fits_of(entries), "parts": provenance}
    if len(seeds) > 1:
        metrics["fits_per_seed"] = {str(s): _fits_of([e for e in entries if e["seed"] == s]) for s in seeds}
    write_results(results_name, metrics, config=config, out_dir=results_folder)
    return read_results(results_name, results_folder)


def summary(record: dict) -> str:
    """A few lines a person can read: each model, then each fit with its uncertainty."""
    lines = []
    for e in sorted(record["metrics"]["models"], key=lambda e: (e["kind"], e["parameters"], e.get("seed", 0))):
        seed = f" seed {e['seed']}" if "fits_per_seed" in record["metrics"] else ""
        lines.append(f"{e['kind']:6s} d={e['depth']:2d} w={e['width']:4d}{seed}  {e['parameters'] / 1e6:6.2f} M  "
                     f"{e['train_flops']:.2e} FLOPs  test loss {e['test_loss']:.4f}  error {e['test_error']:.4f}")
    seconds = sum(e["train_seconds"] for e in record["metrics"]["models"])
    lines.append(f"training time, all models: {seconds / 60:.1f} min")
    fit_sets = [("", record["metrics"].get("fits", {}))]
    if "fits_per_seed" in record["metrics"]:
        fit_sets = [(" (mean over seeds)", fit_sets[0][1])] + [
            (f" (seed {s} alone)", f) for s, f in record["metrics"]["fits_per_seed"].items()]
    for label, fit_set in fit_sets:
        for kind, f in fit_set.items():
            for key, fit in f.items():
                lines.append(f"{kind}{label}: {key}: alpha = {fit['alpha']:.4f} ± {fit['alpha_se']:.4f}, "
                             f"beta = {fit['beta']:.3g} ± {fit['beta_se']:.2g}, r = {fit['pearson_r']:.4f}")
    return "\n".join(lines)
