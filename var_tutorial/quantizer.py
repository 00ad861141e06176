"""VAR's multi-scale residual quantizer (Algorithms 1 and 2 of the paper).

An encoder feature map f (B, C, h, w) becomes K token maps r_1..r_K of growing side
pn_1 < pn_2 < ... < pn_K = h, all drawn from ONE shared codebook:

    Algorithm 1 (encode)                      Algorithm 2 (decode)
    residual <- f ; f_hat <- 0                f_hat <- 0
    for k = 1..K:                             for k = 1..K:
        r_k  = lookup(area_down(residual, pn_k))  h = phi_k(bicubic_up(embed(r_k), h x w))
        h    = phi_k(bicubic_up(embed(r_k), h x w))  f_hat += h
        f_hat    += h                         return f_hat
        residual -= h
    return r_1..r_K

Scale 1 captures the global gist of the image in one token; every later scale only
has to explain what the earlier ones left over (the *residual*), so the sum f_hat
gets closer to f with every scale. The last scale is already h x w and skips the
resampling.

Bicubic upsampling is ``nn.Upsample(mode="bicubic")``, i.e. F.interpolate. (On a GPU,
fast.py swaps in the same function as two small matrix products, A z A^T.)

phi_k(h) = (1 - 0.5) * h + 0.5 * conv3x3(h) repairs the blur of the bicubic
upsampling. As in the reference implementation, n = 4 convs are shared by the K scales:
scale k uses the conv whose "tick" is nearest to k / (K - 1). (phi_shared = n picks n;
0 gives every scale its own conv, as the reference's 0 does.)

The transformer is trained with *teacher forcing*: its input for scale k+1 is the
cumulative f_hat after scale k, area-downsampled to pn_{k+1} (teacher_forcing_input).
At inference the same quantity is built one scale at a time (next_input). A test
checks that the two agree.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .codebook import Codebook
from .config import _check_schedule


class Phi(nn.Conv2d):
    """phi(h) = (1 - ratio) * h + ratio * conv3x3(h): a residual refinement of h."""

    def __init__(self, channels: int, ratio: float = 0.5):
        super().__init__(channels, channels, kernel_size=3, padding=1)
        self.ratio = ratio

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (1 - self.ratio) * h + self.ratio * super().forward(h)


class SharedPhi(nn.Module):
    """n Phi convs shared by K scales: scale k uses the one whose tick is nearest k/(K-1).
    The ticks spread evenly over [0, 1], a margin from either end: 1/(3n) for n = 4 and
    1/(2n) for every other n, as the reference chooses them."""

    def __init__(self, channels: int, n: int, ratio: float):
        super().__init__()
        self.phis = nn.ModuleList([Phi(channels, ratio) for _ in range(n)])
        margin = 1 / 3 / n if n == 4 else 1 / 2 / n
        self.ticks = np.linspace(margin, 1 - margin, n)  # e.g. n=4: 0.083, 0.36, 0.64, 0.92

    def index_for(self, k: int, K: int) -> int:
        at = k / (K - 1) if K > 1 else 1.0  # position of scale k in [0, 1]
        return int(np.argmin(np.abs(self.ticks - at)))

    def forward(self, h: torch.Tensor, k: int, K: int) -> torch.Tensor:
        return self.phis[self.index_for(k, K)](h)


class MultiScaleQuantizer(nn.Module):
    """forward(f) -> (f_hat, [r_1..r_K], loss), as in lucidrains' vector-quantize API."""

    def __init__(self, vocab_size: int, dim: int, patch_nums, beta: float = 0.25,
                 phi_ratio: float = 0.5, phi_shared: int = 4):
        super().__init__()
        self.patch_nums = _check_schedule(patch_nums, int(patch_nums[-1]))
        self.K = len(self.patch_nums)
        self.dim, self.vocab_size, self.beta = dim, vocab_size, beta
        self.codebook = Codebook(vocab_size, dim)
        self.phi = SharedPhi(dim, phi_shared or self.K, phi_ratio)  # 0: one phi per scale
        H = self.patch_nums[-1]
        self.upsample = nn.Upsample(size=(H, H), mode="bicubic")  # (B, C, pn, pn) -> (B, C, H, H); no weights

    # -- the two resampling operators of the paper -------------------------------------
    def down(self, x: torch.Tensor, pn: int) -> torch.Tensor:
        """Area (average-pool) downsampling to pn x pn. x: (B, C, H, W) -> (B, C, pn, pn)."""
        return x if x.shape[-1] == pn else F.interpolate(x, size=(pn, pn), mode="area")

    def up_phi(self, z_small: torch.Tensor, k: int) -> torch.Tensor:
        """Scale k's contribution h_k = phi_k(bicubic_up(z_small)): (B, C, pn_k, pn_k) -> (B, C, H, W).
        The last scale is already H x W: no upsampling."""
        if k != self.K - 1:
            z_small = self.upsample(z_small)  # F.interpolate(z_small, size=(H, H), mode="bicubic")
        return self.phi(z_small, k, self.K)

    def embed(self, r_k: torch.Tensor) -> torch.Tensor:
        """Token map (B, pn, pn) -> code vectors as a feature map (B, C, pn, pn)."""
        return self.codebook(r_k).permute(0, 3, 1, 2)

    # -- Algorithm 1 ---------------------------------------------------------------------
    def forward(self, f: torch.Tensor):
        """Quantize f (B, C, H, W) at every scale.

        Returns f_hat (B, C, H, W) with the straight-through estimator applied (its
        gradient flows to f unchanged), the token maps [r_k (B, pn_k, pn_k)], and the
        loss averaged over scales: beta * ||sg(f_hat) - f||^2 + ||f_hat - sg(f)||^2.
        """
        self._check_latent(f)
        with torch.autocast(device_type=f.device.type, enabled=False):
            f = f.float()
            f_nograd = f.detach()
            f_hat = torch.zeros_like(f)
            tokens, loss = [], 0.0
            for rest_k, r_k, h in self._steps(f_nograd):
                f_hat = f_hat + h
                loss = loss + self.beta * F.mse_loss(f_hat.detach(), f) + F.mse_loss(f_hat, f_nograd)
                tokens.append(r_k)
            loss = loss / self.K
            f_hat_st = f + (f_hat - f).detach()  # straight-through: value of f_hat, gradient of f
        return f_hat_st, tokens, loss

    def _steps(self, f: torch.Tensor):
        """The loop of Algorithm 1. Yields, per scale k: the downsampled residual the
        lookup saw (B, C, pn, pn), the token map r_k (B, pn, pn), and h_k (B, C, H, W)."""
        residual = f.detach().clone()
        for k, pn in enumerate(self.patch_nums):
            rest_k = self.down(residual, pn)
            r_k = self.codebook.lookup(rest_k.permute(0, 2, 3, 1))  # nearest code per position
            h = self.up_phi(self.embed(r_k), k)  # differentiable in the codebook and phi
            residual = residual - h.detach()
            yield rest_k, r_k, h

    @torch.no_grad()
    def encode(self, f: torch.Tensor) -> list[torch.Tensor]:
        """Algorithm 1 without the loss: f (B, C, H, W) -> [r_1 (B, 1, 1), ..., r_K (B, H, W)]."""
        return self.forward(f)[1]

    @torch.no_grad()
    def residuals(self, f: torch.Tensor) -> torch.Tensor:
        """Every residual vector the lookup saw, all scales: (N, C). Candidates for restarts."""
        self._check_latent(f)
        steps = self._steps(f.float())
        return torch.cat([rest_k.permute(0, 2, 3, 1).reshape(-1, self.dim) for rest_k, _, _ in steps])

    # -- Algorithm 2 ---------------------------------------------------------------------
    def decode(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """Token maps of the first k <= K scales -> f_hat (B, C, H, W) = sum of phi-refined maps.

        Passing fewer than K maps gives the coarse-to-fine reconstructions of the notebooks.
        """
        self.check_tokens(tokens, allow_prefix=True)
        f_hat = 0.0
        for k, r_k in enumerate(tokens):
            f_hat = f_hat + self.up_phi(self.embed(r_k.long()), k)
        return f_hat

    # -- what the transformer sees --------------------------------------------------------
    def teacher_forcing_input(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """Inputs of scales 2..K for teacher forcing: (B, L - 1, C), L = sum pn^2.

        For every k < K: the cumulative f_hat after scales 1..k, area-downsampled to
        pn_{k+1} and flattened in raster order. (Scale 1's input is the class token,
        which the transformer supplies itself.)
        """
        self.check_tokens(tokens)
        f_hat, inputs = None, []
        for k in range(self.K - 1):
            f_hat, nxt = self.next_input(k, f_hat, self.embed(tokens[k].long()))  # nxt: (B, C, pn_{k+1}, pn_{k+1})
            inputs.append(nxt.flatten(2).transpose(1, 2))  # (B, pn_{k+1}^2, C)
        return torch.cat(inputs, dim=1)

    def next_input(self, k: int, f_hat: torch.Tensor | None, z_k: torch.Tensor):
        """One inference step: add scale k's codes z_k (B, C, pn_k, pn_k) to f_hat.

        Returns (f_hat, next): next is f_hat area-downsampled to pn_{k+1}, the input of
        the next scale, or f_hat itself after the last scale.
        """
        h = self.up_phi(z_k, k)
        f_hat = h if f_hat is None else f_hat + h
        if k == self.K - 1:
            return f_hat, f_hat
        return f_hat, self.down(f_hat, self.patch_nums[k + 1])

    # -- checks that speak to a student --------------------------------------------------
    def _check_latent(self, f: torch.Tensor) -> None:
        H = self.patch_nums[-1]
        if f.dim() != 4 or f.shape[1] != self.dim or f.shape[-2:] != (H, H):
            raise ValueError(
                f"latent f has shape {tuple(f.shape)}: expected (B, {self.dim}, {H}, {H}) "
                f"(the schedule {self.patch_nums} ends at {H}x{H})"
            )

    def check_tokens(self, tokens, allow_prefix: bool = False) -> None:
        if not isinstance(tokens, (list, tuple)) or len(tokens) == 0:
            raise ValueError(f"tokens={type(tokens).__name__}: expected a non-empty list of token maps r_1..r_K")
        n = len(tokens)
        if n > self.K or (n < self.K and not allow_prefix):
            want = f"1..{self.K}" if allow_prefix else f"{self.K}"
            raise ValueError(f"tokens has {n} token maps: expected {want} (one per scale of {self.patch_nums})")
        for k, r_k in enumerate(tokens):
            pn = self.patch_nums[k]
            if not torch.is_tensor(r_k) or r_k.dim() != 3 or r_k.shape[-2:] != (pn, pn):
                shape = tuple(r_k.shape) if torch.is_tensor(r_k) else type(r_k).__name__
                raise ValueError(f"tokens[{k}] has shape {shape}: expected (B, {pn}, {pn}) for scale {k + 1}")
            self.codebook.check_indices(r_k, f"tokens[{k}]")
