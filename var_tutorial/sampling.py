"""Generation for both models: KV cache, classifier-free guidance, top-k / top-p.

VAR needs one forward pass per *scale* (6 for CIFAR's schedule, 10 for the paper's),
the raster baseline one per *token* (64 for an 8x8 map). Both loops look alike:

    x = start token (the class embedding)
    for every step (a scale, or a token):
        logits = model.forward_step(cond, x, start)     # the KV cache remembers the past
        logits = (1 + t) * logits_cond - t * logits_uncond   # CFG, t ramps up 0 -> cfg
        tokens = draw(top_k_top_p_filter(logits / temperature))   # sample_tokens: torch.multinomial
        x = the next step's input, built from the tokens

Classifier-free guidance (Ho & Salimans 2022) runs the batch twice in one forward pass:
the first half with the wanted labels, the second with the null class. VAR ramps the
guidance strength linearly from 0 at the first scale to ``cfg`` at the last (the
reference code's ``t = cfg * si / (K - 1)``): the first scales fix the global layout and
need diversity, the last ones fix the details, where guidance helps.

The draw is an argument, ``draw=sample_tokens`` (torch.multinomial on the filtered
softmax); fast.py offers a faster draw from the same distribution, and records the whole
loop as one CUDA graph (bench.py measures both).

Every random draw goes through ``generator``, so the same seed gives the same images.
A label equal to ``num_classes`` asks for no class at all (the null class the model met
in training through class dropout): both halves of the CFG batch are then the same, so
guidance has no effect on those images.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .transformer import VAR, RasterTransformer


# -- the pieces ---------------------------------------------------------------------------
def cfg_ramp(cfg: float, step: int, num_steps: int) -> float:
    """Guidance strength at step `step` of `num_steps`: linear from 0 to cfg."""
    return cfg * step / (num_steps - 1) if num_steps > 1 else cfg


def cfg_logits(cond: torch.Tensor, uncond: torch.Tensor, t: float) -> torch.Tensor:
    """Classifier-free guidance: (1 + t) * cond - t * uncond (t = 0 gives the conditional logits)."""
    return (1 + t) * cond - t * uncond


def top_k_top_p_filter(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set to -inf every logit outside the top_k largest and outside the nucleus.

    top_k = 0 keeps all; otherwise exactly top_k logits per row stay finite, even when
    several tie with the k-th largest: torch.topk picks which of them stay. (The reference
    keeps every tie, so a few more tokens at the k-th's probability; we keep a fixed count,
    which fast.py's draw from the top_k candidates shares.)
    top_p = 1 keeps all (the reference writes 0 for off); otherwise the smallest set of most
    likely tokens whose probability mass reaches top_p stays (Holtzman et al. 2020).
    logits: (..., V) -> (..., V), a new tensor.
    """
    check_top_k_top_p(top_k, top_p)
    if top_k > 0 and top_k < logits.shape[-1]:
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, logits.topk(top_k, dim=-1).indices, True)
        logits = logits.masked_fill(~keep, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=False)  # least likely first
        mass_below = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # mass of this token and all less likely ones
        drop_sorted = mass_below <= 1 - top_p  # the least likely tokens, as long as they weigh <= 1 - top_p
        drop_sorted[..., -1] = False  # always keep the most likely token
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_tokens(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per position: logits (B, l, V) -> indices (B, l)."""
    B, l, V = logits.shape
    probs = top_k_top_p_filter(logits.float() / temperature, top_k, top_p).softmax(dim=-1)
    return torch.multinomial(probs.view(B * l, V), num_samples=1, generator=generator).view(B, l)


# -- next-scale generation --------------------------------------------------------------
Draw = Callable[..., torch.Tensor]  # draw(logits (B, l, V), top_k, top_p, temperature, generator) -> tokens (B, l)


@torch.no_grad()
def generate_var(model: VAR, quantizer, labels, cfg: float = 1.5, top_k: int = 0, top_p: float = 1.0,
                 temperature: float = 1.0, generator: torch.Generator | None = None, return_steps: bool = False,
                 after_step: Callable[[int, torch.Tensor], torch.Tensor] | None = None, draw: Draw = sample_tokens):
    """Sample token maps r_1..r_K for the given class labels, one forward pass per scale.

    quantizer: the multi-scale quantizer the model was trained on (``vqvae.quantizer``).
    Returns [r_1 (B, 1, 1), ..., r_K (B, h, w)], ready for ``vqvae.tokens_to_img``; with
    return_steps=True also the cumulative f_hat after each scale [(B, Cv, h, w)], for the
    coarse-to-fine picture (``vqvae.fhat_to_img``). after_step(k, r_k) -> r_k, if given,
    may change each scale's tokens before they are used (editing.py puts back the
    ground-truth tokens outside the edit mask). draw: how tokens are drawn from the logits.
    """
    if not isinstance(model, VAR):
        raise ValueError(f"model is a {type(model).__name__}: generate_var needs a VAR model (use generate_raster)")
    check_quantizer(model, quantizer)
    labels = check_sampling_args(model, labels, cfg, top_k, top_p, temperature, generator)
    with sampling_mode(model):
        return var_loop(model, quantizer, labels, cfg, top_k, top_p, temperature, generator, return_steps,
                        after_step, draw)


def var_loop(model, quantizer, labels, cfg, top_k, top_p, temperature, generator, return_steps=False,
             after_step=None, draw: Draw = sample_tokens):
    """generate_var's loop, on checked arguments and a model in sampling_mode."""
    B, patch_nums, K = labels.shape[0], model.cfg.patch_nums, len(model.cfg.patch_nums)
    null = torch.full_like(labels, model.cfg.num_classes)
    tokens, f_hats, f_hat = [], [], None
    cond_BD = model.condition(torch.cat([labels, null]), check=False)  # (2B, C): conditional half, then unconditional
    x = model.start_token(cond_BD)  # (2B, 1, C)
    start = 0
    for k, pn in enumerate(patch_nums):
        logits = model.forward_step(cond_BD, x, start)  # (2B, pn*pn, V)
        logits = cfg_logits(logits[:B], logits[B:], cfg_ramp(cfg, k, K))  # (B, pn*pn, V)
        r_k = draw(logits, top_k, top_p, temperature, generator).view(B, pn, pn)
        if after_step is not None:
            r_k = after_step(k, r_k)
        tokens.append(r_k)
        if k == K - 1 and not return_steps:
            break  # the tokens are all drawn; the last f_hat is only for the coarse-to-fine picture
        f_hat, nxt = quantizer.next_input(k, f_hat, quantizer.embed(r_k))  # nxt: (B, Cv, pn_{k+1}, pn_{k+1})
        f_hats.append(f_hat)
        start += pn * pn
        if k < K - 1:
            x = model.embed(nxt.flatten(2).transpose(1, 2)).repeat(2, 1, 1)  # (2B, pn_{k+1}^2, C)
    return (tokens, f_hats) if return_steps else tokens


