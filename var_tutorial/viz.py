"""Pictures: image grids, coarse-to-fine strips, token maps, training curves.

Every function returns a matplotlib figure (or axes) and draws nothing else, so the
notebooks, the command line and the widgets (widgets.py) share one picture of each idea.
"""
from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
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
    fig, axes = plt.subplots(1, K, figsize=(1.6 * K, 1.9), squeeze=False)  # squeeze=False: K = 1 works too
    for k, (ax, r) in enumerate(zip(axes[0], tokens)):
        draw_token_map(ax, r[index], f"r_{k + 1}: {r.shape[-2]}x{r.shape[-1]}", cmap=cmap)
    fig.tight_layout()
    return fig


def draw_token_map(ax, r: torch.Tensor, title: str | None = None, cmap: str = "viridis", vmax: int | None = None):
    """One token map r (pn, pn) of code indices as a picture; small maps show the indices."""
    r = r.cpu()
    ax.imshow(r, cmap=cmap, interpolation="nearest", vmin=0, vmax=vmax)
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    if r.numel() <= 16:
        for (y, x), v in zip(torch.cartesian_prod(torch.arange(r.shape[0]), torch.arange(r.shape[1])).tolist(),
                             r.flatten().tolist()):
            ax.text(x, y, str(v), ha="center", va="center", fontsize=6, color="w")


def curves_figure(history: list[dict], keys=("recon_mse", "psnr"), title: str | None = None):
    """Training curves from a history list of dicts (one panel per key)."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3))
    axes = [axes] if len(keys) == 1 else axes
    steps = [h["step"] for h in history]
    for ax, key in zip(axes, keys):
        ax.plot(steps, [h[key] for h in history])
        ax.set_xlabel("step"), ax.set_ylabel(key)
        if key in ("recon_mse", "loss", "vq_loss"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_grid(images: torch.Tensor, labels: torch.Tensor, class_names, per_class: int = 8,
               title: str | None = None, scale: float = 0.75):
    """Rows = classes, columns = the first `per_class` images of each class, one picture."""
    picks = [images[(labels == c).nonzero().flatten()[:per_class]] for c in range(len(class_names))]
    if any(len(p) < per_class for p in picks):
        raise ValueError(f"per_class={per_class}: some class has fewer images than that")
    batch = torch.cat(picks)
    if batch.is_floating_point():
        batch = to_uint8(batch)
    grid = make_grid(batch.cpu(), nrow=per_class, padding=1, pad_value=255)  # (3, rows*(S+1)+1, ...)
    S = images.shape[-1]
    fig, ax = plt.subplots(figsize=(scale * per_class * 0.9 + 1.4, scale * len(class_names) * 0.9 + 0.4))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_yticks([1 + r * (S + 1) + S / 2 for r in range(len(class_names))], list(class_names), fontsize=8)
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def image_rows_figure(rows: dict, col_labels=None, scale: float = 0.9):
    """One row per entry of `rows` ({"original": (B, 3, H, W), "reconstruction": ...}), labelled."""
    names = list(rows)
    B = len(rows[names[0]])
    fig, axes = plt.subplots(len(names), 1, figsize=(scale * B * 0.9 + 1.2, scale * len(names) * 0.95 + 0.3),
                             squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        imgs = rows[name]
        if imgs.is_floating_point():
            imgs = to_uint8(imgs)
        grid = make_grid(imgs.cpu(), nrow=B, padding=1, pad_value=255)
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    if col_labels is not None:
        S = rows[names[0]].shape[-1]
        axes[0, 0].set_xticks([1 + i * (S + 1) + S / 2 for i in range(B)], list(col_labels), fontsize=7)
        axes[0, 0].xaxis.tick_top()
    fig.tight_layout()
    return fig


def scale_view_figure(original: torch.Tensor, recon_k: torch.Tensor, r_k: torch.Tensor, k: int, patch_nums,
                      psnr_db: float | None = None, vocab_size: int | None = None):
    """Three panels for one image: the original, the reconstruction from the first k scales,
    and the token map r_k (pn_k x pn_k code indices). original, recon_k: (3, H, W)."""
    K, pn = len(patch_nums), patch_nums[k - 1]
    fig, axes = plt.subplots(1, 3, figsize=(6.0, 2.35))
    axes[0].imshow(to_numpy_image(original), interpolation="nearest")
    axes[0].set_title("original", fontsize=9)
    axes[1].imshow(to_numpy_image(recon_k), interpolation="nearest")
    tokens = sum(p * p for p in patch_nums[:k])
    extra = f"\n{psnr_db:.1f} dB" if psnr_db is not None else ""
    axes[1].set_title(f"first k={k} of {K} scales\n({tokens} tokens){extra}", fontsize=9)
    for ax in axes[:2]:
        ax.set_xticks([]), ax.set_yticks([])
    draw_token_map(axes[2], r_k, f"token map r_{k}: {pn}x{pn}", vmax=None if vocab_size is None else vocab_size - 1)
    fig.tight_layout()
    return fig


def psnr_per_scale_figure(patch_nums, curves: dict, hline: dict | None = None, title: str | None = None):
    """PSNR (dB) after each scale k: curves = {label: [psnr_1..psnr_K]}; hline = {label: value}."""
    K = len(patch_nums)
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    ks = np.arange(1, K + 1)
    for label, values in curves.items():
        ax.plot(ks, values, marker="o", label=label)
    for label, value in (hline or {}).items():
        ax.axhline(value, color="gray", linestyle="--", linewidth=1, label=label)
    ax.set_xticks(ks, [f"{k}\n{p}x{p}" for k, p in zip(ks, patch_nums)], fontsize=8)
    ax.set_xlabel("k: reconstruction from the first k scales (r_1..r_k)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def show(fig, format: str = "png", quality: int = 90):
    """Show a figure in a notebook, then close it. format="jpeg" suits pictures of photos:
    a tenth of the bytes of a PNG, which keeps the notebooks small. Outside IPython it
    only closes the figure."""
    if format not in ("png", "jpeg"):
        raise ValueError(f"format={format!r}: expected 'png' or 'jpeg'")
    try:
        from IPython.display import Image, display
    except ImportError:
        plt.close(fig)
        return
    buf = io.BytesIO()
    fig.savefig(buf, format=format, dpi=fig.dpi, bbox_inches="tight",
                pil_kwargs={"quality": quality} if format == "jpeg" else None)
    plt.close(fig)
    display(Image(buf.getvalue(), format=format))
