"""The speed layer: the same functions as the teaching core, rewritten for a GPU.

The core (transformer.py, quantizer.py, sampling.py) is written to be read: SDPA with the dense
bool mask, a KV cache that grows by torch.cat, F.interpolate, torch.multinomial. Each piece here
computes the same function faster, and is applied to a model, a quantizer or a sampler from
outside, so the core never branches on it:

    piece                              replaces                           applied by
    FastSelfAttention: static cache    the torch.cat cache                use_static_kv_cache(model)
    FastSelfAttention: FlexAttention   SDPA with the dense mask           use_flex_attention(model)
    BicubicMatrices: A @ z @ A.T       F.interpolate(mode="bicubic")      use_bicubic_matrices(quantizer)
    sample_tokens_fast                 sample_tokens (torch.multinomial)  generate_var(..., draw=sample_tokens_fast)
    GraphedSampler                     the Python loop, kernel by kernel  GraphedSampler(model, quantizer, batch)
    compiled_blocks                    eager blocks                       compiled_blocks(model)

    speed_up(model, vqvae.quantizer)   # the first and third rows, in place; the weights stay the same
    tokens = generate_var(model, vqvae.quantizer, labels, draw=sample_tokens_fast)

The swaps share the weights of what they replace (nothing is copied or initialised, so the
weights files and the random numbers of a seed do not change). tests/test_fast.py checks every
row but the CUDA graph against the core, on the CPU; bench.py times them all and records, on the
GPU, each one's difference from the plain path.
"""
from __future__ import annotations

from copy import deepcopy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from .sampling import (
    check_quantizer,
    check_sampling_args,
    check_top_k_top_p,
    raster_loop,
    sampling_mode,
    top_k_top_p_filter,
    var_loop,
)
from .transformer import VAR, ConditionalTransformer, RasterTransformer, SelfAttention


# -- attention: a static KV cache, and FlexAttention for teacher forcing ----------------------
class FastSelfAttention(SelfAttention):
    """SelfAttention around the same weights, with a static KV cache and, if given a block mask,
    FlexAttention for the teacher-forcing pass.

    The static cache: the first step allocates room for the whole sequence (max_len positions)
    and every step writes its keys and values into it in place, so a step copies only its own
    keys and values, and every step's tensors stay at the same addresses (what a CUDA graph
    needs); the core's cache makes a longer copy (torch.cat) at every step.
    FlexAttention (block_mask): create_block_mask evaluates the dense mask in tiles of 128 x 128
    and keeps a list of the tiles that are not all False; flex_attention computes only those.
    It has no attention dropout.
    """

    def __init__(self, attn: SelfAttention, max_len: int):
        nn.Module.__init__(self)  # not SelfAttention.__init__: no new weights, attn's own are used
        self.heads, self.dropout, self.qk_norm, self.max_len = attn.heads, attn.dropout, attn.qk_norm, max_len
        self.key_bias = attn.key_bias
        self.qkv, self.proj = attn.qkv, attn.proj  # the same modules, so the same parameters
        if attn.qk_norm:
            self.log_scale = attn.log_scale
        self.block_mask: BlockMask | None = None
        self.train(attn.training)
        self.enable_kv_cache(False)

    def enable_kv_cache(self, on: bool) -> None:
        super().enable_kv_cache(on)
        self.cached = 0  # how many of the max_len rows of the cache are filled

    def remember(self, k: torch.Tensor, v: torch.Tensor):
        B, H, l, D = k.shape
        if self.cache_k is None:  # the first step: room for the whole sequence
            self.cache_k, self.cache_v = k.new_empty(B, H, self.max_len, D), v.new_empty(B, H, self.max_len, D)
        n = self.cached
        self.cache_k[:, :, n : n + l], self.cache_v[:, :, n : n + l] = k, v  # this step's keys and values
        self.cached = n + l
        return self.cache_k[:, :, : n + l], self.cache_v[:, :, : n + l]  # (B, H, L_cached, C/H)

    def attend(self, q, k, v, attn_mask: torch.Tensor | None, scale: float | None) -> torch.Tensor:
        if self.block_mask is None or attn_mask is None or q.shape[2] != self.max_len:
            return super().attend(q, k, v, attn_mask, scale)  # SDPA: sampling steps, or no block mask
        # FlexAttention, on the whole sequence. One dtype (q, k may be float32 after the norm),
        # contiguous (compiled on the CPU, torch 2.14 misreads the permuted views)
        q, k, v = (t.to(v.dtype).contiguous() for t in (q, k, v))
        return flex_attention(q, k, v, block_mask=self.block_mask, scale=scale)  # (B, H, L, C/H)


def use_static_kv_cache(model: ConditionalTransformer) -> ConditionalTransformer:
    """Give every block a FastSelfAttention around its own weights (in place; returns the model).
    The logits do not change; a model that has them already is left as it is."""
    for block in model.blocks:
        if not isinstance(block.attn, FastSelfAttention):
            block.attn = FastSelfAttention(block.attn, model.cfg.num_tokens)
    return model


def use_flex_attention(model: ConditionalTransformer, on: bool = True) -> ConditionalTransformer:
    """Teacher forcing through FlexAttention instead of SDPA with the dense bool mask (on=False:
    back to SDPA). In place, with the static cache (use_static_kv_cache); returns the model.
    Call it after moving the model to its device (the block mask is made there)."""
    if on and model.cfg.dropout > 0:
        raise ValueError(f"dropout={model.cfg.dropout}: FlexAttention has no attention dropout; use dropout=0")
    use_static_kv_cache(model)
    block_mask = None
    if on:
        mask, L = model.attn_mask, model.cfg.num_tokens
        block_mask = create_block_mask(lambda b, h, q_idx, kv_idx: mask[q_idx, kv_idx], B=None, H=None,
                                       Q_LEN=L, KV_LEN=L, device=mask.device)
    for block in model.blocks:
        block.attn.block_mask = block_mask  # one block mask, shared by every block
    return model


# -- bicubic upsampling as two small matrix products ----------------------------------------
def bicubic_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """1-D bicubic upsampling from n_in to n_out points as an (n_out, n_in) matrix A, so that
    F.interpolate(z, size=(n_out, n_out), mode="bicubic") == A @ z @ A.T (up to rounding).

    Bicubic upsampling is linear and separable, so a map z (pn x pn) becomes A z A^T. Column p
    of A is what F.interpolate makes of the p-th unit vector (a 1-pixel-wide image, whose width
    bicubic leaves as it is): PyTorch's own kernel, border handling included.
    """
    unit = torch.eye(n_in, dtype=torch.float64).view(n_in, 1, n_in, 1)  # n_in images of n_in x 1 pixels
    return F.interpolate(unit, size=(n_out, 1), mode="bicubic")[:, 0, :, 0].T.float()


class BicubicMatrices(nn.Module):
    """The quantizer's upsampling, nn.Upsample(size=(H, H), mode="bicubic"), as A @ z @ A.T.

    Two small matrix products instead of PyTorch's CUDA bicubic kernel, which gives each output
    pixel one thread that loops over every image and channel (with only 8 x 8 outputs, most of
    the GPU waits). Computed in z's own dtype, even under autocast, as F.interpolate would.
    """

    def __init__(self, patch_nums):
        super().__init__()
        H = patch_nums[-1]
        for pn in patch_nums[:-1]:  # not saved with the weights: made from the schedule
            self.register_buffer(f"from_{pn}", bicubic_matrix(pn, H), persistent=False)  # (H, pn)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        A = getattr(self, f"from_{z.shape[-1]}").to(z.dtype)  # (H, pn)
        with torch.autocast(z.device.type, enabled=False):
            return A @ z @ A.T  # (H, pn) @ (B, C, pn, pn) @ (pn, H) -> (B, C, H, H)


def use_bicubic_matrices(quantizer):
    """The multi-scale quantizer's upsampling as BicubicMatrices (in place; returns the quantizer)."""
    if not isinstance(getattr(quantizer, "upsample", None), nn.Module):
        raise ValueError(f"quantizer is a {type(quantizer).__name__}: expected a MultiScaleQuantizer "
                         "(vqvae.quantizer of the multi-scale tokenizer)")
    if not isinstance(quantizer.upsample, BicubicMatrices):
        device = quantizer.codebook.embedding.weight.device
        quantizer.upsample = BicubicMatrices(quantizer.patch_nums).to(device)
    return quantizer