# -- next-token generation (the baseline) -----------------------------------------------
@torch.no_grad()
def generate_raster(model: RasterTransformer, labels, cfg: float = 1.5, top_k: int = 0, top_p: float = 1.0,
                    temperature: float = 1.0, generator: torch.Generator | None = None,
                    after_step: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
                    draw: Draw = sample_tokens) -> list[torch.Tensor]:
    """Sample one h x w token map in raster order, one forward pass per token.

    Returns [r (B, h, w)], ready for the single-scale ``vqvae.tokens_to_img``.
    after_step(i, token_B1) -> token_B1, if given, may change token i before it is used.
    draw: how tokens are drawn from the logits, as in generate_var.
    """
    if not isinstance(model, RasterTransformer):
        raise ValueError(f"model is a {type(model).__name__}: generate_raster needs a RasterTransformer (use generate_var)")
    labels = check_sampling_args(model, labels, cfg, top_k, top_p, temperature, generator)
    with sampling_mode(model):
        return raster_loop(model, labels, cfg, top_k, top_p, temperature, generator, after_step, draw)


def raster_loop(model, labels, cfg, top_k, top_p, temperature, generator, after_step=None,
                draw: Draw = sample_tokens):
    """generate_raster's loop, on checked arguments and a model in sampling_mode."""
    B, L = labels.shape[0], model.cfg.num_tokens
    null = torch.full_like(labels, model.cfg.num_classes)
    idx = []
    cond_BD = model.condition(torch.cat([labels, null]), check=False)  # (2B, C)
    x = model.start_token(cond_BD)  # (2B, 1, C)
    for i in range(L):
        logits = model.forward_step(cond_BD, x, start=i)  # (2B, 1, V)
        logits = cfg_logits(logits[:B], logits[B:], cfg_ramp(cfg, i, L))  # (B, 1, V)
        token = draw(logits, top_k, top_p, temperature, generator)  # (B, 1)
        if after_step is not None:
            token = after_step(i, token)
        idx.append(token)
        x = model.embed(token).repeat(2, 1, 1)  # (2B, 1, C)
    h = model.cfg.patch_nums[-1]
    return [torch.cat(idx, dim=1).view(B, h, h)]


