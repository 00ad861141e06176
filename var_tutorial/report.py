"""Report: the docs' tables, rendered from the records in results/*.json.

Every table in README.md and docs/*.md that shows a measurement is made here, from the file
the measuring command wrote (records.py), never typed by hand. In a doc such a table sits in
a generated block, named after the function that renders it and its arguments:

    <!-- begin: scaling_table scaling_cifar10_dropout -->
    | model | width | ... |              <- exactly what scaling_table("scaling_cifar10_dropout") returns
    <!-- end -->

`update_docs()` rewrites every block in place from the current results files (run it after a
new measurement), and tests/test_docs.py fails while a block differs from what this module
renders now. The prose around a block is the author's; its numbers are checked by that test.
"""
from __future__ import annotations

import re
from pathlib import Path

from .data import REPO_ROOT
from .records import read_results
from .scaling import seed_means


def tokenizer_table(name: str = "tokenizer_cifar10") -> str:
    """The tokenizer table (docs/results.md), made from results/<name>.json (eval-tokenizer)."""
    record = read_results(name)
    rows = ["| tokenizer | tokens per image | test PSNR (dB) | PSNR after each scale (dB) | codebook used, last scale "
            "| parameters |",
            "|---|---|---|---|---|---|"]
    for key, m in record["metrics"]["tokenizers"].items():
        per_scale = " → ".join(f"{p:.1f}" for p in m["psnr_per_scale"])
        rows.append(f"| `{key}` ({m['quantizer']}) | {m['tokens_per_image']} | {m['psnr']:.2f} | {per_scale} | "
                    f"{m['codebook_usage_last_scale']:.1%} | {m['parameters'] / 1e6:.2f} M |")
    rows.append(f"\nMeasured on all {m['images']:,} {record['metrics']['split']} images by `{record['command']}` "
                f"on {record['device']}.")
    return "\n".join(rows)


TRAINING_RUNS = ("train_tokenizer_cifar10", "train_tokenizer_cifar10_stage2", "train_vqvae_cifar10",
                 "train_var_cifar10", "train_raster_cifar10", "train_raster_cifar10_best", "train_classifier_cifar10")


