"""Pictures: image grids, coarse-to-fine strips, token maps, training curves."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

from .data import to_uint8


def to_numpy_image(img: torch.Tensor):
    """(3, H, W) float in [-1, 1] or uint8 -> (H, W, 3) uint8 array for imshow."""
    if img.is_floating_point():
        img = to_uint8(img)
    return img.permute(1, 2, 0).cpu().numpy()


def show_grid(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None, scale: float = 1.0):
    """A grid of a batch (B, 3, H, W) in [-1, 1] or uint8."""
    if images.is_floating_point():
        images = to_uint8(images)
    grid = make_grid(images.cpu(), nrow=nrow, padding=1, pad_value=255)
    if ax is None:
        rows = (len(images) + nrow - 1) // nrow
        _, ax = plt.subplots(figsize=(scale * nrow * 0.9, scale * rows * 0.9 + (0.4 if title else 0)))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


def coarse_to_fine_figure(originals: torch.Tensor, per_scale: list[torch.Tensor], patch_nums, row_labels=None):
    """Rows = images; columns = the original, then the reconstruction from the first k scales."""
    B, K = len(originals), len(per_scale)
    fig, axes = plt.subplots(B, K + 1, figsize=(1.1 * (K + 1), 1.15 * B + 0.3), squeeze=False)
    for i in range(B):
        cols = [originals[i]] + [per_scale[k][i] for k in range(K)]
        for j, img in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(to_numpy_image(img), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title("original" if j == 0 else f"k={j}\n{patch_nums[j - 1]}x{patch_nums[j - 1]}", fontsize=8)
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
    fig.tight_layout()
    return fig


def token_maps_figure(tokens: list[torch.Tensor], index: int = 0, cmap: str = "viridis"):
    """The token maps r_1..r_K of one image, each a small grid of code indices."""
    K = len(tokens)
    fig, axes = plt.subplots(1, K, figsize=(1.6 * K, 1.9))
    for k, (ax, r) in enumerate(zip(axes, tokens)):
        r = r[index].cpu()
        ax.imshow(r, cmap=cmap, interpolation="nearest")
        ax.set_title(f"r_{k + 1}: {r.shape[0]}x{r.shape[1]}", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
        if r.numel() <= 16:
            for (y, x), v in zip(torch.cartesian_prod(torch.arange(r.shape[0]), torch.arange(r.shape[1])).tolist(),
                                 r.flatten().tolist()):
                ax.text(x, y, str(v), ha="center", va="center", fontsize=6, color="w")
    fig.tight_layout()
    return fig


def curves_figure(history: list[dict], keys=("recon_mse", "psnr"), title: str | None = None):
    """Training curves from a history list of dicts (one panel per key)."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3))
    axes = [axes] if len(keys) == 1 else axes
    steps = [h["step"] for h in history]
    for ax, key in zip(axes, keys):
        ax.plot(steps, [h[key] for h in history])
        ax.set_xlabel("step"), ax.set_ylabel(key)
        if key in ("recon_mse", "loss"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
