"""The codebook: V learnable vectors of dimension C, and the nearest-code lookup.

Both tokenizers use it: the single-scale VQ-VAE (vqvae.py) and VAR's multi-scale
residual quantizer (quantizer.py), which shares ONE codebook across all scales.

Codebook collapse, and the remedy used here
-------------------------------------------
A code that is never the nearest one receives no gradient and stays dead forever;
with V = 4096 codes, a plain VQ-VAE often ends up using a few hundred. We use
*dead-code restart* (Dhariwal et al. 2020, Jukebox; also Zeghidour et al. 2021,
SoundStream): the forward pass counts how often each code is picked, and every few
hundred steps the training loop moves each code that was not picked once in that
window onto a random encoder residual from the current batch, where it is useful
straight away. We chose it over cosine (l2-normalised) lookup because it keeps the
paper's plain Euclidean lookup, so the mechanics a student reads in the paper are
exactly the ones in this file.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class Codebook(nn.Module):
    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.vocab_size, self.dim = vocab_size, dim
        self.embedding = nn.Embedding(vocab_size, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / vocab_size, 1.0 / vocab_size)
        # hits per code since the last restart (a buffer: it is saved with the model)
        self.register_buffer("hits", torch.zeros(vocab_size), persistent=False)

    @torch.no_grad()
    def lookup(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for every vector. z: (..., C) -> idx: (...) int64.

        ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2; the ||z||^2 term is the same for every
        code, so argmin over (||e||^2 - 2 z.e) suffices. Always computed in float32.
        """
        z_NC = z.reshape(-1, self.dim).float()
        e_VC = self.embedding.weight.float()
        d_NV = (e_VC.square().sum(1)[None, :]).addmm(z_NC, e_VC.t(), alpha=-2.0)  # (N, V)
        idx_N = d_NV.argmin(dim=1)
        if self.training:
            self.hits.index_add_(0, idx_N, torch.ones_like(idx_N, dtype=self.hits.dtype))
        return idx_N.view(z.shape[:-1])

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token indices (...) -> code vectors (..., C)."""
        return self.embedding(idx)

    def check_indices(self, idx: torch.Tensor, argument: str = "tokens") -> None:
        if idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"{argument} has dtype {idx.dtype}: expected integer token indices")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.vocab_size):
            raise ValueError(
                f"{argument} holds indices in [{int(idx.min())}, {int(idx.max())}]: "
                f"expected indices in [0, {self.vocab_size - 1}] (vocab_size={self.vocab_size})"
            )

    @torch.no_grad()
    def restart_dead_codes(self, candidates: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Move every code with zero hits since the last call onto a random candidate vector.

        candidates: (N, C) encoder residuals from a recent batch. Returns how many codes
        were restarted, and resets the hit counts for the next window.
        """
        dead = (self.hits == 0).nonzero().flatten()
        n_dead = dead.numel()
        if n_dead and candidates.shape[0]:
            pick = torch.randint(candidates.shape[0], (n_dead,), generator=generator, device="cpu")
            self.embedding.weight.data[dead] = candidates[pick.to(candidates.device)].to(self.embedding.weight.dtype)
        self.hits.zero_()
        return n_dead

    @torch.no_grad()
    def usage(self, idx: torch.Tensor) -> float:
        """Fraction of the V codes that appear at least once in idx."""
        return torch.bincount(idx.flatten(), minlength=self.vocab_size).gt(0).float().mean().item()
