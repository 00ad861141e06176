"""Pictures: image grids, coarse-to-fine strips, token maps, training curves.

Every function returns a matplotlib figure (or axes) and draws nothing else, so the
notebooks, the command line and the widgets (widgets.py) share one picture of each idea.
"""
from __future__ import annotations

import io

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import torch
from PIL import Image as PILImage
from torchvision.utils import make_grid

from .data import to_uint8
from .powerlaw import fit_power_law, pareto_front, power_law


def _finish(fig, ax, title: str | None = None):
    """The last touches every line plot shares: a light grid, the legend, the title."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


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


def coarse_to_fine_figure(originals: torch.Tensor | None, per_scale: list[torch.Tensor], patch_nums, row_labels=None):
    """Rows = images; columns = the original (if given), then the image from the first k scales:
    a reconstruction (tokenizer.reconstruct_per_scale) or a sample as it is generated
    (generate_var(..., return_steps=True), each f_hat decoded; originals=None)."""
    B, K = len(per_scale[0]), len(per_scale)
    first = 0 if originals is None else 1  # the column of scale k=1
    fig, axes = plt.subplots(B, K + first, figsize=(1.1 * (K + first), 1.15 * B + 0.3), squeeze=False)
    for i in range(B):
        cols = ([] if originals is None else [originals[i]]) + [per_scale[k][i] for k in range(K)]
        for j, img in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(to_numpy_image(img), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                k = j - first + 1
                ax.set_title("original" if k == 0 else f"k={k}\n{patch_nums[k - 1]}x{patch_nums[k - 1]}", fontsize=8)
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
    return _finish(fig, ax, title)


def figure_bytes(fig, format: str = "png", quality: int = 90, colors: int | None = None) -> bytes:
    """A figure as PNG or JPEG bytes. colors=N stores a PNG with a palette of N colours: a plot
    of lines has few, and takes about a third of the bytes of a full-colour PNG."""
    if format not in ("png", "jpeg"):
        raise ValueError(f"format={format!r}: expected 'png' or 'jpeg'")
    if colors is not None and (format != "png" or not 2 <= colors <= 256):
        raise ValueError(f"colors={colors!r}: expected a palette of 2 to 256 colours, for format='png'")
    buf = io.BytesIO()
    fig.savefig(buf, format=format, dpi=fig.dpi, bbox_inches="tight",
                pil_kwargs={"quality": quality} if format == "jpeg" else None)
    if colors is None:
        return buf.getvalue()
    out = io.BytesIO()
    PILImage.open(buf).convert("RGB").quantize(colors).save(out, format="PNG", optimize=True)
    return out.getvalue()


def show(fig, format: str = "png", quality: int = 90, colors: int | None = None):
    """Show a figure in a notebook, then close it. format="jpeg" suits pictures of photos:
    a tenth of the bytes of a PNG; colors=256 suits plots (figure_bytes). Both keep the
    notebooks small. Outside IPython it only closes the figure."""
    data = figure_bytes(fig, format, quality, colors)  # checks the arguments everywhere
    plt.close(fig)
    try:
        from IPython.display import Image, display
    except ImportError:
        return
    display(Image(data, format=format))


# -- orderings, masks and costs (notebook 03) ---------------------------------------------
def orderings_figure(patch_nums, cmap: str = "viridis"):
    """The two generation orders of one image's tokens, each cell labelled with the step that makes it.

    Top: next-token (raster) order over the single h x w map, steps 1..h*w.
    Bottom: next-scale order over r_1..r_K, every token of r_k made at step k.
    Colour = the fraction of the ordering's steps done, so the two rows share one scale.
    """
    K, side = len(patch_nums), patch_nums[-1]
    fig = plt.figure(figsize=(1.25 * K + 1.0, 4.6))
    grid = fig.add_gridspec(2, K, height_ratios=[1.15, 1], width_ratios=[max(p, 2) for p in patch_nums])
    ax = fig.add_subplot(grid[0, :])
    order = torch.arange(1, side * side + 1).view(side, side)
    ax.imshow(order / (side * side), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    for (y, x), v in zip(torch.cartesian_prod(torch.arange(side), torch.arange(side)).tolist(), order.flatten().tolist()):
        ax.text(x, y, str(v), ha="center", va="center", fontsize=6, color="k" if v / (side * side) > 0.6 else "w")
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(f"next-token (raster) order: {side * side} steps, one token each", fontsize=9)
    for k, pn in enumerate(patch_nums):
        ax = fig.add_subplot(grid[1, k])
        ax.imshow(torch.full((pn, pn), (k + 1) / K), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        for y in range(pn):
            for x in range(pn):
                ax.text(x, y, str(k + 1), ha="center", va="center", fontsize=6, color="k" if (k + 1) / K > 0.6 else "w")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"r_{k + 1}: {pn}x{pn}", fontsize=8)
    fig.suptitle(f"next-scale order: {K} steps, the whole token map r_k at step k", fontsize=9, y=0.04)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def image_strips_figure(rows: dict, scale: float = 1.0):
    """Rows of images with a title over each: rows = {row label: (images [(3, H, W)], titles [str])}.
    Rows may differ in length; the missing cells stay empty."""
    names = list(rows)
    n = max(len(images) for images, _ in rows.values())
    fig, axes = plt.subplots(len(names), n, figsize=(scale * 1.05 * n + 0.9, scale * 1.3 * len(names) + 0.2),
                             squeeze=False)
    for r, name in enumerate(names):
        images, titles = rows[name]
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c >= len(images):
                ax.axis("off")
                continue
            ax.imshow(to_numpy_image(images[c]), interpolation="nearest")
            ax.set_title(titles[c], fontsize=7)
        axes[r, 0].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def attention_masks_figure(masks: dict, boundaries: dict | None = None):
    """Attention masks side by side: masks = {title: (L, L) bool, True = may attend}.
    boundaries = {title: [positions]} draws a line before each listed position (scale starts)."""
    fig, axes = plt.subplots(1, len(masks), figsize=(3.4 * len(masks), 3.6), squeeze=False)
    for ax, (title, mask) in zip(axes[0], masks.items()):
        L = mask.shape[0]
        ax.imshow(mask.cpu().float(), cmap="Blues", vmin=0, vmax=1.25, interpolation="nearest")
        for b in (boundaries or {}).get(title, []):
            ax.axhline(b - 0.5, color="tab:orange", linewidth=0.6)
            ax.axvline(b - 0.5, color="tab:orange", linewidth=0.6)
        ax.set_title(f"{title}\n{L}x{L}, {int(mask.sum()):,} allowed pairs", fontsize=9)
        ax.set_xlabel("key j (attended to)", fontsize=8)
        ax.set_ylabel("query i (attending)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def visible_tokens_figure(mask_row: torch.Tensor, patch_nums, query: int, title: str | None = None):
    """What one query token may attend to, drawn on the token maps: mask_row is row `query` of an
    (L, L) mask over the flattened maps r_1..r_K (patch_nums); the query itself is outlined in red."""
    K = len(patch_nums)
    sizes = [p * p for p in patch_nums]
    fig, axes = plt.subplots(1, K, figsize=(1.5 * K + 0.6, 1.9), squeeze=False,
                             gridspec_kw={"width_ratios": [max(p, 2) for p in patch_nums]})
    start = 0
    for k, (ax, pn) in enumerate(zip(axes[0], patch_nums)):
        seen = mask_row[start:start + sizes[k]].view(pn, pn).cpu().float()
        ax.imshow(seen, cmap="Blues", vmin=0, vmax=1.25, interpolation="nearest")
        if start <= query < start + sizes[k]:
            y, x = divmod(query - start, pn)
            ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"r_{k + 1}: {pn}x{pn}" if K > 1 else f"{pn}x{pn} map", fontsize=8)
        start += sizes[k]
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def generation_cost_figure(costs: dict, title: str | None = None):
    """Per generation step: tokens processed, attention pairs (query x key), and the running total
    of pairs. costs = {label: {"tokens": [per step], "pairs": [per step]}}; log scales."""
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.1))
    for (label, c), marker in zip(costs.items(), ("o", "s", "^", "v")):
        steps = np.arange(1, len(c["tokens"]) + 1)
        ms = 3 if len(steps) > 20 else 5
        axes[0].plot(steps, c["tokens"], marker=marker, markersize=ms, label=label)
        axes[1].plot(steps, c["pairs"], marker=marker, markersize=ms, label=label)
        axes[2].plot(steps, np.cumsum(c["pairs"]), marker=marker, markersize=ms, label=label)
    for ax, ylabel in zip(axes, ("tokens processed in the step", "attention pairs in the step",
                                 "attention pairs so far")):
        ax.set_xscale("log"), ax.set_yscale("log")
        ax.set_xlabel("generation step (= forward pass)")
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# -- training curves of the transformers (notebook 05) --------------------------------------
def per_scale_curves_figure(history: list[dict], patch_nums, keys=("loss", "accuracy"), title: str | None = None,
                            hline: dict | None = None):
    """A transformer's training curves, one colour per scale r_k (pn_k x pn_k), one panel per key.

    history: train_transformer's list of dicts. Solid lines: the training entries'
    f"{key}_per_scale" (K values each); dots on a dashed line: the validation entries'
    f"val_{key}_per_scale", where present. hline = {key: (label, value)} draws a reference
    line in that key's panel (for example ln V in the loss panel)."""
    K = len(patch_nums)
    colours = [plt.cm.tab10(k % 10) for k in range(K)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        curves = {style: [h for h in history if f"{prefix}{key}_per_scale" in h]
                  for style, prefix in (("-", ""), ("--", "val_"))}
        if not any(curves.values()):
            raise ValueError(f"key={key!r}: no history entry has '{key}_per_scale' or 'val_{key}_per_scale'")
        for style, entries in curves.items():
            if not entries:
                continue
            prefix = "val_" if style == "--" else ""
            for h in entries:
                if len(h[f"{prefix}{key}_per_scale"]) != K:
                    raise ValueError(f"step {h['step']}: {prefix}{key}_per_scale has "
                                     f"{len(h[f'{prefix}{key}_per_scale'])} values, expected {K} (patch_nums={patch_nums})")
            steps = [h["step"] for h in entries]
            for k, pn in enumerate(patch_nums):
                ax.plot(steps, [h[f"{prefix}{key}_per_scale"][k] for h in entries], color=colours[k], linestyle=style,
                        marker="o" if style == "--" else None, markersize=3, linewidth=1.3)
        if hline and key in hline:
            ax.axhline(hline[key][1], color="gray", linestyle=":", linewidth=1)
            ax.text(0.99, hline[key][1], f" {hline[key][0]}", transform=ax.get_yaxis_transform(),
                    ha="right", va="bottom", fontsize=7, color="gray")
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(plt.MaxNLocator(nbins=4, integer=True, steps=[1, 2, 5, 10]))  # few whole-number steps: labels stay apart
        ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))  # 2,000, not 2000
        ax.set_ylabel(f"{key} per scale")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=colours[k], label=f"r_{k + 1}: {pn}x{pn}") for k, pn in enumerate(patch_nums)]
    if any(f"{key}_per_scale" in h for h in history for key in keys):
        handles.append(plt.Line2D([], [], color="gray", label="training"))
    if any(f"val_{key}_per_scale" in h for h in history for key in keys):
        handles.append(plt.Line2D([], [], color="gray", linestyle="--", marker="o", markersize=3, label="validation"))
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    return fig


