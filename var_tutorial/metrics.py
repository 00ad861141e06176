"""Measurements: PSNR, codebook usage, and the tokenizer's evaluation over a data set."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .data import to_float


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
