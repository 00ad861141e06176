"""Measurements: PSNR, codebook usage and the tokenizer's evaluation over a data set;
FID_cls and class agreement of generated images (with the classifier of classifier.py); the
zero-shot edits measured the same way (evaluate_editing)."""
from __future__ import annotations

import math
import time

import torch
from tqdm.auto import tqdm

from .classifier import features_and_logits
from .data import to_float, to_uint8
from .editing import edit_raster, edit_var, editing_tasks, psnr_outside
from .sampling import generate_raster, generate_var
from .transformer import VAR, RasterTransformer


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of two batches in [-1, 1]: 10 log10(1 / MSE) on the [0, 1] scale. (B,)"""
    mse = ((x.float() - y.float()) / 2).square().flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


@torch.no_grad()
def evaluate_tokenizer(model, images_u8: torch.Tensor, batch_size: int = 500, device=None,
                       progress: bool = True) -> dict:
    """Reconstruct every image from the first k scales, k = 1..K.

    Returns the mean per-image PSNR after each scale (the last one is the tokenizer's
    PSNR), and the fraction of the codebook used at each scale over the whole set.
    """
    device = torch.device(device or next(model.parameters()).device)
    model.eval()
    K, V = len(model.patch_nums), model.cfg.vocab_size
    psnr_sum = torch.zeros(K, dtype=torch.float64)
    counts = torch.zeros(K, V, dtype=torch.int64)
    n = 0
    for i in tqdm(range(0, len(images_u8), batch_size), desc="evaluate tokenizer", disable=not progress):
        x = to_float(images_u8[i : i + batch_size].to(device))
        tokens = model.img_to_tokens(x)
        for k in range(K):
            recon = model.tokens_to_img(tokens[: k + 1])
            psnr_sum[k] += psnr(recon, x).double().sum().cpu()
            counts[k] += torch.bincount(tokens[k].flatten(), minlength=V).cpu()
        n += len(x)
    psnr_k = (psnr_sum / n).tolist()
    usage_k = counts.gt(0).float().mean(1).tolist()
    return {
        "images": n,
        "psnr": round(psnr_k[-1], 3),
        "psnr_per_scale": [round(p, 3) for p in psnr_k],
        "codebook_usage_last_scale": round(usage_k[-1], 4),
        "codebook_usage_per_scale": [round(u, 4) for u in usage_k],
        "codebook_usage_all_scales": round(counts.sum(0).gt(0).float().mean().item(), 4),
        "patch_nums": list(model.patch_nums),
        "tokens_per_image": sum(p * p for p in model.patch_nums),
    }


# -- generated images: FID_cls and class agreement ------------------------------------------
FID_CLS_NOTE = (
    "FID_cls is the Frechet distance between the penultimate-layer features of a classifier that "
    "var_tutorial trained on the same data set (classifier.py: the ResNet-9 has 256 features, the "
    "ResNet-18 512) for the generated images and for the real test images. Each judge has its own "
    "scale. It is NOT Inception FID: compare its numbers only with each other (same classifier, same "
    "data), never with published FIDs. For Inception FID, when online, add --inception-fid "
    "(metrics.inception_fid: torchmetrics with torch-fidelity)."
)


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and covariance (D, D) of features (N, D), in float64."""
    f = features.double()
    if f.dim() != 2 or f.shape[0] < 2:
        raise ValueError(f"features have shape {tuple(f.shape)}: expected (N, D) with N >= 2 (a covariance needs two samples)")
    return f.mean(0), torch.cov(f.T)


