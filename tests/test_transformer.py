"""Tests for var_tutorial.transformer: masks against their definition, the KV cache against
the uncached forward, causality, the loss at initialisation, configs and their errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from var_tutorial.config import TRANSFORMER_PRESETS, TransformerConfig, tokenizer_preset, transformer_preset
from var_tutorial.transformer import (
    VAR,
    RasterTransformer,
    block_causal_mask,
    build_transformer,
    causal_mask,
    count_params,
    flatten_tokens,
    scale_index,
    unflatten_tokens,
)
from var_tutorial.vqvae import VQVAE


@pytest.fixture(scope="module")
def quantizer():
    torch.manual_seed(0)
    return VQVAE(tokenizer_preset("tiny")).eval().quantizer


def randomize(model, std=0.2, seed=0):
    """Random weights everywhere: at VAR's init the blocks are near-identity (gates ~ 0), which
    would make the cache and causality tests too easy to pass."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model.eval()


def random_tokens(patch_nums, V, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(V, (B, pn, pn), generator=g) for pn in patch_nums]


# -- masks ----------------------------------------------------------------------------------
def test_block_causal_mask_matches_definition():
    patch_nums = (1, 2, 3, 4)
    scale = [k for k, pn in enumerate(patch_nums) for _ in range(pn * pn)]
    mask = block_causal_mask(patch_nums)
    L = len(scale)
    assert mask.shape == (L, L) and mask.dtype == torch.bool
    for i in range(L):
        for j in range(L):
            assert bool(mask[i, j]) == (scale[j] <= scale[i]), (i, j)
    assert scale_index(patch_nums).tolist() == scale


def test_causal_mask_is_lower_triangular():
    mask = causal_mask(5)
    for i in range(5):
        for j in range(5):
            assert bool(mask[i, j]) == (j <= i)


def test_flatten_unflatten_round_trip():
    tokens = random_tokens((1, 2, 4), 64)
    idx = flatten_tokens(tokens)
    assert idx.shape == (2, 21)
    assert all(torch.equal(a, b) for a, b in zip(unflatten_tokens(idx, (1, 2, 4)), tokens))


# -- the KV cache gives the same logits as teacher forcing ----------------------------------
def test_var_kv_cache_matches_teacher_forcing(quantizer):
    model = randomize(VAR(transformer_preset("tiny")))
    tokens = random_tokens(model.cfg.patch_nums, model.cfg.vocab_size)
    labels = torch.tensor([3, 7])
    x_BLCv = quantizer.teacher_forcing_input(tokens)  # (B, L-1, Cv)
    with torch.no_grad():
        full = model(labels, x_BLCv)  # (B, L, V)
        model.enable_kv_cache(True)
        cond = model.condition(labels)
        steps, start = [model.forward_step(cond, model.start_token(cond), 0)], 1
        for pn in model.cfg.patch_nums[1:]:
            x = model.embed(x_BLCv[:, start - 1 : start - 1 + pn * pn])  # row start-1 of x_BLCv is token `start`
            steps.append(model.forward_step(cond, x, start))
            start += pn * pn
        model.enable_kv_cache(False)
    assert full.shape == (2, model.cfg.num_tokens, model.cfg.vocab_size)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-4, rtol=1e-4)


def test_raster_kv_cache_matches_full_forward():
    model = randomize(RasterTransformer(transformer_preset("tiny", kind="raster")))
    idx = flatten_tokens(random_tokens(model.cfg.patch_nums, model.cfg.vocab_size))  # (B, 16)
    labels = torch.tensor([0, 9])
    with torch.no_grad():
        full = model(labels, idx)
        model.enable_kv_cache(True)
        cond = model.condition(labels)
        x, steps = model.start_token(cond), []
        for i in range(model.cfg.num_tokens):
            steps.append(model.forward_step(cond, x, i))
            x = model.embed(idx[:, i : i + 1])
        model.enable_kv_cache(False)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-4, rtol=1e-4)


