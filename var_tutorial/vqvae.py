"""The VQ-VAE: a convolutional encoder, a vector quantizer, and a decoder.

    image (B, 3, 32, 32) --encoder--> f (B, Cvae, 8, 8) --quantizer--> tokens, f_hat --decoder--> image

The encoder halves the resolution len(channel_mult) - 1 times (twice: factor 4), so
a 32 px CIFAR image becomes an 8x8 grid of Cvae-dimensional vectors, and a 64 px
Imagenette image a 16x16 grid. The quantizer replaces every vector by its nearest
codebook entry; the decoder maps the quantized grid back to pixels.

Two quantizers plug into the same encoder and decoder:
- ``VectorQuantizer`` below: one token per latent position (64 tokens for CIFAR).
  This is the classic VQ-VAE (van den Oord et al. 2017), the tokenizer of the raster
  next-token baseline.
- ``MultiScaleQuantizer`` (quantizer.py): VAR's K token maps of growing size.

Images are float tensors in [-1, 1] (data.to_float makes them from uint8).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .codebook import Codebook
from .config import TokenizerConfig
from .quantizer import MultiScaleQuantizer


def Norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(32, channels // 4), num_channels=channels, eps=1e-6)


class ResBlock(nn.Module):
    """x + conv(SiLU(norm(conv(SiLU(norm(x)))))), with a 1x1 conv on the skip if channels change."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.block = nn.Sequential(
            Norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
            Norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
        )
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        return self.skip(x) + self.block(x)