def speed_up(model: ConditionalTransformer | None = None, quantizer=None):
    """use_static_kv_cache(model) and use_bicubic_matrices(quantizer), for whichever is given.
    Returns (model, quantizer). What the fast paths of bench.py sample with."""
    if model is not None:
        use_static_kv_cache(model)
    if quantizer is not None:
        use_bicubic_matrices(quantizer)
    return model, quantizer


# -- the fast draw: the same distribution from the top-k candidates -------------------------
def top_candidates(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0, temperature: float = 1.0):
    """The speed path's form of top_k_top_p_filter: the candidates only, most likely first.

    One partial sort (topk) puts the top_k tokens first; the nucleus is then a prefix of
    that list: a token stays while the mass of the more likely ones is below top_p.
    logits (..., V) -> probs (..., k), zero outside the nucleus (not renormalised: the
    draw does not need it), and their token ids order (..., k). k = top_k, or V if 0.
    """
    check_top_k_top_p(top_k, top_p)
    V = logits.shape[-1]
    scaled = logits.float() if temperature == 1.0 else logits.float() / temperature  # 1: no pass over the logits
    top, order = scaled.topk(top_k if 0 < top_k < V else V, dim=-1)
    probs = top.softmax(dim=-1)
    if top_p < 1.0:
        mass_above = probs.cumsum(dim=-1) - probs  # the mass of the more likely tokens
        probs = probs.masked_fill(mass_above >= top_p, 0.0)  # the first token always stays (mass_above = 0)
    return probs, order