class sampling_mode:
    """Inside: eval mode (no dropout, no class dropout) and an empty KV cache. Outside: as before.
    (A model already in eval mode is left alone: eval() visits every submodule, at every call.)"""

    def __init__(self, model):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        if self.was_training:
            self.model.eval()
        self.model.enable_kv_cache(True)

    def __exit__(self, *exc):
        self.model.enable_kv_cache(False)
        if self.was_training:
            self.model.train()


# -- checks that speak to a student -------------------------------------------------------
def check_top_k_top_p(top_k, top_p) -> None:
    if not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k={top_k!r}: expected an integer >= 0 (0 keeps every token)")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p={top_p!r}: expected a probability in (0, 1] (1 keeps every token)")


def check_sampling_args(model, labels, cfg, top_k, top_p, temperature, generator) -> torch.Tensor:
    """Validate the common arguments; return labels as a (B,) int64 tensor on the model's device."""
    device = model.pos_1LC.device
    labels = torch.as_tensor(labels, device=device)
    if labels.numel() == 0:
        raise ValueError("labels is empty: expected at least one class label (the batch size is len(labels))")
    if labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"labels has shape {tuple(labels.shape)} and dtype {labels.dtype}: expected (B,) integer class labels")
    n = model.cfg.num_classes
    lo, hi = torch.stack(torch.aminmax(labels)).tolist()  # one wait for the GPU
    if lo < 0 or hi > n:
        raise ValueError(f"labels hold values in [{lo}, {hi}]: expected classes in [0, {n - 1}] "
                         f"(num_classes={n}), or {n} for no class")
    if not 0 <= cfg < math.inf:  # written so that NaN fails too: every comparison with NaN is False
        raise ValueError(f"cfg={cfg}: expected a guidance strength >= 0 (0 turns guidance off)")
    check_top_k_top_p(top_k, top_p)
    if not 0 < temperature < math.inf:
        raise ValueError(f"temperature={temperature}: expected a number > 0 (1 samples the model's distribution)")
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device}, the model on {device}: "
            f"make it with torch.Generator(device={str(device)!r}).manual_seed(seed)"
        )
    return labels.long()


def check_quantizer(model: VAR, quantizer) -> None:
    if not hasattr(quantizer, "next_input"):
        hint = " (pass vqvae.quantizer, not the VQVAE)" if hasattr(quantizer, "quantizer") else ""
        raise ValueError(f"quantizer is a {type(quantizer).__name__}: expected a MultiScaleQuantizer{hint}")
    c = model.cfg
    got = (tuple(quantizer.patch_nums), quantizer.dim, quantizer.vocab_size)
    if got != (c.patch_nums, c.latent_channels, c.vocab_size):
        raise ValueError(
            f"quantizer has patch_nums={got[0]}, dim={got[1]}, vocab_size={got[2]}: expected the model's "
            f"patch_nums={c.patch_nums}, latent_channels={c.latent_channels}, vocab_size={c.vocab_size}"
        )
