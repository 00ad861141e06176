"""Zero-shot editing: in-painting, out-painting and class-conditional editing.

VAR was never trained to edit. It edits anyway because of the order it generates in:
every scale is predicted from the f_hat of all the scales before it. So we generate as
usual and, after each scale, put back the input image's *own* tokens wherever the mask
says "keep" (VAR paper, appendix; the reference demo does the same):

    r_1..r_K = tokenizer.img_to_tokens(image)                   # the image's own tokens
    for k = 1..K:
        r_k' = the model's sample for scale k, given r_1'..r_{k-1}'
        r_k' = where(edit_k, r_k', r_k)                          # keep the image outside the mask
    image' = tokenizer.tokens_to_img(r_1'..r_K')

edit_k is the pixel mask resized to pn_k x pn_k: a token is regenerated when more than
`threshold` (default one half) of its cell lies in the edit region. At the 1x1 scale the
one token stands for the whole image's mean colour and layout: it is regenerated only when
the edit region covers more than half of the image, otherwise the image's own is kept, so
that the kept part and the new part start from the same global picture.

Because every later scale sees the kept tokens (through f_hat), the new region is made to
fit its surroundings, on every side. The raster baseline (edit_raster) can do the same
replacement, token by token, but it only ever sees the tokens *before* the current one in
raster order: in-painting the top half of an image, it must invent the top without having
seen the bottom.

Token replacement alone keeps the outside close but not exact: the decoder's convolutions
and the bicubic upsampling between scales let the new tokens bleed over the mask's border.
blend="latent" mixes the final f_hat with the image's own f_hat outside the mask (the mask
area-resized to the latent grid), blend="pixel" pastes the tokenizer's reconstruction back
outside the mask. Both are reported beside plain replacement (metrics.evaluate_editing).

Masks: True (or 1) = regenerate, False (0) = keep. Shapes (S, S), (B, S, S) or (B, 1, S, S).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .data import to_float
from .sampling import generate_raster, generate_var
from .transformer import VAR, RasterTransformer
from .vqvae import check_images

BLENDS = ("none", "latent", "pixel")


# -- masks ----------------------------------------------------------------------------------
def box_mask(size: int, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """(size, size) bool: True inside the box rows top..top+height-1, columns left..left+width-1."""
    if not (0 <= top < size and 0 <= left < size and height > 0 and width > 0
            and top + height <= size and left + width <= size):
        raise ValueError(f"box (top={top}, left={left}, height={height}, width={width}): expected a non-empty "
                         f"box inside the {size}x{size} image")
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[top : top + height, left : left + width] = True
    return mask


def centre_box(size: int, area: float = 0.25) -> torch.Tensor:
    """A centred square covering about `area` of the image (0.25: the middle 16x16 of 32x32)."""
    if not 0 < area < 1:
        raise ValueError(f"area={area}: expected a fraction of the image in (0, 1)")
    return _centred(size, max(1, min(size - 1, round(size * math.sqrt(area)))))


def _centred(size: int, side: int) -> torch.Tensor:
    start = (size - side) // 2
    return box_mask(size, start, start, side, side)


def half_mask(size: int, which: str = "top") -> torch.Tensor:
    """Half of the image: 'top', 'bottom', 'left' or 'right'."""
    h = size // 2
    boxes = {"top": (0, 0, h, size), "bottom": (h, 0, size - h, size),
             "left": (0, 0, size, h), "right": (0, h, size, size - h)}
    if which not in boxes:
        raise ValueError(f"which={which!r}: expected one of {sorted(boxes)}")
    return box_mask(size, *boxes[which])


def outpaint_mask(size: int, keep: int) -> torch.Tensor:
    """Out-painting: keep the centred keep x keep square, regenerate the frame around it."""
    if not 0 < keep < size:
        raise ValueError(f"keep={keep}: expected the side of the kept centre, between 1 and {size - 1}")
    return ~_centred(size, keep)


REGIONS = ("centre", "top", "bottom", "left", "right", "frame", "box")  # named regions (CLI, editor)


def region_mask(size: int, region: str = "centre", top: int = 8, left: int = 8, height: int = 16,
                width: int = 16) -> torch.Tensor:
    """A named region, (size, size) bool, True = regenerate: 'centre' (the middle quarter),
    'top' / 'bottom' / 'left' / 'right' (a half), 'frame' (out-painting: keep the centre
    20x20 of 32x32) or 'box' (top, left, height, width in pixels; the others ignore them).
    These are the regions the measurements (editing_tasks) use."""
    if region not in REGIONS:
        raise ValueError(f"region={region!r}: expected one of {REGIONS}")
    if region == "centre":
        return centre_box(size, 0.25)
    if region == "frame":
        return outpaint_mask(size, size // 2 + size // 8)
    if region == "box":
        return box_mask(size, top, left, height, width)
    return half_mask(size, region)


def check_mask(mask, images: torch.Tensor) -> torch.Tensor:
    """The mask as (B, 1, S, S) floats in [0, 1] on the images' device, with clear errors."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask is a {type(mask).__name__}: expected a torch.Tensor (True = regenerate)")
    B, _, H, W = images.shape
    m = mask.float()
    if m.dim() == 2:
        m = m.expand(B, 1, *m.shape)
    elif m.dim() == 3:
        m = m[:, None]
    if m.dim() != 4 or m.shape[1] != 1 or m.shape[2:] != (H, W) or m.shape[0] not in (1, B):
        raise ValueError(f"mask has shape {tuple(mask.shape)}: expected ({H}, {W}), ({B}, {H}, {W}) or "
                         f"({B}, 1, {H}, {W}) for images of shape {tuple(images.shape)}")
    if float(m.min()) < 0 or float(m.max()) > 1:
        raise ValueError(f"mask holds values in [{float(m.min()):g}, {float(m.max()):g}]: expected 0 (keep) to 1 "
                         "(regenerate)")
    m = m.expand(B, 1, H, W).to(images.device)
    covered = m.flatten(1).mean(1)
    if bool((covered == 0).any()):
        i = int((covered == 0).nonzero()[0])
        raise ValueError(f"mask of image {i} is empty: there is nothing to edit (the result would be the "
                         "tokenizer's reconstruction of the image)")
    if bool((covered == 1).any()):
        i = int((covered == 1).nonzero()[0])
        raise ValueError(f"mask of image {i} covers the whole image: nothing of the image would be kept, so this "
                         "is plain generation (use sampling.generate_var), not editing")
    return m