def training_table(names=TRAINING_RUNS) -> str:
    """How the shipped weights were trained (docs/training.md), from the training results files."""
    rows = ["| run | parameters | steps | batch | peak lr | ms per step | minutes on the device | device | command |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        r = read_results(name)
        train, m = r["config"]["train"], r["metrics"]
        steps = m["history"][-1]["step"]
        timed = [h for h in m["history"] if "seconds" in h]  # from the first logged step: past compile's warm-up
        ms = 1000 * (timed[-1]["seconds"] - timed[0]["seconds"]) / (timed[-1]["step"] - timed[0]["step"])
        rows.append(f"| `{name}` | {m['parameters'] / 1e6:.2f} M | {steps:,} | {train['batch_size']} | {train['lr']:g} | "
                    f"{ms:.0f} | {m['train_seconds_this_run'] / 60:.1f} | {r['device'].split(' (')[0]} | "
                    f"`{r['command']}` |")
    return "\n".join(rows)


def _run_name(model: str, dataset: str) -> str:
    """"raster@best" -> "raster_cifar10_best": the results file of a model's variant."""
    kind, _, suffix = model.partition("@")
    return f"{kind}_{dataset}" + (f"_{suffix}" if suffix else "")


def generation_table(models=("var", "raster", "raster@best"), dataset: str = "cifar10") -> str:
    """VAR against the raster baseline (docs/results.md), from results/<model>_<dataset>.json
    (evaluate) and results/train_<model>_<dataset>.json (train); "raster@best" reads
    raster_<dataset>_best.json, the raster model trained as long with early stopping
    (`train --keep-best`: the weights of its lowest validation loss)."""
    rows = ["| model | parameters (blocks + head) | trained | best cfg | FID_cls at best cfg | class agreement there "
            "| best class agreement | FID_cls at cfg 0 |", "|---|---|---|---|---|---|---|---|"]
    best = {}
    for model in models:
        ev, tr = read_results(_run_name(model, dataset)), read_results(f"train_{_run_name(model, dataset)}")
        m, t = ev["metrics"], tr["metrics"]
        at_0 = next(e["fid_cls"] for e in m["sweep"] if e["cfg"] == 0)
        best[model] = m["best_fid_cls"]
        rows.append(f"| {model} | {m['parameters'] / 1e6:.2f} M ({m['parameters_blocks_and_head'] / 1e6:.2f} M) | "
                    f"{t['train_seconds_this_run'] / 60:.1f} min, {t['history'][-1]['step']:,} steps"
                    + (f", kept step {t['exported_weights_of_step']:,}" if "exported_weights_of_step" in t else "")
                    + f" | {m['best_cfg']:g} | "
                    f"{m['best_fid_cls']:.1f} | {m['best_class_agreement']:.1%} | {m['max_class_agreement']:.1%} | "
                    f"{at_0:.1f} |")
    if set(best) >= {"var", "raster"}:
        rows.append(f"\nVAR's best FID_cls is **{best['var'] / best['raster']:.2f} ×** the raster baseline's at equal "
                    "training time" + (f", and {best['var'] / best['raster@best']:.2f} × that of the same raster "
                                       "run with early stopping" if "raster@best" in best else "") + ".")
    rows.append(f"FID_cls floor (the real test set against the real training set): "
                f"{m['fid_cls_floor_test_vs_train']:.1f}. The judging classifier's own test accuracy: "
                f"{m['classifier_test_accuracy']:.2%}. {m['samples_per_class']:,} samples per class, "
                f"on {ev['device']}. "
                "Commands:")
    for model in models:
        ev = read_results(_run_name(model, dataset))
        rows.append(f"- {model}: `{ev['command']}`")
    return "\n".join(rows)


SAMPLING_GRID = {  # model -> (the files of its evaluations with top-k 0 / top-p 1, those with top-k 900 / top-p 0.96)
    "var": (("var_cifar10", "sampling_grid_cifar10/var_cfg24_32"), ("sampling_grid_cifar10/var_k900p96",)),
    "raster@best": (("raster_cifar10_best", "sampling_grid_cifar10/raster_best_cfg24_32"),
                    ("sampling_grid_cifar10/raster_best_k900p96",)),
}


def sampling_grid() -> dict:
    """VAR and the early-stopped raster model over one grid of sampling settings: for each
    model and each truncation (none; top-k 900 with top-p 0.96, the paper's), every
    (cfg, FID_cls, class agreement) measured by `evaluate`, from the files in SAMPLING_GRID."""
    out = {}
    for model, by_truncation in SAMPLING_GRID.items():
        for truncation, names in zip(("none", "top-k 900, top-p 0.96"), by_truncation):
            runs = [read_results(n) for n in names]
            points = sorted((e["cfg"], e["fid_cls"], e["class_agreement"]) for r in runs for e in r["metrics"]["sweep"])
            out[model, truncation] = {"points": points, "best": min(points, key=lambda p: p[1]),
                                      "commands": [r["command"] for r in runs], "device": runs[0]["device"],
                                      "samples_per_class": {r["metrics"]["samples_per_class"] for r in runs}}
    return out


def sampling_grid_table() -> str:
    """VAR against the early-stopped raster model (docs/results.md) when both get the same,
    wider grid of sampling settings (cfg up to 32, with and without the paper's truncation)."""
    grid = sampling_grid()
    rows = ["| model | truncation | cfg tried | best cfg | FID_cls there | class agreement there |",
            "|---|---|---|---|---|---|"]
    for (model, truncation), g in grid.items():
        cfgs = [p[0] for p in g["points"]]
        cfg, fid, agree = g["best"]
        rows.append(f"| {model} | {truncation} | {len(cfgs)} values, {min(cfgs):g} to {max(cfgs):g} | {cfg:g} | "
                    f"{fid:.1f} | {agree:.1%} |")
    best = {m: min(g["best"][1] for (k, _), g in grid.items() if k == m) for m in SAMPLING_GRID}
    samples = set().union(*(g["samples_per_class"] for g in grid.values()))
    rows.append(f"\nBest over the whole grid: VAR {best['var']:.1f}, raster@best {best['raster@best']:.1f}: "
                f"VAR's FID_cls is **{best['var'] / best['raster@best']:.2f} ×** the early-stopped raster model's. "
                f"{' or '.join(f'{n:,}' for n in sorted(samples))} samples per class, "
                f"on {grid['var', 'none']['device']}. Commands:")
    rows += [f"- `{c}`" for g in grid.values() for c in g["commands"]]
    return "\n".join(rows)


EDITING_TASKS = {"inpaint_centre": "in-paint the centre quarter", "inpaint_top_half": "in-paint the top half",
                 "inpaint_bottom_half": "in-paint the bottom half", "outpaint_frame": "out-paint a frame",
                 "class_edit_centre": "class edit of a centre box"}


def editing_table(name: str = "editing_cifar10") -> str:
    """The zero-shot editing table (docs/results.md), from results/<name>.json (eval-editing)."""
    r = read_results(name)
    m = r["metrics"]
    raster = "raster" in next(iter(m["tasks"].values()))  # eval-editing ran with --raster-weights
    methods = ("var", "var_blend_latent", "var_blend_pixel") + (("raster",) if raster else ())
    verdicts = ("var", "var_blend_latent") + (("raster",) if raster else ())
    header = (["task", "region", "VAR: PSNR outside (dB)", "VAR + latent blend", "VAR + pixel blend"]
              + ["raster"] * raster + ["VAR: class kept / target reached", "VAR + latent blend"] + ["raster"] * raster)
    rows = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for task, what in EDITING_TASKS.items():
        t = m["tasks"][task]
        verdict = "keeps_true_class" if t["labels"] == "none" else "target_class_rate"
        psnr = [f"{t[k]['psnr_outside_db']:.1f}" if t[k]["psnr_outside_db"] < 99 else "exact" for k in methods]
        rows.append(f"| {what} | {t['mask_fraction']:.0%} | " + " | ".join(psnr) + " | "
                    + " | ".join(f"{t[k][verdict]:.1%}" for k in verdicts) + " |")
    rows.append(f"\n{m['images']:,} test images ({m['images'] // 10} per class); "
                f"class edits at cfg {m['cfg_for_class_edit']:g} "
                f"towards every other class in turn; on {r['device']}: "
                f"`{r['command']}`.")
    return "\n".join(rows)


def scaling_table(name: str = "scaling_cifar10") -> str:
    """A scaling-law table (docs/results.md), from results/<name>.json (scaling): every model, then
    the fits of test loss and error rate against parameters and compute."""
    r = read_results(name)
    m = r["metrics"]
    seeds = r["config"]["budget"].get("seed", 0)
    several = isinstance(seeds, list)  # a sweep repeated with other seeds: a row per size, the mean and each seed
    each = f" ({' / '.join(f'seed {s}' for s in seeds)})" if several else ""
    rows = [f"| model | width | parameters | training compute (FLOPs) | minutes | test loss{each} | "
            f"token error rate{each} |", "|---|---|---|---|---|---|---|"]
    for e in sorted(seed_means(m["models"]), key=lambda e: (e["kind"] != "var", e["parameters"])):
        loss, error = f"{e['test_loss']:.3f}", f"{e['test_error']:.2%}"
        if "seeds" in e:
            loss = f"{loss} ({' / '.join(f'{v:.3f}' for v in e['test_loss_seeds'])})"
            error = f"{error} ({' / '.join(f'{v:.2%}' for v in e['test_error_seeds'])})"
        rows.append(f"| {e['kind']} d={e['depth']} | {e['width']} | {e['parameters'] / 1e6:.2f} M | "
                    f"{e['train_flops']:.2e} | {e['train_seconds'] / 60:.1f} | {loss} | {error} |")
    rows += ["", "| fit L = (βX)^α | VAR: α ± s.e. | VAR: Pearson r | raster: α ± s.e. | raster: Pearson r |",
             "|---|---|---|---|---|"]
    for y, x in (("test_loss", "parameters"), ("test_loss", "train_flops"), ("test_error", "parameters"),
                 ("test_error", "train_flops")):
        cells = []
        for kind in ("var", "raster"):
            f = m["fits"].get(kind, {}).get(f"{y}_vs_{x}")
            cells += ([f"{f['alpha']:.4f} ± {f['alpha_se']:.4f}", f"{f['pearson_r']:.3f}"] if f else ["–", "–"])
        rows.append(f"| {y.replace('_', ' ')} vs {'parameters' if x == 'parameters' else 'compute'} | "
                    + " | ".join(cells) + " |")
    if several:
        per_seed = [(s, m["fits_per_seed"][str(s)]["var"]["test_loss_vs_parameters"]) for s in seeds]
        rows.append("\nThe fits are made on the mean over the seeds of each size (its minutes: the seeds' sum); test "
                    "loss vs parameters for each seed alone: " + ", ".join(
                        f"seed {s}: α = {f['alpha']:.4f} ± {f['alpha_se']:.4f}, r = {f['pearson_r']:.4f}"
                        for s, f in per_seed) + ".")
    budget = r["config"]["budget"]
    lr = f"{budget['lr']:g}" + (" × 256 / width" if budget.get("lr_rule") == "inverse-width" else "")
    dropout = f", dropout {budget['dropout']:g}" if budget.get("dropout") else ""
    head = f"\nEvery model: {budget['steps']:,} steps of {budget['batch_size']} images, peak lr {lr}{dropout}, "
    if "parts" not in m:
        rows.append(head + f"on {r['device']}: `{r['command']}`.")
        return "\n".join(rows)
    rows.append(head + f"on {m['parts'][0]['device']}, in {len(m['parts'])} parts, one results file each (the minutes "
                "of a part that shared its GPU with others are wall-clock minutes, longer than the model alone needs), "
                f"joined by `{r['command']}`:")
    rows += [f"- `{p['name']}`: `{p['command']}`" for p in m["parts"]]
    return "\n".join(rows)


BENCHES = ("generation", "reference", "training")  # results/bench_<name>.json, each written by one `bench` run


def generation_speed_table() -> str:
    """Next-scale against next-token generation (docs/speed.md), from results/bench_generation.json:
    images/s of both models, the lead, its ceiling (the ratio of steps) and what a next-scale
    step costs in next-token steps, on every path the bench timed."""
    gen = read_results("bench_generation")
    times = lambda v: f"{v:.1f}×" if v is not None else "–"
    rows = ["| image size | device | batch | path (both models) | next-scale (images/s) | next-token (images/s) | "
            "next-scale is | steps (ceiling) | a next-scale step costs | eager, fast draw | eager, plain draw |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in gen["metrics"]["rows"]:
        rows.append(f"| {r['resolution']} px | {'GPU' if r['device'] == 'cuda' else 'CPU'} | {r['batch']} | "
                    f"{r.get('path', 'eager, fast draw')} | {r['next_scale_images_per_s']:,.1f} | "
                    f"{r['next_token_images_per_s']:,.1f} | "
                    f"**{r['speedup_next_scale_over_next_token']:.1f}× faster** | "
                    f"{r['steps_ratio']:.1f} | {r['next_scale_step_in_next_token_steps']:.2f} next-token steps | "
                    f"{times(r.get('eager_speedup_next_scale_over_next_token'))} | "
                    f"{times(r.get('plain_speedup_next_scale_over_next_token'))} |")
    return "\n".join(rows)


def reference_speed_table() -> str:
    """Training and sampling against the reference implementation's figures (docs/speed.md),
    from results/bench_reference.json, with the share of the measured bf16 matmul peak."""
    ref = read_results("bench_reference")
    peak = ref["metrics"]["matmul_peak"]["tflops"]
    rows = [f"| configuration | parameters | training tokens/s (reference) | × | share of the bf16 peak "
            f"({peak:.0f} TFLOP/s) | sampling images/s (reference) | × | CUDA graph, not compiled | eager, fast draw "
            "| eager, plain draw |", "|---|---|---|---|---|---|---|---|---|---|"]
    count = lambda v: f"{v:,.0f}" if v is not None else "–"
    for name, c in ref["metrics"]["configs"].items():
        t, s = c["train"], c["sample"]
        rows.append(f"| {name} | {c['parameters'] / 1e6:.0f} M | {t['tokens_per_s']:,.0f} "
                    f"({c['reference']['train_tokens_per_s']:,}) | {c['train_vs_reference']:.2f} | "
                    f"{t['fraction_of_matmul_peak']:.0%} | {s['images_per_s']:,.0f} "
                    f"({c['reference']['sample_images_per_s']:,}) | {c['sample_vs_reference']:.2f} | "
                    f"{count(s.get('graph_images_per_s'))} | {count(s.get('eager_images_per_s'))} | "
                    f"{count(s.get('plain_images_per_s'))} |")
    rows.append("\nSampling: " + next(iter(ref["metrics"]["configs"].values()))["sample"]["path"] + ".")
    return "\n".join(rows)


def training_speed_table() -> str:
    """Training throughput of the CIFAR-10 VAR, eager and compiled (docs/speed.md), from
    results/bench_training.json, with each variant's largest logit difference from eager."""
    tr = read_results("bench_training")
    rows = ["| training the CIFAR-10 VAR (batch 256) | tokens/s | TFLOP/s | largest logit difference from eager |",
            "|---|---|---|---|"]
    for v in tr["metrics"]["variants"]:
        rows.append(f"| {v['variant']} | {v['tokens_per_s']:,.0f} | {v['achieved_tflops']:.1f} | "
                    f"{v['max_abs_logit_diff_vs_plain']:.1e} |")
    return "\n".join(rows)


def bench_runs() -> str:
    """Where the three bench tables come from: the device, and each run's command and date."""
    runs = {n: read_results(f"bench_{n}") for n in BENCHES}
    rows = [f"On {runs['generation']['device']}; each table from its own run:"]
    rows += [f"- `results/bench_{n}.json`: `{r['command']}` ({r['date'][:10]})"
             for n, r in runs.items()]
    return "\n".join(rows)


def speed_table() -> str:
    """All the speed tables in one: generation, the reference's configurations, training, where
    they were measured, and two GPUs against one (docs/speed.md shows them one by one)."""
    return "\n\n".join([generation_speed_table(), reference_speed_table(), training_speed_table(), bench_runs(),
                         ddp_table()])


DDP_RUNS = ("ddp_scaling_b512", "ddp_scaling")


def ddp_table(names=DDP_RUNS) -> str:
    """Two GPUs against one, from results/ddp_scaling*.json (ddp-scaling): the same `train`
    command run in one process and through torchrun, at the same global batch."""
    rows = ["| two GPUs against one: the CIFAR-10 VAR, global batch | one GPU (steps/s) | two GPUs (steps/s) | "
            "speed-up | first losses agree to (relative) | device | train command |", "|---|---|---|---|---|---|---|"]
    for name in names:
        m = read_results(name)["metrics"]
        rows.append(f"| {m['single']['batch_size']:,} | {m['single']['steps_per_second']:.1f} | "
                    f"{m['multi']['steps_per_second']:.1f} | **{m['speedup']:.2f} ×** | "
                    f"{m['first_losses_max_relative_difference']:.0e} | {m['single']['device'].split(' (')[0]} | "
                    f"`{m['single']['command']}` |")
    return "\n".join(rows)


IMAGENETTE_RUNS = ("train_tokenizer_imagenette64", "train_classifier_imagenette64", "train_var_imagenette64")


def imagenette_table() -> str:
    """The Imagenette 64 px table (docs/results.md): each stage's result, its minutes on the GPU and
    its command, from results/*_imagenette64.json."""
    tok = read_results("tokenizer_imagenette64")["metrics"]["tokenizers"]["tokenizer_imagenette64"]
    var = read_results("var_imagenette64")
    v = var["metrics"]
    trained = {name: read_results(name) for name in IMAGENETTE_RUNS}
    cls_acc = trained["train_classifier_imagenette64"]["metrics"]["test"]["accuracy"]
    minutes = {k: r["metrics"]["train_seconds_this_run"] / 60 for k, r in trained.items()}
    per_scale = tok["psnr_per_scale"]
    rows = ["| stage | result on the 3,925 validation images | minutes on one GPU | command |", "|---|---|---|---|",
            f"| multi-scale tokenizer, {len(per_scale)} scales, {tok['tokens_per_image']} tokens | PSNR "
            f"**{tok['psnr']:.2f} dB** (first scale {per_scale[0]:.1f} dB); codebook use "
            f"{tok['codebook_usage_last_scale']:.0%} | {minutes['train_tokenizer_imagenette64']:.1f} | "
            f"`{trained['train_tokenizer_imagenette64']['command']}` |",
            f"| classifier (the judge) | accuracy **{cls_acc:.1%}** | {minutes['train_classifier_imagenette64']:.1f} | "
            f"`{trained['train_classifier_imagenette64']['command']}` |",
            f"| VAR, {v['parameters'] / 1e6:.1f} M parameters | at cfg {v['best_cfg']:g}: class agreement "
            f"**{v['best_class_agreement']:.1%}**, FID_cls {v['best_fid_cls']:.1f} (floor, validation vs "
            f"train: {v['fid_cls_floor_test_vs_train']:.1f}) | {minutes['train_var_imagenette64']:.1f} | "
            f"`{trained['train_var_imagenette64']['command']}` |"]
    rows.append(f"\nSamples: {v['samples_per_class']:,} per class at cfg "
                + ", ".join(f"{e['cfg']:g}" for e in v["sweep"]) + f"; on {var['device']}: `{var['command']}`.")
    return "\n".join(rows)


REGULARISATION_RUNS = ("train_refdiff_none", "train_refdiff_dropout", "train_refdiff_droppath",
                       "train_refdiff_reference")


def regularisation_table(*names: str) -> str:
    """Dropout against the reference's drop path (docs/reference_differences.md): the same small
    VAR, data, seed and steps, validated on held-out training images (train --holdout)."""
    rows = ["| run | dropout | drop path (last block) | key bias | steps | best held-out loss (step) "
            "| held-out loss at the end | training loss at the end |", "|---|---|---|---|---|---|---|---|"]
    for name in names or REGULARISATION_RUNS:
        r = read_results(name)
        model, m = r["config"]["model"], r["metrics"]
        evals = [h for h in m["history"] if "val_loss" in h]
        best = min(evals, key=lambda h: h["val_loss"])
        rows.append(f"| `{name}` | {model['dropout']:g} | {model.get('drop_path', 0.0):g} | "
                    f"{'on' if model.get('key_bias', True) else 'off'} | {m['history'][-1]['step']:,} | "
                    f"{best['val_loss']:.3f} ({best['step']:,}) | {evals[-1]['val_loss']:.3f} | "
                    f"{m['final_train_loss']:.3f} |")
    r = read_results((names or REGULARISATION_RUNS)[0])
    rows.append(f"\n{m['parameters'] / 1e6:.2f} M parameters, {r['config']['train']['subset']:,} CIFAR-10 training "
                f"images of which {r['config']['train']['holdout']:,} are held out, on {r['device']}; each run by "
                f"`{r['command']}` with its own flags.")
    return "\n".join(rows)


EXPOSURE_STUDY = "exposure_bias"  # results/exposure_bias/: the exposure-bias study of notebook 11
EXPOSURE_ARMS = {"base": "the shipped VAR", "control": "control: teacher forcing only",
                 "truth": "self-forced, target truth", "teacher": "self-forced, target teacher"}


def exposure_table(second_judge: str = "classifier_resnet18_cifar10") -> str:
    """Self-forced fine-tuning against a control of equal time (docs/results.md, notebook 11): per
    arm its steps, the last scale's loss with the true context and its exposure gap, and both
    judges' class agreement at cfg 0 and best FID_cls, from results/exposure_bias/*.json."""
    def read(name):
        return read_results(f"{EXPOSURE_STUDY}/{name}")

    rows = ["| model | fine-tuning steps (minutes) | last scale: loss, true context | exposure gap | "
            "ResNet-9: agreement at cfg 0 | best FID_cls (cfg) | ResNet-18: agreement at cfg 0 | best FID_cls (cfg) |",
            "|---|---|---|---|---|---|---|---|"]
    for arm, label in EXPOSURE_ARMS.items():
        ev = read(f"selfforcing_cifar10_{arm}")["metrics"]
        ex = read("exposure_cifar10" + ("" if arm == "base" else f"_{arm}"))["metrics"]
        two, at0 = ev["judges"][second_judge], ev["sweep"][0]
        if arm == "base":
            trained = "—"
        else:
            m = read(f"train_ft_cifar10_{arm}")["metrics"]
            trained = f"{m['train_steps']:,} ({m['train_seconds_this_run'] / 60:.1f})"
        rows.append(f"| {label} | {trained} | {ex['true_context']['loss_per_scale'][-1]:.3f} | "
                    f"**{ex['loss_gap_per_scale'][-1]:.3f}** | {at0['class_agreement']:.1%} | "
                    f"**{ev['best_fid_cls']:.1f}** ({ev['best_cfg']:g}) | {at0['judges'][second_judge]['class_agreement']:.1%} | "
                    f"**{two['best_fid_cls']:.3f}** ({two['best_cfg']:g}) |")
    ev = read("selfforcing_cifar10_base")
    judge = read(f"train_{second_judge}")
    ex64 = read("exposure_imagenette64")
    m64 = ex64["metrics"]
    rows.append(f"\nGap: own-context loss less true-context loss at the last scale, nats, on "
                f"{read('exposure_cifar10')['metrics']['images']:,} test images. Samples: "
                f"{ev['metrics']['samples_per_class']:,} per class at cfg "
                + ", ".join(f"{e['cfg']:g}" for e in ev["metrics"]["sweep"])
                + f"; floors (test vs train): ResNet-9 {ev['metrics']['fid_cls_floor_test_vs_train']:.3f}, ResNet-18 "
                f"{ev['metrics']['judges'][second_judge]['fid_cls_floor_test_vs_train']:.3f}. The ResNet-18 judge "
                f"({judge['metrics']['test']['accuracy']:.1%} test accuracy): `{judge['command']}`. "
                f"Each fine-tune: `{read('train_ft_cifar10_truth')['command']}` with its own flags; each gap: "
                f"`{read('exposure_cifar10')['command']}`; each evaluation: `{ev['command']}`; all on {ev['device']}.")
    rows.append(f"\nAt 64 px ({len(m64['patch_nums'])} scales, {m64['images']:,} validation images), the gap per "
                "scale is " + ", ".join(f"{g:.2f}" for g in m64["loss_gap_per_scale"])
                + f" (`{ex64['command']}`, a VAR trained by `{read('train_var_imagenette64')['command']}`).")
    return "\n".join(rows)


# -- the generated blocks of the docs --------------------------------------------------------------
TABLES = {f.__name__: f for f in (tokenizer_table, training_table, generation_table, sampling_grid_table,
                                  editing_table, scaling_table, imagenette_table, generation_speed_table,
                                  reference_speed_table, training_speed_table, bench_runs, ddp_table, speed_table,
                                  regularisation_table, exposure_table)}
DOCS = ("README.md", "docs/results.md", "docs/speed.md", "docs/training.md", "docs/instructors.md",
        "docs/glossary.md", "CONTRIBUTING.md", "docs/reference_differences.md")  # the docs whose blocks update_docs rewrites
BLOCK = re.compile(r"^<!-- begin: (?P<spec>[^>]*?) -->\n(?P<body>.*?)^<!-- end -->$", re.M | re.S)


def render_block(spec: str) -> str:
    """What the block `<!-- begin: <spec> -->` holds: spec is a function of TABLES and its
    arguments, "scaling_table scaling_cifar10_dropout" -> scaling_table("scaling_cifar10_dropout")."""
    name, *args = spec.split()
    if name not in TABLES:
        raise ValueError(f"generated block '{spec}': {name!r} is not one of report.TABLES ({', '.join(TABLES)})")
    return TABLES[name](*args)


def blocks(text: str) -> list[tuple[str, str]]:
    """Every generated block of a doc's text, as (spec, what it holds now)."""
    return [(m["spec"], m["body"].removesuffix("\n")) for m in BLOCK.finditer(text)]


def render_doc(text: str) -> str:
    """The doc's text with every generated block rendered anew from results/*.json."""
    return BLOCK.sub(lambda m: f"<!-- begin: {m['spec']} -->\n{render_block(m['spec'])}\n<!-- end -->", text)


def update_docs(root: Path | str | None = None, docs=DOCS) -> list[Path]:
    """Rewrite the generated blocks of every doc in place (README.md, docs/*.md, ...) from the
    current results files; return the docs that changed. Run it after a new measurement."""
    changed = []
    for name in docs:
        path = Path(root or REPO_ROOT) / name
        if not path.exists():
            continue
        text = path.read_text()
        new = render_doc(text)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed
