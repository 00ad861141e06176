"""Interactive views (ipywidgets) for the notebooks.

A widget only chooses *what* to look at; the picture itself comes from viz.py, so a
static copy of a notebook (or a script) can draw the same figure without widgets.
Tokenizing and decoding are the slow parts, so each UI does them once, for every
image and every k, when it is built; moving a control only redraws.

    from var_tutorial.widgets import scale_slider
    scale_slider(tokenizer, images)        # the cell's last line: shows the UI
"""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from .data import to_float
from .metrics import psnr
from .viz import scale_view_figure


@torch.no_grad()
def coarse_to_fine(tokenizer, images: torch.Tensor):
    """Token maps and the reconstruction from the first k scales, for every k.

    images: (B, 3, H, W), uint8 or floats in [-1, 1]. Returns (x, tokens, per_scale, psnr_KB):
    x (B, 3, H, W) in [-1, 1] on the CPU, tokens [r_1 (B, pn_1, pn_1), ..., r_K],
    per_scale [recon from r_1, recon from r_1..r_2, ...] each (B, 3, H, W), and
    psnr_KB (K, B): the PSNR of every reconstruction in dB.
    """
    x = to_float(images) if images.dtype == torch.uint8 else images.float()
    device = next(tokenizer.parameters()).device
    tokens = tokenizer.img_to_tokens(x.to(device))
    per_scale = [tokenizer.tokens_to_img(tokens[: k + 1]).cpu() for k in range(len(tokens))]
    psnr_KB = torch.stack([psnr(recon, x.cpu()) for recon in per_scale])  # (K, B)
    return x.cpu(), [r.cpu() for r in tokens], per_scale, psnr_KB


def scale_slider(tokenizer, images: torch.Tensor, labels=None, class_names=None, index: int = 0, k: int = 1):
    """Choose an image and k: the reconstruction from the first k scales beside the
    original, and the token map r_k that scale k added.

    tokenizer: a multi-scale VQVAE (load_tokenizer("tokenizer_cifar10")).
    images: a small batch (B, 3, H, W), uint8 or in [-1, 1]; a dozen is plenty.
    labels, class_names: optional, to name the images in the drop-down.
    Returns the widget: make it the last expression of a cell (or display() it).
    """
    K = len(tokenizer.patch_nums)
    if not 1 <= k <= K:
        raise ValueError(f"k={k}: expected a number of scales between 1 and {K} (patch_nums={tokenizer.patch_nums})")
    if not 0 <= index < len(images):
        raise ValueError(f"index={index}: expected an image index between 0 and {len(images) - 1}")
    x, tokens, per_scale, psnr_KB = coarse_to_fine(tokenizer, images)

    def name(i):
        if labels is not None and class_names is not None:
            return f"{i}: {class_names[int(labels[i])]}"
        return str(i)

    image_w = widgets.Dropdown(options=[(name(i), i) for i in range(len(x))], value=index, description="image")
    k_w = widgets.IntSlider(value=k, min=1, max=K, step=1, description="k (scales)", continuous_update=True)

    def draw(index, k):
        scale_view_figure(x[index], per_scale[k - 1][index], tokens[k - 1][index], k, tokenizer.patch_nums,
                          psnr_db=float(psnr_KB[k - 1, index]), vocab_size=tokenizer.cfg.vocab_size)
        plt.show()

    out = widgets.interactive_output(draw, {"index": image_w, "k": k_w})
    return widgets.VBox([widgets.HBox([image_w, k_w]), out])
