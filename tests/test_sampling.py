"""Tests for var_tutorial.sampling: CFG and its ramp, top-k / top-p on hand examples, seeded
generation for both models, the cached sampler against the uncached forward, bad inputs.
(The speed layer's draw, graphs and compiled blocks: tests/test_fast.py.)"""

import pytest
import torch

from var_tutorial.config import tokenizer_preset, transformer_preset
from var_tutorial.sampling import (
    cfg_logits,
    cfg_ramp,
    generate_raster,
    generate_var,
    sample_tokens,
    top_k_top_p_filter,
)
from var_tutorial.transformer import VAR, RasterTransformer, flatten_tokens
from var_tutorial.vqvae import VQVAE


@pytest.fixture(scope="module")
def vqvae():
    torch.manual_seed(0)
    return VQVAE(tokenizer_preset("tiny")).eval()


@pytest.fixture(scope="module")
def var_model():
    torch.manual_seed(0)
    return VAR(transformer_preset("tiny")).eval()


@pytest.fixture(scope="module")
def raster_model():
    torch.manual_seed(0)
    return RasterTransformer(transformer_preset("tiny", kind="raster")).eval()


def seeded(seed):
    return torch.Generator().manual_seed(seed)


# -- classifier-free guidance ----------------------------------------------------------------
def test_cfg_with_t_zero_is_the_conditional_logits():
    cond, uncond = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    assert torch.equal(cfg_logits(cond, uncond, 0.0), cond)
    assert torch.allclose(cfg_logits(cond, uncond, 2.0), 3 * cond - 2 * uncond)


def test_cfg_ramp_goes_from_zero_to_cfg():
    K = 6
    ramp = [cfg_ramp(4.0, k, K) for k in range(K)]
    assert ramp[0] == 0.0 and ramp[-1] == 4.0
    assert all(b > a for a, b in zip(ramp, ramp[1:]))
    assert cfg_ramp(4.0, 0, 1) == 4.0  # a single step gets the full guidance


# -- filtering -----------------------------------------------------------------------------
def test_top_k_keeps_exactly_k():
    logits = torch.randn(4, 7, 100, generator=seeded(0))
    logits[0, 0, :10] = 1.0  # ties must not let more than k through
    kept = top_k_top_p_filter(logits, top_k=5).isfinite()
    assert (kept.sum(-1) == 5).all()
    # the kept ones are the 5 largest
    assert torch.equal(torch.where(kept, logits, -torch.inf).topk(5).values, logits.topk(5).values)
    assert top_k_top_p_filter(logits, top_k=0).isfinite().all()


def test_top_k_on_ties_keeps_k_where_the_reference_keeps_every_tie():
    logits = torch.tensor([3.0, 2.0, 1.0, 1.0, 1.0, 1.0, 0.0])  # the 3rd largest, 1.0, is there four times
    kept = top_k_top_p_filter(logits, top_k=3).isfinite()
    assert kept.sum() == 3 and kept[:2].all() and not kept[6]  # 3, 2 and one of the 1s (torch.topk's choice)
    reference = logits >= logits.topk(3).values[-1]  # the reference's rule: every logit >= the k-th stays
    assert reference.tolist() == [True, True, True, True, True, True, False]  # 6 tokens, not 3


def test_top_p_keeps_the_smallest_set_with_enough_mass():
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])  # sorted: 0.5, 0.3, 0.15, 0.05
    logits = probs.log()
    kept = lambda p: top_k_top_p_filter(logits, top_p=p).isfinite().tolist()
    assert kept(0.4) == [False, True, False, False]  # 0.5 >= 0.4
    assert kept(0.75) == [False, True, False, True]  # 0.5 + 0.3 >= 0.75
    assert kept(0.9) == [False, True, True, True]  # 0.5 + 0.3 + 0.15 >= 0.9
    assert kept(0.99) == [True, True, True, True]
    assert kept(1.0) == [True, True, True, True]


def test_top_k_then_top_p_and_temperature():
    logits = torch.tensor([[[4.0, 3.0, 2.0, 1.0, 0.0]]])
    out = top_k_top_p_filter(logits, top_k=3, top_p=0.5)  # top-3 then the nucleus of what is left
    assert out.isfinite().tolist() == [[[True, False, False, False, False]]]
    # a tiny temperature makes sampling greedy
    assert sample_tokens(torch.randn(3, 4, 10, generator=seeded(1)), temperature=1e-4, generator=seeded(0)).equal(
        torch.randn(3, 4, 10, generator=seeded(1)).argmax(-1))


# -- generation ----------------------------------------------------------------------------
def test_generate_var_shapes_and_decode(var_model, vqvae):
    tokens, f_hats = generate_var(var_model, vqvae.quantizer, [0, 5, 9], cfg=2.0, top_k=8, top_p=0.9,
                                  generator=seeded(0), return_steps=True)
    assert [tuple(r.shape) for r in tokens] == [(3, pn, pn) for pn in (1, 2, 4)]
    assert [tuple(f.shape) for f in f_hats] == [(3, 8, 4, 4)] * 3
    assert torch.allclose(f_hats[-1], vqvae.quantizer.decode(tokens), atol=1e-5)  # the loop rebuilt Algorithm 2
    assert vqvae.tokens_to_img(tokens).shape == (3, 3, 16, 16)
    assert not var_model.training and var_model.cache_len == 0  # state restored, cache freed