def sqrtm_psd(sigma: torch.Tensor) -> torch.Tensor:
    """The square root of a symmetric positive semi-definite matrix, by eigendecomposition:
    sigma = Q diag(l) Q^T  ->  sqrt(sigma) = Q diag(sqrt(l)) Q^T (tiny negative l from rounding -> 0)."""
    eigvals, Q = torch.linalg.eigh(sigma)
    return (Q * eigvals.clamp_min(0).sqrt()) @ Q.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """The Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2):

        ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr( (sigma1 sigma2)^(1/2) )

    sigma1 sigma2 is not symmetric, but it has the same eigenvalues as the symmetric PSD
    matrix s1 sigma2 s1 with s1 = sigma1^(1/2), so the last trace is the sum of the square
    roots of that matrix's eigenvalues: torch.linalg.eigh in float64, no scipy needed.
    """
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    s1 = sqrtm_psd(sigma1)
    middle = s1 @ sigma2 @ s1
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    d = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * tr_sqrt
    return max(0.0, d.item())


def fid_from_features(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between two sets of features (N_a, D) and (N_b, D)."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def class_agreement(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """How often the classifier's prediction equals the label (the class a sample was generated
    for): overall, per class, and the confusion matrix (rows: label, columns: prediction)."""
    predicted, labels = predicted.long().cpu(), labels.long().cpu()
    confusion = torch.bincount(labels * num_classes + predicted, minlength=num_classes ** 2).view(num_classes, num_classes)
    per_class = (confusion.diag() / confusion.sum(1).clamp_min(1)).tolist()
    return {"overall": round((predicted == labels).float().mean().item(), 4),
            "per_class": [round(a, 4) for a in per_class], "confusion": confusion.tolist()}


@torch.no_grad()
def sample_images(model, tokenizer, labels: torch.Tensor, cfg: float, batch_size: int = 1000, seed: int = 0,
                  top_k: int = 0, top_p: float = 1.0, temperature: float = 1.0, progress: bool = False) -> torch.Tensor:
    """Generate one image per label with VAR or the raster model, decoded by the tokenizer:
    uint8 (N, 3, S, S) on the CPU. Batch j draws from a generator seeded by (seed, j), so
    the same seed gives the same images, and every CFG strength of a sweep starts from the
    same random numbers."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: expected an integer >= 1 (images generated per forward pass)")
    device = next(model.parameters()).device
    out = []
    for j, i in enumerate(tqdm(range(0, len(labels), batch_size), desc=f"sampling (cfg={cfg:g})", disable=not progress)):
        g = torch.Generator(device=device).manual_seed(seed * 1_000_003 + j)
        batch = labels[i : i + batch_size].to(device)
        kw = dict(cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature, generator=g)
        if isinstance(model, VAR):
            tokens = generate_var(model, tokenizer.quantizer, batch, **kw)
        else:
            tokens = generate_raster(model, batch, **kw)
        out.append(to_uint8(tokenizer.tokens_to_img(tokens)).cpu())
    return torch.cat(out)


def _summary(features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, real_features: torch.Tensor,
             real_labels: torch.Tensor, num_classes: int) -> dict:
    """FID_cls against the real features, class agreement, and both per class."""
    agreement = class_agreement(logits.argmax(1), labels, num_classes)
    per_class_fid = [fid_from_features(features[labels == c], real_features[real_labels == c])
                     if (labels == c).sum() >= 2 and (real_labels == c).sum() >= 2 else None
                     for c in range(num_classes)]
    return {"fid_cls": round(fid_from_features(features, real_features), 4),
            "class_agreement": agreement["overall"],
            "class_agreement_per_class": agreement["per_class"],
            "fid_cls_per_class": [None if f is None else round(f, 4) for f in per_class_fid],
            "confusion": agreement["confusion"]}