def token_masks(mask: torch.Tensor, patch_nums, threshold: float = 0.5) -> list[torch.Tensor]:
    """Pixel mask (B, 1, S, S) -> per scale (B, pn, pn) bool: regenerate the tokens whose cell
    lies more than `threshold` inside the edit region (area-resized mask > threshold);
    threshold=0 regenerates every token the mask touches."""
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold={threshold}: expected a fraction of a token's cell in [0, 1)")
    return [F.interpolate(mask, size=(pn, pn), mode="area")[:, 0] > threshold + 1e-6 for pn in patch_nums]


def _labels(model, labels, B: int, device) -> torch.Tensor:
    """labels: None (no class: the null class), an int for all images, or (B,) classes."""
    n = model.cfg.num_classes
    if labels is None:
        return torch.full((B,), n, dtype=torch.long, device=device)
    labels = torch.as_tensor(labels, device=device).long()
    if labels.dim() == 0:
        labels = labels.expand(B)
    if labels.shape != (B,):
        raise ValueError(f"labels has shape {tuple(labels.shape)}: expected one target class per image, ({B},)")
    if int(labels.min()) < 0 or int(labels.max()) >= n:
        raise ValueError(f"labels hold values in [{int(labels.min())}, {int(labels.max())}]: expected target "
                         f"classes in [0, {n - 1}], or labels=None for no class")
    return labels


def _prepare(tokenizer, images, mask):
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images is a {type(images).__name__}: expected a (B, 3, S, S) tensor")
    device = next(tokenizer.parameters()).device
    x = to_float(images) if images.dtype == torch.uint8 else images
    check_images(x, tokenizer.cfg)
    x = x.to(device)
    return x, check_mask(mask, x)