def test_sampling_leaves_the_model_as_it_found_it(var_model, vqvae):
    """A model in training mode samples in eval mode and comes back training; the tokens are the
    same whether or not the loop also returns the f_hats (it skips the last one when not)."""
    var_model.train()
    try:
        from_training = generate_var(var_model, vqvae.quantizer, [0, 1], cfg=1.5, generator=seeded(0))
        assert all(m.training for m in var_model.modules())
    finally:
        var_model.eval()
    tokens, f_hats = generate_var(var_model, vqvae.quantizer, [0, 1], cfg=1.5, generator=seeded(0), return_steps=True)
    assert len(f_hats) == len(tokens) == 3
    assert all(torch.equal(a, b) for a, b in zip(from_training, tokens))
    assert not any(m.training for m in var_model.modules())
    assert var_model.positions is None and var_model.cache_len == 0  # the sampling tables are gone


def test_generate_raster_shapes(raster_model):
    tokens = generate_raster(raster_model, [1, 2], cfg=1.0, top_k=10, generator=seeded(0))
    assert len(tokens) == 1 and tokens[0].shape == (2, 4, 4)
    vq = VQVAE(tokenizer_preset("tiny", quantizer="single")).eval()
    assert vq.tokens_to_img(tokens).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("kind", ["var", "raster"])
def test_same_seed_same_samples(kind, var_model, raster_model, vqvae):
    def sample(seed):
        if kind == "var":
            return flatten_tokens(generate_var(var_model, vqvae.quantizer, [0, 1], cfg=1.5, generator=seeded(seed)))
        return flatten_tokens(generate_raster(raster_model, [0, 1], cfg=1.5, generator=seeded(seed)))
    assert torch.equal(sample(0), sample(0))
    assert not torch.equal(sample(0), sample(1))


def test_cached_sampler_matches_the_uncached_forward(vqvae):
    """Sample with the cache (greedy, cfg=0), then teacher-force the sampled tokens through
    the ordinary forward: every scale's argmax must reproduce the sampled tokens."""
    torch.manual_seed(1)
    model = VAR(transformer_preset("tiny"))
    with torch.no_grad():
        for p in model.parameters():  # random weights so that logits are far from uniform
            p.copy_(torch.randn_like(p) * 0.2)
    model.eval()
    labels = torch.tensor([0, 4])
    tokens = generate_var(model, vqvae.quantizer, labels, cfg=0.0, top_k=1, generator=seeded(0))
    with torch.no_grad():
        logits = model(labels, vqvae.quantizer.teacher_forcing_input(tokens))
    assert torch.equal(logits.argmax(-1), flatten_tokens(tokens))


def test_after_step_can_overwrite_tokens(var_model, vqvae):
    fixed = lambda k, r_k: torch.zeros_like(r_k)
    tokens = generate_var(var_model, vqvae.quantizer, [3], generator=seeded(0), after_step=fixed)
    assert all((r == 0).all() for r in tokens)


# -- errors that speak to a student ---------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(labels=[0, 11]), r"labels hold values in \[0, 11\]: expected classes in \[0, 9\] \(num_classes=10\), or 10 for no class"),
    (dict(labels=[-1]), r"labels hold values in \[-1, -1\]"),
    (dict(labels=[]), "labels is empty"),
    (dict(labels=[[0, 1]]), r"labels has shape \(1, 2\)"),
    (dict(cfg=-0.5), "cfg=-0.5"),
    (dict(top_p=0.0), "top_p=0.0"),
    (dict(top_p=1.5), "top_p=1.5"),
    (dict(top_k=-1), "top_k=-1"),
    (dict(temperature=0.0), "temperature=0.0"),
    (dict(temperature=-1.0), "temperature=-1.0"),
])
@pytest.mark.parametrize("kind", ["var", "raster"])
def test_bad_arguments(kind, kwargs, match, var_model, raster_model, vqvae):
    args = dict(labels=[0, 1]) | kwargs
    with pytest.raises(ValueError, match=match):
        if kind == "var":
            generate_var(var_model, vqvae.quantizer, **args)
        else:
            generate_raster(raster_model, **args)


def test_wrong_model_or_quantizer(var_model, raster_model, vqvae):
    with pytest.raises(ValueError, match="generate_var needs a VAR model"):
        generate_var(raster_model, vqvae.quantizer, [0])
    with pytest.raises(ValueError, match="generate_raster needs a RasterTransformer"):
        generate_raster(var_model, [0])
    with pytest.raises(ValueError, match=r"pass vqvae.quantizer"):
        generate_var(var_model, vqvae, [0])
    other = VQVAE(tokenizer_preset("tiny", vocab_size=32)).quantizer
    with pytest.raises(ValueError, match="vocab_size=32: expected the model's"):
        generate_var(var_model, other, [0])
    with pytest.raises(ValueError, match="top_k=2.5"):
        top_k_top_p_filter(torch.zeros(3), top_k=2.5)