def train_val_figure(histories: dict, key: str = "loss", title: str | None = None):
    """Training against validation for several runs: histories = {label: history}. Per run one
    colour: a solid line for the training entries' `key`, dots on a dashed line for `val_{key}`,
    and a star on the best validation value (the lowest loss, the highest accuracy)."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for (label, history), colour in zip(histories.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        train = [h for h in history if key in h]
        val = [h for h in history if f"val_{key}" in h]
        if not train and not val:
            raise ValueError(f"run {label!r}: no history entry has {key!r} or 'val_{key}'")
        ax.plot([h["step"] for h in train], [h[key] for h in train], color=colour, label=f"{label}: training")
        if val:
            ax.plot([h["step"] for h in val], [h[f"val_{key}"] for h in val], color=colour, linestyle="--",
                    marker="o", markersize=3, label=f"{label}: validation")
            best = (max if "accuracy" in key else min)(val, key=lambda h: h[f"val_{key}"])
            ax.plot([best["step"]], [best[f"val_{key}"]], marker="*", markersize=12, color=colour,
                    markeredgecolor="k", linestyle="none")
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_ylabel(key)
    _finish(fig, ax, title)
    ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2))  # below: clear of the curves' ends
    fig.tight_layout()
    return fig


# -- editing (notebook 07) ----------------------------------------------------------------
CHECKER = (150, 200)  # the two greys of mask_overlay's checkerboard
MASK_KEY = ("grey checkerboard: hidden, re-drawn by the model", "the rest: kept, the image's own tokens")


def mask_overlay(images: torch.Tensor, mask: torch.Tensor, cell: int = 2) -> torch.Tensor:
    """The images with the edit region (mask True / 1) covered by a grey checkerboard, the
    usual picture of a hole: uint8 (B, 3, H, W). images: (B, 3, H, W) uint8 or in [-1, 1];
    mask: (H, W), (B, H, W) or (B, 1, H, W)."""
    imgs = (to_uint8(images) if images.is_floating_point() else images).cpu().float()
    H, W = imgs.shape[-2:]
    m = mask.float().cpu().reshape(-1, 1, H, W)
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    checker = torch.where(((yy // cell + xx // cell) % 2) == 0, float(CHECKER[0]), float(CHECKER[1]))  # (H, W)
    return (imgs * (1 - m) + checker * m).round().to(torch.uint8)


def add_mask_key(fig, labels=MASK_KEY):
    """A colour key under a figure that shows mask_overlay's checkerboard: what is re-drawn, what is kept.
    Makes room for it below the axes; returns the legend."""
    from matplotlib.patches import Patch

    dark, light = (c / 255 for c in CHECKER)
    handles = [Patch(facecolor=(dark,) * 3, edgecolor=(light,) * 3, hatch="++", label=labels[0]),
               Patch(facecolor="white", edgecolor="black", linewidth=0.6, label=labels[1])]
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))  # 0.35 inch under the axes for the key
    return fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False, handlelength=1.6)


def inpainting_figure(images: torch.Tensor, mask: torch.Tensor, edited: torch.Tensor, col_labels=None,
                      edited_label: str = "in-painted by VAR"):
    """Three rows: the images (B, 3, H, W), the same with the hidden region (mask (H, W), True =
    re-drawn) as a checkerboard, and the edited images; a colour key below says what the checkerboard means."""
    fig = image_rows_figure({"test image": images.cpu(), "centre hidden": mask_overlay(images, mask),
                             edited_label: edited.cpu()}, col_labels=col_labels)
    add_mask_key(fig)
    return fig


def token_masks_figure(masks: dict, patch_nums, pixel_masks: dict | None = None):
    """Which tokens are regenerated at each scale: rows = masks ({name: [edit_1 .. edit_K]},
    each (pn, pn) bool, e.g. editing.token_masks(...)[k][0]); columns = the pixel mask (if
    pixel_masks={name: (H, W)} is given), then scale k = 1..K. White: regenerated; dark: kept."""
    names, K = list(masks), len(patch_nums)
    first = 0 if pixel_masks is None else 1
    fig, axes = plt.subplots(len(names), K + first, figsize=(1.2 * (K + first) + 0.9, 1.25 * len(names) + 0.3),
                             squeeze=False)
    for i, name in enumerate(names):
        panels = ([] if pixel_masks is None else [pixel_masks[name]]) + list(masks[name])
        for j, m in enumerate(panels):
            ax = axes[i, j]
            m = m.float().cpu()
            ax.imshow(m, cmap="gray", vmin=0, vmax=1.25, interpolation="nearest")
            n = m.shape[-1]
            if j >= first:  # the token grid
                for t in range(1, n):
                    ax.axhline(t - 0.5, color="tab:blue", linewidth=0.5)
                    ax.axvline(t - 0.5, color="tab:blue", linewidth=0.5)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                k = j - first + 1
                ax.set_title("pixel mask" if k == 0 else f"k={k}: {n}x{n}", fontsize=8)
            if j >= first:
                ax.set_xlabel(f"{int(m.sum())} of {n * n}", fontsize=7)
        axes[i, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


def edit_view_figure(original: torch.Tensor, mask: torch.Tensor, result: torch.Tensor, steps: list | None = None,
                     patch_nums=None, title: str | None = None, result_label: str = "edited"):
    """One edit: the original, the masked image and the result on top; with steps (the image
    after each scale, [(3, H, W)] * K) and patch_nums, the scale-by-scale progression below.
    original, result: (3, H, W) uint8 or in [-1, 1]; mask: (H, W)."""
    K = 0 if steps is None else len(steps)
    cols = max(3, K)
    rows = 1 if steps is None else 2
    fig, axes = plt.subplots(rows, cols, figsize=(1.25 * cols + 0.2, 1.45 * rows + (0.35 if title else 0.1)),
                             squeeze=False)
    top = [("original", original), ("masked", mask_overlay(original[None], mask)[0]), (result_label, result)]
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
        ax.axis("off")
    for ax, (name, img) in zip(axes[0], top):
        ax.axis("on")
        ax.imshow(to_numpy_image(img), interpolation="nearest")
        ax.set_title(name, fontsize=8)
    for k in range(K):
        ax = axes[1, k]
        ax.axis("on")
        ax.imshow(to_numpy_image(steps[k]), interpolation="nearest")
        pn = patch_nums[k] if patch_nums is not None else None
        ax.set_title(f"after k={k + 1}" + (f" ({pn}x{pn})" if pn else ""), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


# -- scaling laws (notebook 08) -------------------------------------------------------------
SCALING_AXES = {"parameters": "parameters N", "train_flops": "training compute C (FLOPs)",
                "test_loss": "test loss (nats per token)", "test_error": "test token error rate",
                "test_loss_last_scale": "test loss, last scale only"}


def scaling_figure(models: list[dict], x: str = "parameters", y: str = "test_loss", kinds=("var", "raster"),
                   fit_depths: dict | None = None, pareto: bool = False, title: str | None = None, ax=None):
    """One scaling plot on log-log axes: every model of the sweep (results/scaling_*.json,
    metrics["models"]) as a point, and for every kind with 3 or more models in the fit the
    power law L = (beta X)^alpha fitted to them, its exponent and Pearson r in the legend.

    fit_depths: {kind: depths that enter the fit} (default: all of them); the others are drawn
    hollow. pareto: also draw the Pareto frontier, the lowest y reached for at most that x.
    """
    for key in (x, y):
        if key not in SCALING_AXES:
            raise ValueError(f"{key!r}: expected one of {sorted(SCALING_AXES)}")
    fig, ax = plt.subplots(figsize=(5.2, 3.6)) if ax is None else (ax.figure, ax)
    colours = {"var": "tab:blue", "raster": "tab:orange"}
    for kind in kinds:
        rows = sorted((m for m in models if m["kind"] == kind), key=lambda m: m[x])
        if not rows:
            continue
        chosen = set((fit_depths or {}).get(kind, [m["depth"] for m in rows]))
        xs, ys = [m[x] for m in rows], [m[y] for m in rows]
        inside = [m["depth"] in chosen for m in rows]
        colour = colours.get(kind, "tab:gray")
        ax.scatter([a for a, i in zip(xs, inside) if i], [b for b, i in zip(ys, inside) if i], color=colour, zorder=3,
                   label=f"{kind} models")
        if not all(inside):
            ax.scatter([a for a, i in zip(xs, inside) if not i], [b for b, i in zip(ys, inside) if not i],
                       facecolors="none", edgecolors=colour, zorder=3, label=f"{kind}, left out of the fit")
        for m, a, b in zip(rows, xs, ys):
            ax.annotate(f"d{m['depth']}", (a, b), textcoords="offset points", xytext=(4, 3), fontsize=7)
        fx = [a for a, i in zip(xs, inside) if i]
        if len(fx) >= 3:
            fit = fit_power_law(fx, [b for b, i in zip(ys, inside) if i])
            grid = torch.logspace(float(np.log10(min(xs))), float(np.log10(max(xs))), 50, dtype=torch.float64)
            ax.plot(grid, power_law(grid, fit["alpha"], fit["beta"]), "--", color=colour,
                    label=f"fit: alpha = {fit['alpha']:.4f} ± {fit['alpha_se']:.4f}, r = {fit['pearson_r']:.3f}")
        if pareto:
            front = pareto_front(list(zip(xs, ys)))
            ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", color=colour, alpha=0.4,
                    linewidth=3, label=f"{kind}: Pareto frontier")
    ax.set_xscale("log")
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    if high / low < 10:  # less than a decade: a log axis would label one or two of its ticks, so place
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(6))  # evenly spaced ticks, plain numbers
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter(useOffset=False))
    ax.set_xlabel(SCALING_AXES[x])
    ax.set_ylabel(SCALING_AXES[y])
    return _finish(fig, ax, title)


def exposure_figure(runs: dict, title: str | None = None):
    """Exposure bias, per scale: one panel per run ({label: the metrics of `python -m var_tutorial
    exposure`}), the loss against the true tokens with the true coarser maps as context (teacher
    forcing, solid) and with the model's own draws (dashed); the shaded band is the gap."""
    if not runs:
        raise ValueError("runs is empty: expected {label: exposure metrics}, e.g. "
                         "{'CIFAR-10': read_results('exposure_cifar10')['metrics']}")
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.2), squeeze=False)
    for ax, (label, m) in zip(axes[0], runs.items()):
        missing = [key for key in ("patch_nums", "true_context", "own_context") if key not in m]
        if missing:
            raise ValueError(f"runs[{label!r}] has no {', '.join(missing)}: expected the metrics of an exposure run")
        k = range(1, len(m["patch_nums"]) + 1)
        true, own = m["true_context"]["loss_per_scale"], m["own_context"]["loss_per_scale"]
        ax.plot(k, true, "o-", label="true context (teacher forcing)")
        ax.plot(k, own, "s--", label="own draws as context")
        ax.fill_between(k, true, own, alpha=0.2, color="tab:red", label="the gap")
        ax.set_xticks(list(k), [f"{p}×{p}" for p in m["patch_nums"]], fontsize=7)
        ax.set_xlabel("scale"), ax.set_ylabel("loss per token (nats)")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
