"""The transformers: VAR's next-scale model and the raster next-token baseline.

Both models are the same class-conditional GPT-2-like stack of AdaLN blocks; they
differ in only three places, each a few lines at the bottom of this file:

                    VAR (next-scale)                       RasterTransformer (next-token)
    sequence        r_1..r_K flattened: L = sum pn^2       one h x w map in raster order: L = h*w
    inputs          word_embed(f_hat after scale k,        tok_embed(token i)
                    area-downsampled to pn_{k+1})
    positions       absolute + per-scale level embedding   absolute
    mask            block-causal (a whole scale at once)   causal (one token at a time)

The class label does two jobs: its embedding is the start token (position 0, which predicts
r_1, the 1x1 map), and it is the condition vector that every AdaLN layer turns into scales,
shifts and gates. Label ``num_classes`` is the "null" class: training replaces a label by it
with probability ``class_dropout``, so the model also learns p(x), for classifier-free guidance.

Attention is SDPA with the dense (L, L) bool mask; sampling's KV cache appends each step's
keys and values to the earlier ones (fast.py swaps in FlexAttention and a static cache for a
GPU: the same function, tested against this one).
Shapes: B batch, L tokens, C width, V vocab, Cv latent channels (Cvae), H heads.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TransformerConfig


# -- attention masks (True = may attend) ------------------------------------------------
def scale_index(patch_nums) -> torch.Tensor:
    """The scale of every token: (L,) e.g. (1, 2, 3) -> [0, 1,1,1,1, 2,2,2,2,2,2,2,2,2]."""
    return torch.cat([torch.full((pn * pn,), k) for k, pn in enumerate(patch_nums)])


def block_causal_mask(patch_nums) -> torch.Tensor:
    """(L, L) bool: token i may attend to token j iff scale(j) <= scale(i)."""
    s = scale_index(patch_nums)
    return s[None, :] <= s[:, None]


def causal_mask(L: int) -> torch.Tensor:
    """(L, L) bool: token i may attend to token j iff j <= i (lower triangle)."""
    return torch.ones(L, L, dtype=torch.bool).tril()


def flatten_tokens(tokens: list[torch.Tensor]) -> torch.Tensor:
    """Token maps [(B, pn, pn)] -> one sequence (B, L), scale after scale, each in raster order."""
    return torch.cat([r_k.flatten(1) for r_k in tokens], dim=1)


def unflatten_tokens(idx_BL: torch.Tensor, patch_nums) -> list[torch.Tensor]:
    """The inverse of flatten_tokens: (B, L) -> [(B, pn, pn)]."""
    chunks = idx_BL.split([pn * pn for pn in patch_nums], dim=1)
    return [c.reshape(-1, pn, pn) for c, pn in zip(chunks, patch_nums)]


# -- the building blocks ----------------------------------------------------------------
class SelfAttention(nn.Module):
    """Multi-head self-attention with an optional KV cache: while it is on, each call's queries
    attend to the keys and values of every earlier call and to its own (``remember``).
    qk_norm is VAR's attn_l2_norm: q and k are l2-normalised, so q.k is a cosine, and
    multiplied by a learned per-head scale (init 4, at most 100) instead of 1/sqrt(C/H)."""

    def __init__(self, width: int, heads: int, qk_norm: bool, dropout: float, key_bias: bool = True):
        super().__init__()
        self.heads, self.dropout, self.qk_norm, self.key_bias = heads, dropout, qk_norm, key_bias
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        if qk_norm:
            self.log_scale = nn.Parameter(torch.full((1, heads, 1, 1), math.log(4.0)))
        self.enable_kv_cache(False)

    def enable_kv_cache(self, on: bool) -> None:
        self.caching, self.cache_k, self.cache_v = on, None, None

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        B, L, C = x.shape
        b = self.qkv.bias  # (3C,): the queries', keys', values'. key_bias=False holds the keys' at 0, as the reference
        qkv = F.linear(x, self.qkv.weight, b if self.key_bias else torch.cat([b[:C], 0 * b[C : 2 * C], b[2 * C :]]))
        q, k, v = qkv.view(B, L, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)  # each (B, H, L, C/H)
        scale = None  # SDPA's default 1/sqrt(C/H)
        if self.qk_norm:
            q = F.normalize(q, dim=-1) * self.log_scale.clamp(max=math.log(100.0)).exp()
            k, scale = F.normalize(k, dim=-1), 1.0
        if self.caching:
            k, v = self.remember(k, v)  # (B, H, L_cached, C/H): every step so far, this one included
        y = self.attend(q, k, v, attn_mask, scale)  # (B, H, L, C/H)
        return self.proj(y.transpose(1, 2).reshape(B, L, C))

    def remember(self, k: torch.Tensor, v: torch.Tensor):
        """The KV cache: this step's keys and values (B, H, l, C/H) appended to the earlier steps'."""
        if self.cache_k is not None:
            k, v = torch.cat([self.cache_k, k], dim=2), torch.cat([self.cache_v, v], dim=2)
        self.cache_k, self.cache_v = k, v
        return k, v

    def attend(self, q, k, v, attn_mask: torch.Tensor | None, scale: float | None) -> torch.Tensor:
        """softmax(q k^T * scale + mask) v; attn_mask (l, L_k) bool, True = may attend, or None: all."""
        dropout = self.dropout if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout, scale=scale)


class Block(nn.Module):
    """A pre-norm transformer block with adaptive layer norm (VAR's AdaLNSelfAttn): the condition
    predicts, for the attention and for the MLP, a scale and a shift applied after the (affine-free)
    LayerNorm and a gate gamma multiplying the branch before it is added back to x: 6 vectors."""

    def __init__(self, cfg: TransformerConfig, drop_path: float = 0.0):
        super().__init__()
        C, hidden = cfg.width, round(cfg.width * cfg.mlp_ratio)
        self.ln = nn.LayerNorm(C, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(C, cfg.heads, cfg.qk_norm, cfg.dropout, cfg.key_bias)
        self.mlp = nn.Sequential(nn.Linear(C, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, C),
                                 nn.Dropout(cfg.dropout))
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 6 * C))
        self.keep = 1 - drop_path  # stochastic depth (Huang et al. 2016): the probability that a branch runs

    def forward(self, x: torch.Tensor, cond_BD: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        B, L, C = x.shape
        gamma1, gamma2, scale1, scale2, shift1, shift2 = self.ada_lin(cond_BD).view(B, 1, 6, C).unbind(2)  # each (B, 1, C)
        if self.training and self.keep < 1:  # a gate of 0 skips its branch for that sample; the others are scaled up
            gamma1, gamma2 = (g * g.new_empty(B, 1, 1).bernoulli_(self.keep) / self.keep for g in (gamma1, gamma2))
        x = x + self.attn(self.ln(x) * (1 + scale1) + shift1, attn_mask) * gamma1
        x = x + self.mlp(self.ln(x) * (1 + scale2) + shift2) * gamma2
        return x


class AdaLNHead(nn.Module):
    """Final adaptive LayerNorm (scale and shift from the condition), then Linear -> V logits."""

    def __init__(self, width: int, vocab_size: int):
        super().__init__()
        self.ln = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.head = nn.Linear(width, vocab_size)

    def forward(self, x: torch.Tensor, cond_BD: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        scale, shift = self.ada_lin(cond_BD).view(B, 1, 2, C).unbind(2)  # each (B, 1, C)
        return self.head(self.ln(x) * (1 + scale) + shift).float()  # (B, L, V), float even under bf16


# -- what both models share -------------------------------------------------------------
class ConditionalTransformer(nn.Module):
    """Class embedding, start token, blocks, head, KV cache. Subclasses define ``embed`` (inputs
    -> (B, l, C)), ``position`` (added to tokens start..start+l-1) and the mask (``attn_mask``)."""

    def __init__(self, cfg: TransformerConfig, attn_mask: torch.Tensor):
        super().__init__()
        self.cfg, C, L = cfg, cfg.width, cfg.num_tokens
        self.class_emb = nn.Embedding(cfg.num_classes + 1, C)  # the last entry is the null class
        self.pos_start = nn.Parameter(torch.empty(1, 1, C))  # added to the start token only
        self.pos_1LC = nn.Parameter(torch.empty(1, L, C))  # absolute position of every token
        self.blocks = nn.ModuleList([Block(cfg, cfg.drop_path * i / max(cfg.depth - 1, 1)) for i in range(cfg.depth)])
        self.head = AdaLNHead(C, cfg.vocab_size)
        self.register_buffer("attn_mask", attn_mask, persistent=False)  # (L, L) bool
        self.enable_kv_cache(False)

    def init_weights(self, std: float = 0.02) -> None:
        """VAR's initialisation: near-identity blocks and a near-zero head, so that the
        logits start almost uniform (loss ~ ln V) and the residual stream is not blown up."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        for p in (self.pos_start, self.pos_1LC):
            nn.init.trunc_normal_(p, std=std)
        self.head.head.weight.data.mul_(0.02)  # logits ~ 0 at init
        self.head.ada_lin[-1].weight.data.mul_(0.5)
        C = self.cfg.width
        for block in self.blocks:
            block.attn.proj.weight.data.div_(math.sqrt(2 * self.cfg.depth))  # GPT-2's residual scaling
            block.mlp[2].weight.data.div_(math.sqrt(2 * self.cfg.depth))
            block.ada_lin[-1].weight.data[: 2 * C].mul_(1e-5)  # gamma1, gamma2 ~ 0: blocks start as identity
            block.ada_lin[-1].weight.data[2 * C :].mul_(0.5)  # scales and shifts

    def condition(self, label_B: torch.Tensor, check: bool = True) -> torch.Tensor:
        """Labels (B,) -> condition vectors (B, C); in training, drop labels to the null class.
        check=False skips the range check, which waits for the GPU: the samplers checked their
        labels already (and a CUDA graph, fast.GraphedSampler, may not wait)."""
        n = self.cfg.num_classes
        if label_B.dim() != 1 or label_B.is_floating_point():
            raise ValueError(f"labels have shape {tuple(label_B.shape)} and dtype {label_B.dtype}: expected (B,) integers")
        if check and label_B.numel() and not torch.compiler.is_compiling():
            lo, hi = torch.stack(torch.aminmax(label_B)).tolist()  # one wait for the GPU, not two
            if lo < 0 or hi > n:
                raise ValueError(f"labels hold values in [{lo}, {hi}]: expected classes in [0, {n - 1}] "
                                 f"(or {n}, the null class)")
        if self.training and self.cfg.class_dropout > 0:
            drop = torch.rand(label_B.shape, device=label_B.device) < self.cfg.class_dropout
            label_B = torch.where(drop, torch.full_like(label_B, n), label_B)
        return self.class_emb(label_B)

    def start_token(self, cond_BD: torch.Tensor) -> torch.Tensor:
        """The input at position 0: class embedding + start position. (B, C) -> (B, 1, C)."""
        return cond_BD[:, None, :] + self.pos_start

    # -- one step, with or without the KV cache ------------------------------------------
    def enable_kv_cache(self, on: bool) -> None:
        """Turn every block's KV cache on (empty) or off (and free it). While it is on, the weights do
        not change: the positions of the whole sequence are made once (the reference's lvl_pos)."""
        for block in self.blocks:
            block.attn.enable_kv_cache(on)
        self.cache_len = 0  # how many tokens the caches hold
        with torch.no_grad():
            self.positions = self.position(0, self.cfg.num_tokens) if on else None  # (1, L, C)

    def forward_step(self, cond_BD: torch.Tensor, x_BlC: torch.Tensor, start: int) -> torch.Tensor:
        """Logits (B, l, V) for the tokens start..start+l-1, given their embedded inputs x_BlC.
        Without the cache (teacher forcing: start=0, l=L) the mask keeps every token from seeing
        the future. With the cache, call it with one whole step at a time (a scale for VAR, a
        token for raster): its queries may see every cached token and each other: no mask."""
        l = x_BlC.shape[1]
        if start + l > self.cfg.num_tokens:
            raise ValueError(f"start={start}, {l} tokens: the sequence has only {self.cfg.num_tokens} positions")
        caching = self.blocks[0].attn.caching
        if caching and start != self.cache_len:
            raise ValueError(f"start={start}: the KV cache holds {self.cache_len} tokens, so the next step starts there")
        if caching:
            self.cache_len = start + l  # after this step, the caches hold these tokens too
        pos = self.position(start, l) if self.positions is None else self.positions[:, start : start + l]
        x = x_BlC + pos  # (B, l, C)
        mask = None if caching else self.attn_mask[start : start + l, start : start + l]
        for block in self.blocks:
            x = block(x, cond_BD, mask)
        return self.head(x, cond_BD)  # (B, l, V)


# -- the next-scale model ---------------------------------------------------------------
class VAR(ConditionalTransformer):
    """forward(label_B, x_BLCv) -> logits (B, L, V) for every token of r_1..r_K at once.
    x_BLCv is ``quantizer.teacher_forcing_input(tokens)``: (B, L - 1, Cv), the inputs of
    scales 2..K (scale 1's input is the start token)."""

    def __init__(self, cfg: TransformerConfig):
        if cfg.kind != "var":
            raise ValueError(f"cfg.kind={cfg.kind!r}: VAR needs kind='var' (use RasterTransformer for 'raster')")
        super().__init__(cfg, block_causal_mask(cfg.patch_nums))
        self.word_embed = nn.Linear(cfg.latent_channels, cfg.width)
        self.lvl_embed = nn.Embedding(len(cfg.patch_nums), cfg.width)  # one vector per scale
        self.register_buffer("lvl_L", scale_index(cfg.patch_nums), persistent=False)  # (L,)
        self.init_weights()

    def embed(self, x_BlCv: torch.Tensor) -> torch.Tensor:
        return self.word_embed(x_BlCv)  # (B, l, Cv) -> (B, l, C)

    def position(self, start: int, l: int) -> torch.Tensor:
        return self.pos_1LC[:, start : start + l] + self.lvl_embed(self.lvl_L[start : start + l])  # (1, l, C)

    def forward(self, label_B: torch.Tensor, x_BLCv: torch.Tensor) -> torch.Tensor:
        cond_BD = self.condition(label_B)  # (B, C)
        want = (label_B.shape[0], self.cfg.num_tokens - 1, self.cfg.latent_channels)
        if tuple(x_BLCv.shape) != want:
            raise ValueError(f"x_BLCv has shape {tuple(x_BLCv.shape)}: expected {want}, "
                             "the output of quantizer.teacher_forcing_input(tokens)")
        x_BLC = torch.cat([self.start_token(cond_BD), self.embed(x_BLCv)], dim=1)  # (B, L, C)
        return self.forward_step(cond_BD, x_BLC, start=0)


# -- the raster next-token baseline -----------------------------------------------------
class RasterTransformer(ConditionalTransformer):
    """forward(label_B, idx_BL) -> logits (B, L, V); position i predicts token i from tokens < i.
    idx_BL is the single-scale token map flattened in raster order: ``tokens[0].flatten(1)``."""

    def __init__(self, cfg: TransformerConfig):
        if cfg.kind != "raster":
            raise ValueError(f"cfg.kind={cfg.kind!r}: RasterTransformer needs kind='raster' (use VAR for 'var')")
        super().__init__(cfg, causal_mask(cfg.num_tokens))
        self.tok_embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.init_weights()

    def embed(self, idx_Bl: torch.Tensor) -> torch.Tensor:
        return self.tok_embed(idx_Bl)  # (B, l) -> (B, l, C)

    def position(self, start: int, l: int) -> torch.Tensor:
        return self.pos_1LC[:, start : start + l]  # (1, l, C)

    def forward(self, label_B: torch.Tensor, idx_BL: torch.Tensor) -> torch.Tensor:
        cond_BD = self.condition(label_B)  # (B, C)
        want = (label_B.shape[0], self.cfg.num_tokens)
        if tuple(idx_BL.shape) != want or idx_BL.is_floating_point():
            raise ValueError(f"idx_BL has shape {tuple(idx_BL.shape)} and dtype {idx_BL.dtype}: expected integer "
                             f"tokens of shape {want}, the token map flattened in raster order (tokens[0].flatten(1))")
        x_BLC = torch.cat([self.start_token(cond_BD), self.embed(idx_BL[:, :-1])], dim=1)  # shift right by one
        return self.forward_step(cond_BD, x_BLC, start=0)


def build_transformer(cfg: TransformerConfig) -> ConditionalTransformer:
    """VAR or RasterTransformer, as cfg.kind says."""
    return VAR(cfg) if cfg.kind == "var" else RasterTransformer(cfg)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