# -- editing ----------------------------------------------------------------------------------
@torch.no_grad()
def edit_var(model: VAR, tokenizer, images: torch.Tensor, mask, labels=None, cfg: float = 4.0, top_k: int = 0,
             top_p: float = 1.0, temperature: float = 1.0, generator: torch.Generator | None = None,
             threshold: float = 0.5, blend: str = "none", return_steps: bool = False):
    """Regenerate the masked part of each image with VAR, keeping the rest (zero-shot).

    images: (B, 3, S, S) uint8 or in [-1, 1]; mask: True = regenerate (see the module's doc);
    labels: None (no class: the model makes the new part fit what it sees), an int or (B,)
    target classes (class-conditional editing); cfg, top_k, top_p, temperature, generator
    as in generate_var (cfg does nothing when labels is None); blend: "none", "latent" or
    "pixel". Returns edited images (B, 3, S, S) in [-1, 1]; with return_steps=True also
    the image after each scale [(B, 3, S, S)] * K (before any blending).
    """
    if blend not in BLENDS:
        raise ValueError(f"blend={blend!r}: expected one of {BLENDS}")
    x, m = _prepare(tokenizer, images, mask)
    own = tokenizer.img_to_tokens(x)  # the image's own r_1..r_K
    edit_k = token_masks(m, tokenizer.patch_nums, threshold)
    keep_outside = lambda k, r_k: torch.where(edit_k[k], r_k, own[k])  # noqa: E731
    labels = _labels(model, labels, len(x), x.device)
    tokens, f_hats = generate_var(model, tokenizer.quantizer, labels, cfg=cfg, top_k=top_k, top_p=top_p,
                                  temperature=temperature, generator=generator, return_steps=True,
                                  after_step=keep_outside)
    f_hat = f_hats[-1]
    if blend == "latent":
        m_lat = F.interpolate(m, size=f_hat.shape[-2:], mode="area")
        f_hat = m_lat * f_hat + (1 - m_lat) * tokenizer.quantizer.decode(own)
    out = tokenizer.fhat_to_img(f_hat)
    if blend == "pixel":
        out = m * out + (1 - m) * tokenizer.tokens_to_img(own)
    if return_steps:
        return out, [tokenizer.fhat_to_img(f) for f in f_hats]
    return out


@torch.no_grad()
def edit_raster(model: RasterTransformer, vqvae, images: torch.Tensor, mask, labels=None, cfg: float = 4.0,
                top_k: int = 0, top_p: float = 1.0, temperature: float = 1.0,
                generator: torch.Generator | None = None, threshold: float = 0.5) -> torch.Tensor:
    """The raster baseline's best effort: generate token by token in raster order, and put
    back the image's own token wherever the mask says keep. A token only sees the tokens
    before it, so what lies below or to the right of the edit region cannot shape it.
    vqvae: the single-scale tokenizer the raster model was trained on. Returns (B, 3, S, S)."""
    x, m = _prepare(vqvae, images, mask)
    own = vqvae.img_to_tokens(x)[0].flatten(1)  # (B, h*w) in raster order
    h = vqvae.patch_nums[-1]
    edit = token_masks(m, (h,), threshold)[0].flatten(1)  # (B, h*w)
    keep_outside = lambda i, t: torch.where(edit[:, i : i + 1], t, own[:, i : i + 1])  # noqa: E731
    labels = _labels(model, labels, len(x), x.device)
    tokens = generate_raster(model, labels, cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature,
                             generator=generator, after_step=keep_outside)
    return vqvae.tokens_to_img(tokens)


def psnr_outside(edited: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) per image over the pixels the mask keeps (mask 0), images in [-1, 1]."""
    keep = (1 - mask.float()).expand_as(edited)
    mse = (((edited - reference) / 2) ** 2 * keep).flatten(1).sum(1) / keep.flatten(1).sum(1).clamp_min(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


# -- the measured claims (results/editing_<dataset>.json) -------------------------------------
def editing_tasks(size: int) -> dict:
    """The evaluated tasks: name -> (mask (S, S), what the labels are)."""
    return {
        "inpaint_centre": (region_mask(size, "centre"), "none"),  # the middle quarter, no class given
        "inpaint_top_half": (region_mask(size, "top"), "none"),
        "inpaint_bottom_half": (region_mask(size, "bottom"), "none"),
        "outpaint_frame": (region_mask(size, "frame"), "none"),  # keep the centre 20x20 of 32x32
        "class_edit_centre": (centre_box(size, 0.47), "target"),  # 47% of the image, a new class
    }