def sample_tokens_fast(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0, temperature: float = 1.0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """sample_tokens from the same distribution, with less work: the draw is made among the
    top_k candidates only (900 of 4096 at the paper's setting), with no sort of the whole
    vocabulary and no scatter back to it. The same tokens keep the same probabilities (up
    to the rounding of a cumulative sum taken in the other order), but the random draws
    differ: a seed gives other samples than sample_tokens. logits (B, l, V) -> (B, l).

    The draw is an exponential race: give candidate i the waiting time E_i / p_i with
    E_i ~ Exp(1); the first to arrive, argmax p_i / E_i, is candidate i with probability
    p_i / sum p (the minimum of independent exponential times with rates p_i), the same
    draw as torch.multinomial. It is element-wise work, an argmax and a gather: nothing
    waits for the GPU, so it can be recorded in a CUDA graph (torch.multinomial could not
    be, before late 2024: pytorch/pytorch#134442).
    """
    B, l, V = logits.shape
    probs, order = top_candidates(logits.view(B * l, V), top_k, top_p, temperature)  # (B*l, k) each
    wait = torch.empty_like(probs).exponential_(generator=generator)  # E_i ~ Exp(1)
    wait.clamp_(min=torch.finfo(wait.dtype).tiny)  # E_i = 0 would make 0 / 0 for a token outside the nucleus
    rank = (probs / wait).argmax(dim=-1, keepdim=True)  # (B*l, 1): the first to arrive
    return order.gather(-1, rank).view(B, l)


def sampled_probs(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0, temperature: float = 1.0,
                  fast: bool = False) -> torch.Tensor:
    """The distribution that sample_tokens (fast=False) or sample_tokens_fast (fast=True)
    draws from, in vocabulary order: (..., V) -> (..., V). For checking that they agree."""
    if not fast:
        return top_k_top_p_filter(logits.float() / temperature, top_k, top_p).softmax(dim=-1)
    probs, order = top_candidates(logits, top_k, top_p, temperature)
    return torch.zeros_like(logits, dtype=torch.float).scatter_(-1, order, probs / probs.sum(dim=-1, keepdim=True))


# -- the whole loop as one CUDA graph -----------------------------------------------------
class GraphedSampler:
    """generate_var or generate_raster with the fast draw, recorded once as a CUDA graph and
    replayed: one launch for the whole loop instead of thousands of small ones.

    Sampling a small model is limited by the CPU, not the GPU: Python and PyTorch need a few
    microseconds to launch each of the ~30 kernels of a block, at every step, and the GPU
    finishes most of them sooner. A CUDA graph records the kernels of one run (their
    arguments, their memory) and replays them all from the GPU. It needs a run whose
    kernels are the same every time: fixed shapes (the static KV cache, one batch size),
    nothing that waits for the GPU (the exponential race of sample_tokens_fast), and the
    device's default random generator (seed it with torch.manual_seed). From the same seed
    it draws the tokens that generate_*(..., draw=sample_tokens_fast) draws after speed_up.

        run = GraphedSampler(model, quantizer, batch=64, cfg=1.5, top_k=900, top_p=0.96)
        tokens = run(labels)  # labels (64,), on the model's device

    quantizer: VAR's quantizer, or None for the raster baseline; both are sped up in place
    (speed_up). autocast: the dtype of the matrix multiplications (bf16, as the other samplers
    run on a GPU), or None for the weights' own. compile=True records a copy of the model whose
    blocks are compiled (compiled_blocks): fewer, fused kernels per step. Holds the GPU memory
    of one run (and of the copy) for as long as it lives.
    """

    def __init__(self, model, quantizer, batch: int, cfg: float = 1.5, top_k: int = 0, top_p: float = 1.0,
                 temperature: float = 1.0, autocast: torch.dtype | None = torch.bfloat16, compile: bool = False,
                 warmup: int = 2):
        device = model.pos_1LC.device
        if device.type != "cuda":
            raise ValueError(f"the model is on {device}: CUDA graphs need a CUDA GPU (use generate_var / "
                             "generate_raster with draw=fast.sample_tokens_fast elsewhere)")
        if not isinstance(model, (VAR, RasterTransformer)):
            raise ValueError(f"model is a {type(model).__name__}: expected a VAR or a RasterTransformer")
        if isinstance(model, VAR):
            check_quantizer(model, quantizer)
            use_bicubic_matrices(quantizer)
        model = compiled_blocks(model) if compile else use_static_kv_cache(model)
        if isinstance(model, VAR):
            loop = lambda labels: var_loop(model, quantizer, labels, cfg, top_k, top_p, temperature, None,
                                           draw=sample_tokens_fast)
        else:
            loop = lambda labels: raster_loop(model, labels, cfg, top_k, top_p, temperature, None,
                                              draw=sample_tokens_fast)
        self.model, self.batch = model, batch
        self.labels = check_sampling_args(model, torch.zeros(batch, dtype=torch.long), cfg, top_k, top_p,
                                          temperature, None)

        def once():  # autocast's cache of cast weights would outlive the recording: off, as graphs need
            with torch.no_grad(), sampling_mode(model), torch.autocast(
                    "cuda", dtype=autocast or torch.float32, enabled=autocast is not None, cache_enabled=False):
                return loop(self.labels)

        side = torch.cuda.Stream(device)  # warm-up (cuBLAS, kernels' first calls) off the capturing stream
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                once()
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = once()  # the token maps of every replay land here

    def __call__(self, labels) -> list[torch.Tensor]:
        labels = check_sampling_args(self.model, labels, 0.0, 0, 1.0, 1.0, None)
        if labels.shape != self.labels.shape:
            raise ValueError(f"labels has shape {tuple(labels.shape)}: this graph was recorded for batch "
                             f"{self.batch}, so expected ({self.batch},)")
        self.labels.copy_(labels)
        self.graph.replay()
        return [r.clone() for r in self.out]  # the next replay overwrites self.out


def compiled_blocks(model, backend: str = "inductor"):
    """A copy of the model for sampling, with the static KV cache, its blocks compiled by
    torch.compile: inductor fuses a block's element-wise work (norms, AdaLN's scales, shifts and
    gates, GELU, the residual adds) into a few kernels. The blocks share one compiled graph per
    step shape (a scale of VAR, its KV cache filled so far), so a schedule of K scales compiles
    K times; the first generation is slow, the next ones fast. The model itself is left as it was."""
    copy = use_static_kv_cache(deepcopy(model).eval())
    steps = len(model.cfg.patch_nums) if isinstance(model, VAR) else model.cfg.num_tokens
    # one graph per step shape: raise dynamo's limit on recompilations of a function (8 by default)
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, steps + 4)
    for block in copy.blocks:
        block.compile(backend=backend, dynamic=False)
    return copy