def test_the_kv_cache_grows_by_concatenation():
    """Each step appends its keys and values to the earlier ones (torch.cat); the earlier stay as they were."""
    model = VAR(transformer_preset("tiny")).eval()
    attn = model.blocks[0].attn
    with torch.no_grad():
        model.enable_kv_cache(True)
        cond = model.condition(torch.tensor([0, 1]))
        model.forward_step(cond, model.start_token(cond), 0)
        first = attn.cache_k
        assert first.shape == (2, model.cfg.heads, 1, model.cfg.width // model.cfg.heads) and model.cache_len == 1
        model.forward_step(cond, model.embed(torch.zeros(2, 4, model.cfg.latent_channels)), 1)
        assert attn.cache_k.shape[2] == 5 and model.cache_len == 5 and attn.cache_k[:, :, :1].equal(first)
        model.enable_kv_cache(False)
    assert attn.cache_k is None and model.cache_len == 0


def test_kv_cache_checks_the_start_position():
    model = VAR(transformer_preset("tiny")).eval()
    cond = model.condition(torch.tensor([0]))
    model.enable_kv_cache(True)
    model.forward_step(cond, model.start_token(cond), 0)
    with pytest.raises(ValueError, match="KV cache holds 1 tokens"):
        model.forward_step(cond, model.start_token(cond), 0)


# -- causality: a scale never sees later scales ----------------------------------------------
def test_var_scale_k_does_not_see_later_scales(quantizer):
    model = randomize(VAR(transformer_preset("tiny")))
    labels = torch.tensor([1, 2])
    a = random_tokens(model.cfg.patch_nums, 64, seed=1)
    b = [a[0], a[1], random_tokens(model.cfg.patch_nums, 64, seed=2)[2]]  # differ at the last scale only
    with torch.no_grad():
        la = model(labels, quantizer.teacher_forcing_input(a))
        lb = model(labels, quantizer.teacher_forcing_input(b))
    # r_K is never an input (scale K's inputs are built from r_1..r_{K-1}): same logits
    assert torch.allclose(la, lb)
    c = [a[0], random_tokens(model.cfg.patch_nums, 64, seed=3)[1], a[2]]  # differ at scale 2
    with torch.no_grad():
        lc = model(labels, quantizer.teacher_forcing_input(c))
    first = 1 + 4  # r_2 changes scale 3's inputs; scales 1 and 2 (5 tokens) must not notice
    assert torch.allclose(la[:, :first], lc[:, :first])
    assert not torch.allclose(la[:, first:], lc[:, first:])


def test_raster_token_does_not_see_later_tokens():
    model = randomize(RasterTransformer(transformer_preset("tiny", kind="raster")))
    labels = torch.tensor([4])
    idx = torch.randint(64, (1, 16), generator=torch.Generator().manual_seed(0))
    idx2 = idx.clone()
    idx2[0, 10] = (idx[0, 10] + 1) % 64
    with torch.no_grad():
        la, lb = model(labels, idx), model(labels, idx2)
    assert torch.allclose(la[:, :11], lb[:, :11])  # position i sees tokens < i
    assert not torch.allclose(la[:, 11:], lb[:, 11:])


# -- initialisation ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["var", "raster"])
def test_loss_at_init_is_ln_V(kind):
    torch.manual_seed(0)
    cfg = transformer_preset("tiny", kind=kind, vocab_size=4096)
    model = build_transformer(cfg).eval()
    B, L, V = 8, cfg.num_tokens, cfg.vocab_size
    target = torch.randint(V, (B, L))
    x = torch.randn(B, L - 1, cfg.latent_channels) if kind == "var" else target
    logits = model(torch.randint(cfg.num_classes, (B,)), x)
    loss = F.cross_entropy(logits.reshape(-1, V), target.reshape(-1))
    assert abs(loss.item() - math.log(V)) < 0.05


def test_class_dropout_uses_the_null_class():
    model = VAR(transformer_preset("tiny", class_dropout=0.5)).train()
    labels = torch.zeros(2000, dtype=torch.long)
    torch.manual_seed(0)
    cond = model.condition(labels)
    is_null = torch.isclose(cond, model.class_emb.weight[-1]).all(dim=1)
    assert 0.4 < is_null.float().mean().item() < 0.6
    assert torch.equal(model.eval().condition(labels), model.class_emb(labels))  # no dropout in eval


# -- configs -------------------------------------------------------------------------------
def test_presets_and_config_round_trip():
    for name in TRANSFORMER_PRESETS:
        tok = tokenizer_preset(name)
        for kind in ("var", "raster"):
            cfg = transformer_preset(name, kind=kind)
            assert TransformerConfig.from_dict(cfg.to_dict()) == cfg
            assert cfg.vocab_size == tok.vocab_size and cfg.latent_channels == tok.latent_channels
            assert cfg.patch_nums == (tok.patch_nums if kind == "var" else (tok.latent_size,))
    assert 6e6 < count_params(VAR(transformer_preset("cifar10"))) < 9e6


def test_raster_config_keeps_the_last_scale_only():
    assert TransformerConfig(kind="raster", patch_nums=(1, 2, 4)).patch_nums == (4,)
    assert TransformerConfig(kind="raster", patch_nums=(2, 4)).patch_nums == (4,)  # no first scale to start


@pytest.mark.parametrize("overrides, match", [
    (dict(kind="gpt"), "kind='gpt'"),
    (dict(width=65, heads=2), "multiple of heads"),
    (dict(patch_nums=(1, 3, 2)), "increase strictly"),
    (dict(class_dropout=1.0), "class_dropout=1.0"),
    (dict(vocab_size=1), "vocab_size=1"),
    (dict(depth=0), "depth=0"),
    (dict(patch_nums=(2, 4)), r"patch_nums=\(2, 4\): VAR's first scale must be 1 .* got 2x2"),
    (dict(drop_path=1.0), "drop_path=1.0"),
    (dict(key_bias="off"), "key_bias='off'"),
])
def test_config_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        transformer_preset("tiny", **overrides)


def test_unknown_preset_and_keys():
    with pytest.raises(ValueError, match="preset='huge'"):
        transformer_preset("huge")
    with pytest.raises(ValueError, match="does not know"):
        TransformerConfig.from_dict({"depth": 2, "n_layer": 2})


def test_forward_errors(quantizer):
    model = VAR(transformer_preset("tiny"))
    x = quantizer.teacher_forcing_input(random_tokens(model.cfg.patch_nums, 64))
    with pytest.raises(ValueError, match=r"x_BLCv has shape \(2, 19, 8\)"):
        model(torch.tensor([0, 1]), x[:, 1:])
    with pytest.raises(ValueError, match=r"labels hold values in \[0, 11\]"):
        model(torch.tensor([0, 11]), x)
    raster = RasterTransformer(transformer_preset("tiny", kind="raster"))
    with pytest.raises(ValueError, match=r"idx_BL has shape \(2, 4, 4\)"):
        raster(torch.tensor([0, 1]), torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="needs kind='var'"):
        VAR(transformer_preset("tiny", kind="raster"))


# -- the reference's choices, as options ----------------------------------------------------
def test_without_key_bias_the_keys_bias_is_held_at_zero(quantizer):
    x = quantizer.teacher_forcing_input(random_tokens((1, 2, 4), 64))
    labels = torch.tensor([0, 1])
    model = randomize(VAR(transformer_preset("tiny", key_bias=False)))
    C = model.cfg.width
    out = model(labels, x)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.bias[C : 2 * C] += 1.0  # the keys' third: no effect
    torch.testing.assert_close(model(labels, x), out)
    model(labels, x).sum().backward()
    assert all(block.attn.qkv.bias.grad[C : 2 * C].eq(0).all() for block in model.blocks)
    assert not model.blocks[0].attn.qkv.bias.grad[:C].eq(0).all()  # the queries' and values' still learn
    with_bias = VAR(transformer_preset("tiny"))
    with_bias.load_state_dict(model.state_dict())  # the same weights file
    assert not torch.allclose(with_bias.eval()(labels, x), out)  # with qk_norm, a key bias moves the cosines


def test_drop_path_is_stochastic_depth_growing_with_depth(quantizer):
    from torchvision.ops import stochastic_depth

    cfg = transformer_preset("tiny", depth=3, drop_path=0.3)
    model = randomize(VAR(cfg))
    assert [round(1 - b.keep, 6) for b in model.blocks] == [0.0, 0.15, 0.3]  # linspace(0, drop_path, depth)
    x = quantizer.teacher_forcing_input(random_tokens((1, 2, 4), 64, B=8))
    plain = randomize(VAR(transformer_preset("tiny", depth=3)))
    torch.testing.assert_close(model.eval()(torch.arange(8), x), plain(torch.arange(8), x))  # eval: no drop path
    block, h = model.blocks[2].train(), torch.randn(8, 21, cfg.width)
    cond = torch.randn(8, cfg.width)
    torch.manual_seed(0)
    got = block(h, cond, None)
    torch.manual_seed(0)  # the same block, by hand, with torchvision's stochastic depth (dropout is 0)
    g1, g2, s1, s2, b1, b2 = block.ada_lin(cond).view(8, 1, 6, -1).unbind(2)
    want = h + stochastic_depth(block.attn(block.ln(h) * (1 + s1) + b1, None) * g1, 0.3, "row", True)
    want = want + stochastic_depth(block.mlp(block.ln(want) * (1 + s2) + b2) * g2, 0.3, "row", True)
    torch.testing.assert_close(got, want)


def test_a_config_without_the_new_fields_loads_with_todays_behaviour():
    d = transformer_preset("tiny").to_dict()
    del d["key_bias"], d["drop_path"]
    cfg = TransformerConfig.from_dict(d)
    assert (cfg.key_bias, cfg.drop_path) == (True, 0.0)