def evaluate_generator(model, tokenizer, classifier, real_test: tuple[torch.Tensor, torch.Tensor],
                       real_train_u8: torch.Tensor | None = None, cfg_values=(1.5,), samples_per_class: int = 1000,
                       batch_size: int = 1000, seed: int = 0, top_k: int = 0, top_p: float = 1.0,
                       temperature: float = 1.0, progress: bool = True, judges: dict | None = None) -> dict:
    """Generate samples_per_class images of every class for each CFG strength in cfg_values,
    and measure them with the classifier against the real test images (uint8, labels).

    Returns FID_cls and class agreement (overall and per class) for every CFG strength,
    the best one (lowest FID_cls), the classifier's own accuracy on the test images, and
    the floor: FID_cls of the test images against the training images (real_train_u8).
    judges: more classifiers by name (a second judge); the same samples are measured by
    each, under result["judges"][name] and each sweep entry's "judges".
    """
    if not isinstance(samples_per_class, int) or samples_per_class < 1:
        raise ValueError(f"samples_per_class={samples_per_class!r}: expected an integer >= 1 (images generated per class)")
    cfg_values = [float(c) for c in cfg_values]
    if not cfg_values or not all(0 <= c < math.inf for c in cfg_values):  # NaN fails too
        raise ValueError(f"cfg_values={cfg_values}: expected one or more guidance strengths >= 0")
    n_cls = model.cfg.num_classes
    test_u8, test_labels = real_test
    judges = {"main": classifier, **(judges or {})}
    real, result, others = {}, {"note": FID_CLS_NOTE, "samples_per_class": samples_per_class,
                                "real_test_images": len(test_u8)}, {}
    for name, judge in judges.items():  # each judge's view of the real images: features, accuracy, floor
        real[name], real_logits = features_and_logits(judge, test_u8, batch_size)
        accuracy = class_agreement(real_logits.argmax(1), test_labels, n_cls)
        view = result if name == "main" else others.setdefault(name, {})
        view.update(classifier_test_accuracy=accuracy["overall"],
                    classifier_test_accuracy_per_class=accuracy["per_class"])
        if real_train_u8 is not None:
            view["fid_cls_floor_test_vs_train"] = round(fid_from_features(real[name], features_and_logits(
                judge, real_train_u8, batch_size)[0]), 4)
    if real_train_u8 is not None:
        result["real_train_images"] = len(real_train_u8)
    labels = torch.arange(n_cls).repeat_interleave(samples_per_class)  # class-major: 0,0,..,1,1,..
    sweep = []
    for cfg in cfg_values:
        t0 = time.time()
        images = sample_images(model, tokenizer, labels, cfg, batch_size, seed, top_k, top_p, temperature, progress)
        seconds = time.time() - t0
        seen = {name: _summary(*features_and_logits(judge, images, batch_size), labels, real[name], test_labels, n_cls)
                for name, judge in judges.items()}
        entry = {"cfg": cfg, **seen.pop("main"), "sampling_seconds": round(seconds, 2)}
        if seen:
            entry["judges"] = {name: {k: v[k] for k in ("fid_cls", "class_agreement")} for name, v in seen.items()}
        sweep.append(entry)
        if progress:
            print(f"cfg={cfg:g}: FID_cls {entry['fid_cls']:.3f}, class agreement {entry['class_agreement']:.1%}"
                  + "".join(f"; {n}: {v['fid_cls']:.3f}, {v['class_agreement']:.1%}" for n, v in seen.items()))
    result.update(sweep=sweep, **_best(sweep))
    for entry in sweep:
        entry["best"] = entry["cfg"] == result["best_cfg"]
    for name, view in others.items():
        view.update(_best([{"cfg": e["cfg"], **e["judges"][name]} for e in sweep]))
    if others:
        result["judges"] = others
    return result


def _best(sweep: list[dict]) -> dict:
    """The best CFG strength of a sweep (lowest FID_cls) and what was measured there."""
    best = min(sweep, key=lambda e: e["fid_cls"])
    return {"best_cfg": best["cfg"], "best_fid_cls": best["fid_cls"], "best_class_agreement": best["class_agreement"],
            "best_cfg_by_agreement": max(sweep, key=lambda e: e["class_agreement"])["cfg"],
            "max_class_agreement": max(e["class_agreement"] for e in sweep)}