class Encoder(nn.Module):
    """(B, 3, H, W) -> (B, Cvae, H/f, W/f), f = 2^(levels-1)."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        chs = [cfg.base_channels * m for m in cfg.channel_mult]
        layers = [nn.Conv2d(3, chs[0], 3, padding=1)]
        c = chs[0]
        for level, c_out in enumerate(chs):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(c, c_out))
                c = c_out
            if level != len(chs) - 1:
                layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))  # halve H and W
        layers += [ResBlock(c, c), Norm(c), nn.SiLU(), nn.Conv2d(c, cfg.latent_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    """(B, Cvae, h, w) -> (B, 3, h*f, w*f): the encoder's mirror, one more ResBlock per level."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        chs = [cfg.base_channels * m for m in reversed(cfg.channel_mult)]
        c = chs[0]
        layers = [nn.Conv2d(cfg.latent_channels, c, 3, padding=1), ResBlock(c, c)]
        for level, c_out in enumerate(chs):
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResBlock(c, c_out))
                c = c_out
            if level != len(chs) - 1:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)]
        layers += [Norm(c), nn.SiLU(), nn.Conv2d(c, 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


class VectorQuantizer(nn.Module):
    """Single-scale VQ: every latent vector -> its nearest code. Same API as MultiScaleQuantizer.

    forward(f) -> (f_hat, [r], loss) with one token map r (B, h, w) and the VQ-VAE loss
    beta * ||sg(f_hat) - f||^2 + ||f_hat - sg(f)||^2 (commitment + codebook terms).
    """

    def __init__(self, vocab_size: int, dim: int, size: int, beta: float = 0.25):
        super().__init__()
        self.patch_nums, self.K = (size,), 1
        self.dim, self.vocab_size, self.beta = dim, vocab_size, beta
        self.codebook = Codebook(vocab_size, dim)

    def forward(self, f):
        with torch.autocast(device_type=f.device.type, enabled=False):
            f = f.float()
            r = self.codebook.lookup(f.detach().permute(0, 2, 3, 1))  # (B, h, w)
            f_hat = self.codebook(r).permute(0, 3, 1, 2)  # (B, C, h, w)
            loss = self.beta * F.mse_loss(f_hat.detach(), f) + F.mse_loss(f_hat, f.detach())
            f_hat_st = f + (f_hat - f).detach()  # straight-through estimator
        return f_hat_st, [r], loss

    @torch.no_grad()
    def encode(self, f):
        return self.forward(f)[1]

    @torch.no_grad()
    def residuals(self, f):
        return f.float().permute(0, 2, 3, 1).reshape(-1, self.dim)

    def decode(self, tokens):
        if not isinstance(tokens, (list, tuple)) or len(tokens) != 1:
            raise ValueError(f"tokens has {len(tokens)} token maps: expected 1 for the single-scale VQ-VAE")
        size = self.patch_nums[0]
        if tokens[0].dim() != 3 or tokens[0].shape[-2:] != (size, size):
            raise ValueError(f"tokens[0] has shape {tuple(tokens[0].shape)}: expected (B, {size}, {size})")
        self.codebook.check_indices(tokens[0], "tokens[0]")
        return self.codebook(tokens[0].long()).permute(0, 3, 1, 2)


class VQVAE(nn.Module):
    """Encoder + quantizer + decoder; ``VQVAE(cfg)`` builds either tokenizer from its config."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        C = cfg.latent_channels
        self.quant_conv = nn.Conv2d(C, C, 3, padding=1)
        self.post_quant_conv = nn.Conv2d(C, C, 3, padding=1)
        if cfg.quantizer == "multiscale":
            self.quantizer = MultiScaleQuantizer(cfg.vocab_size, C, cfg.patch_nums, cfg.beta, cfg.phi_ratio, cfg.phi_shared)
        else:
            self.quantizer = VectorQuantizer(cfg.vocab_size, C, cfg.latent_size, cfg.beta)

    @property
    def patch_nums(self) -> tuple[int, ...]:
        return self.quantizer.patch_nums

    def forward(self, img):
        """img (B, 3, H, W) in [-1, 1] -> reconstruction (B, 3, H, W), token maps, VQ loss."""
        f = self.encode_latent(img)
        f_hat, tokens, vq_loss = self.quantizer(f)
        return self.fhat_to_img(f_hat, clamp=False), tokens, vq_loss

    def encode_latent(self, img):
        """img (B, 3, H, W) -> f (B, Cvae, h, w), before quantization."""
        check_images(img, self.cfg)
        return self.quant_conv(self.encoder(img))

    def fhat_to_img(self, f_hat, clamp: bool = True):
        """Quantized latent (B, Cvae, h, w) -> image (B, 3, H, W)."""
        img = self.decoder(self.post_quant_conv(f_hat))
        return img.clamp(-1, 1) if clamp else img

    @torch.no_grad()
    def img_to_tokens(self, img) -> list[torch.Tensor]:
        """img (B, 3, H, W) -> [r_1 (B, pn_1, pn_1), ..., r_K (B, pn_K, pn_K)]."""
        return self.quantizer.encode(self.encode_latent(img))

    @torch.no_grad()
    def tokens_to_img(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """Token maps of the first k scales (k = K gives the full reconstruction) -> image in [-1, 1]."""
        return self.fhat_to_img(self.quantizer.decode(tokens))

    @torch.no_grad()
    def reconstruct_per_scale(self, img) -> list[torch.Tensor]:
        """[decode(r_1), decode(r_1, r_2), ..., decode(r_1..r_K)]: the coarse-to-fine picture."""
        tokens = self.img_to_tokens(img)
        return [self.tokens_to_img(tokens[: k + 1]) for k in range(len(tokens))]


def check_images(img, cfg: TokenizerConfig, argument: str = "images") -> None:
    """A batch the tokenizer can take: float (B, 3, S, S) in [-1, 1], S = cfg.image_size."""
    S = cfg.image_size
    if not torch.is_tensor(img):
        raise TypeError(f"{argument} is a {type(img).__name__}: expected a torch.Tensor of shape (B, 3, {S}, {S})")
    if img.dim() != 4 or img.shape[1] != 3 or img.shape[-2:] != (S, S):
        hint = " (add a batch dimension with img[None])" if img.dim() == 3 else ""
        raise ValueError(f"{argument} has shape {tuple(img.shape)}: expected (B, 3, {S}, {S}){hint}")
    if not img.is_floating_point():
        raise ValueError(
            f"{argument} has dtype {img.dtype}: expected floats in [-1, 1] (convert uint8 images with data.to_float)"
        )
    if img.numel() and not torch.compiler.is_compiling():
        lo, hi = float(img.min()), float(img.max())
        if lo < -1.01 or hi > 1.01:
            raise ValueError(
                f"{argument} has values in [{lo:.3g}, {hi:.3g}]: expected values in [-1, 1] "
                "(convert uint8 images with data.to_float)"
            )