def inception_fid(fake_u8: torch.Tensor, real_u8: torch.Tensor, batch_size: int = 500, device=None) -> float:
    """Inception FID (the number papers report), through torchmetrics: for users who are online
    (the Inception weights are downloaded on first use). pip install torchmetrics torch-fidelity."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError as e:
        raise ImportError("inception_fid needs torchmetrics and torch-fidelity (and a download of the Inception "
                          "weights): pip install torchmetrics torch-fidelity. FID_cls needs neither.") from e
    fid = FrechetInceptionDistance(feature=2048).to(device or "cpu")
    for images, real in ((real_u8, True), (fake_u8, False)):
        for i in range(0, len(images), batch_size):
            fid.update(images[i : i + batch_size].to(fid.device), real=real)
    return float(fid.compute())


# -- zero-shot editing, measured ---------------------------------------------------------------
@torch.no_grad()
def evaluate_editing(model: VAR, tokenizer, classifier, images_u8: torch.Tensor, labels: torch.Tensor,
                     raster: RasterTransformer | None = None, vqvae=None, cfg: float = 16.0, batch_size: int = 500,
                     seed: int = 0, progress: bool = True) -> dict:
    """Every task of editing_tasks on the given images (uint8 (N, 3, S, S), true labels (N,)).

    For each task and method: PSNR outside the mask against the tokenizer's own reconstruction
    (per image, then the mean), and the classifier's verdict: for tasks without a class, how
    often the edit keeps the image's true class; for the class edit, how often it shows the
    target class (targets: the true class + 1..9, cycling, so every pair occurs), per class.
    VAR is run with blend none, latent and pixel; the raster baseline (if given) with token
    replacement, the only kind it has.
    """
    n_cls = model.cfg.num_classes
    S = images_u8.shape[-1]
    targets = (labels + 1 + torch.arange(len(labels)) % (n_cls - 1)) % n_cls
    device = next(model.parameters()).device
    out = {"images": len(labels), "cfg_for_class_edit": cfg, "threshold": 0.5, "seed": seed, "tasks": {}}
    methods = [("var", "none"), ("var", "latent"), ("var", "pixel")] + ([("raster", "none")] if raster else [])
    tasks = editing_tasks(S)
    jobs = [(t, m) for t in tasks for m in methods]
    for task, (method, blend) in tqdm(jobs, desc="editing", disable=not progress):
        mask, kind = tasks[task]
        edited, refs = [], []
        for j, i in enumerate(range(0, len(labels), batch_size)):
            x = images_u8[i : i + batch_size]
            lab = targets[i : i + batch_size] if kind == "target" else None
            g = torch.Generator(device).manual_seed(seed * 1_000_003 + j)
            if method == "var":
                e = edit_var(model, tokenizer, x, mask, lab, cfg=cfg, generator=g, blend=blend)
                ref = tokenizer.tokens_to_img(tokenizer.img_to_tokens(to_float(x).to(device)))
            else:
                e = edit_raster(raster, vqvae, x, mask, lab, cfg=cfg, generator=g)
                ref = vqvae.tokens_to_img(vqvae.img_to_tokens(to_float(x).to(device)))
            edited.append(e.cpu())
            refs.append(ref.cpu())
        edited, refs = torch.cat(edited), torch.cat(refs)
        m = mask.float().expand(len(edited), 1, S, S)
        wanted = targets if kind == "target" else labels
        predicted = features_and_logits(classifier, to_uint8(edited))[1].argmax(1)  # the classifier's verdict
        verdict = class_agreement(predicted, wanted.cpu(), n_cls)
        name = f"{method}" + (f"_blend_{blend}" if method == "var" and blend != "none" else "")
        out["tasks"].setdefault(task, {"mask_fraction": round(float(mask.float().mean()), 4), "labels": kind})[name] = {
            "psnr_outside_db": round(float(psnr_outside(edited, refs, m).clamp_max(100).mean()), 3),
            ("target_class_rate" if kind == "target" else "keeps_true_class"): verdict["overall"],
            "per_class": verdict["per_class"],
        }
    return out
