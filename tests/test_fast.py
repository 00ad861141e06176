"""The speed layer (var_tutorial.fast) against the teaching core, on the CPU: each fast path
computes its plain path's function. The static KV cache gives the concatenating cache's logits,
FlexAttention SDPA's (skipped where it cannot run on this CPU), the bicubic matrices
F.interpolate's maps and the quantizer's tokens, the fast draw the plain draw's distribution,
compiled blocks the eager blocks' tokens; and the swaps share the weights they replace."""
import ast
import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_train_transformer import one_thread  # noqa: F401  (autouse: one CPU thread for tiny models)

import var_tutorial
from var_tutorial.config import tokenizer_preset, transformer_preset
from var_tutorial.fast import (
    BicubicMatrices,
    FastSelfAttention,
    GraphedSampler,
    bicubic_matrix,
    compiled_blocks,
    sample_tokens_fast,
    sampled_probs,
    speed_up,
    top_candidates,
    use_bicubic_matrices,
    use_flex_attention,
    use_static_kv_cache,
)
from var_tutorial.quantizer import MultiScaleQuantizer
from var_tutorial.sampling import generate_raster, generate_var
from var_tutorial.transformer import VAR, RasterTransformer, build_transformer, flatten_tokens
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


def tiny_model(kind: str, dropout: float = 0.0):
    """A tiny model whose weights are moved away from VAR's near-identity initialisation,
    so that attention really mixes the tokens and the logits are not all near zero."""
    torch.manual_seed(0)
    model = build_transformer(transformer_preset("tiny", kind, dropout=dropout))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def inputs(cfg, B: int = 3):
    g = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 1, cfg.num_classes])[:B]  # the last one is the null class
    if cfg.kind == "var":
        return labels, torch.randn(B, cfg.num_tokens - 1, cfg.latent_channels, generator=g)
    return labels, torch.randint(cfg.vocab_size, (B, cfg.num_tokens), generator=g)


def logits_of(model, labels, x):
    torch.manual_seed(2)  # the same class dropout in train mode
    with torch.no_grad():  # FlexAttention has no backward pass on the CPU
        return model(labels, x)


def cached_logits(model, labels, x):
    """Logits (B, L, V) step by step through the KV cache (a scale of VAR, a token of raster),
    from the teacher-forcing inputs x; and the cache length after each step."""
    cfg = model.cfg
    sizes = [pn * pn for pn in cfg.patch_nums] if cfg.kind == "var" else [1] * cfg.num_tokens
    with torch.no_grad():
        model.eval().enable_kv_cache(True)
        cond, start, steps, lengths = model.condition(labels), 0, [], []
        for i, l in enumerate(sizes):
            if i == 0:
                step_in = model.start_token(cond)
            else:  # row start - 1 of x_BLCv is the input of token start; raster: token start - 1
                step_in = model.embed(x[:, start - 1 : start - 1 + l])
            steps.append(model.forward_step(cond, step_in, start))
            start += l
            lengths.append(model.cache_len)
        model.enable_kv_cache(False)
    return torch.cat(steps, dim=1), lengths


# -- the core stands alone ----------------------------------------------------------------------
CORE = ("codebook", "quantizer", "vqvae", "transformer", "sampling", "editing")


@pytest.mark.parametrize("name", CORE)
def test_the_core_is_short_and_never_imports_the_speed_layer(name):
    source = (Path(var_tutorial.__file__).parent / f"{name}.py").read_text()
    assert len(source.splitlines()) <= 300
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import) for a in node.names}
    assert not {m for m in imported if m and m.split(".")[-1] in ("fast", "bench")}, imported
    assert "BlockMask" not in source and "flex_attention" not in source and "fast=" not in source


# -- the swaps keep the weights ---------------------------------------------------------------
def test_speed_up_shares_the_weights_and_draws_no_random_numbers(vqvae):
    model, q = tiny_model("var"), copy.deepcopy(vqvae.quantizer)
    params, keys = list(model.parameters()), model.state_dict().keys()
    q_keys = q.state_dict().keys()
    state = torch.random.get_rng_state()
    assert speed_up(model, q) == (model, q)
    assert torch.equal(torch.random.get_rng_state(), state)  # nothing initialised: a seed draws what it drew
    assert all(isinstance(b.attn, FastSelfAttention) for b in model.blocks)
    assert isinstance(q.upsample, BicubicMatrices)
    assert all(a is b for a, b in zip(model.parameters(), params)) and len(list(model.parameters())) == len(params)
    assert model.state_dict().keys() == keys and q.state_dict().keys() == q_keys  # the weights files are the same
    attn = model.blocks[0].attn
    assert speed_up(model, q) == (model, q) and model.blocks[0].attn is attn  # a second call changes nothing
    with pytest.raises(ValueError, match="expected a MultiScaleQuantizer"):
        use_bicubic_matrices(VQVAE(tokenizer_preset("tiny", quantizer="single")).quantizer)


# -- the static KV cache against the concatenating one ----------------------------------------
@pytest.mark.parametrize("kind", ["var", "raster"])
def test_static_cache_gives_the_concatenating_caches_logits(kind):
    plain = tiny_model(kind).eval()
    fast = use_static_kv_cache(copy.deepcopy(plain))
    labels, x = inputs(plain.cfg)
    want, lengths = cached_logits(plain, labels, x)
    got, fast_lengths = cached_logits(fast, labels, x)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert fast_lengths == lengths and lengths[-1] == plain.cfg.num_tokens
    torch.testing.assert_close(got, logits_of(plain, labels, x), rtol=1e-4, atol=1e-4)  # and teacher forcing's


def test_the_kv_cache_is_static_one_allocation_filled_in_place(var_model):
    var_model = use_static_kv_cache(copy.deepcopy(var_model))
    attn, L = var_model.blocks[0].attn, var_model.cfg.num_tokens
    with torch.no_grad():
        var_model.eval().enable_kv_cache(True)
        cond = var_model.condition(torch.tensor([0, 1]))
        var_model.forward_step(cond, var_model.start_token(cond), 0)
        cache, first = attn.cache_k, attn.cache_k[:, :, :1].clone()
        assert cache.shape[2] == L and var_model.cache_len == 1  # room for the whole sequence, one token in it
        var_model.forward_step(cond, var_model.embed(torch.zeros(2, 4, var_model.cfg.latent_channels)), 1)
        assert attn.cache_k is cache and var_model.cache_len == 5  # the same tensor, filled further
        assert attn.cache_k[:, :, :1].equal(first)  # the earlier keys stay where they were
        var_model.enable_kv_cache(False)
    assert attn.cache_k is None and var_model.cache_len == 0


# -- FlexAttention against SDPA with the dense mask -------------------------------------------
@pytest.mark.parametrize("kind", ["var", "raster"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_flex_attention_matches_sdpa(kind, mode):
    model = tiny_model(kind).train(mode == "train")
    labels, x = inputs(model.cfg)
    plain = logits_of(model, labels, x)
    try:
        use_flex_attention(model)
        flex = logits_of(model, labels, x)
    except (RuntimeError, NotImplementedError) as e:
        pytest.skip(f"FlexAttention does not run on this CPU build of torch {torch.__version__}: {e}")
    assert model.blocks[0].attn.block_mask is not None
    torch.testing.assert_close(flex, plain, rtol=1e-5, atol=1e-5)
    use_flex_attention(model, False)
    torch.testing.assert_close(logits_of(model, labels, x), plain, rtol=0, atol=0)


def test_flex_attention_refuses_dropout():
    model = build_transformer(transformer_preset("tiny", "var", dropout=0.1))
    with pytest.raises(ValueError, match="dropout"):
        use_flex_attention(model)


# -- the bicubic matrices against F.interpolate -----------------------------------------------
@pytest.mark.parametrize("patch_nums", [(1, 2, 3, 4, 6, 8), (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)])
def test_bicubic_as_two_matrix_products_is_f_interpolate(patch_nums):
    H, g = patch_nums[-1], torch.Generator().manual_seed(0)
    for pn in patch_nums[:-1]:
        A = bicubic_matrix(pn, H)
        assert A.shape == (H, pn) and torch.allclose(A.sum(1), torch.ones(H), atol=1e-6)  # rows sum to 1
        z = torch.randn(3, 32, pn, pn, generator=g)
        torch.testing.assert_close(A @ z @ A.T, F.interpolate(z, size=(H, H), mode="bicubic"), atol=2e-6, rtol=1e-5)
    q = MultiScaleQuantizer(64, 8, patch_nums)
    keys = q.state_dict().keys()
    use_bicubic_matrices(q)
    assert q.state_dict().keys() == keys  # the weights files do not change
    z = torch.randn(3, 8, patch_nums[1], patch_nums[1], generator=g)
    torch.testing.assert_close(q.upsample(z), F.interpolate(z, size=(H, H), mode="bicubic"), atol=2e-6, rtol=1e-5)


def test_the_quantizer_with_matrices_gives_the_same_tokens(vqvae):
    plain = copy.deepcopy(vqvae.quantizer)
    fast = use_bicubic_matrices(copy.deepcopy(plain))
    with torch.no_grad():
        for p in fast.parameters():  # codes on the scale of the features, so every scale picks different codes
            p.normal_()
        plain.load_state_dict(fast.state_dict())
    f = torch.randn(4, plain.dim, 4, 4, generator=seeded(0))
    tokens = plain.encode(f)
    assert all(torch.equal(a, b) for a, b in zip(fast.encode(f), tokens))
    torch.testing.assert_close(fast.decode(tokens), plain.decode(tokens), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.teacher_forcing_input(tokens), plain.teacher_forcing_input(tokens), atol=1e-5,
                               rtol=1e-5)


# -- the fast draw: the same distribution from the top-k candidates ---------------------------
@pytest.mark.parametrize("top_k,top_p,temperature", [(0, 1.0, 1.0), (900, 0.96, 1.0), (50, 1.0, 0.7),
                                                     (0, 0.5, 1.3), (3, 0.5, 1.0), (4096, 0.9, 1.0)])
def test_fast_sampler_draws_from_the_same_distribution(top_k, top_p, temperature):
    logits = 3 * torch.randn(64, 4096, generator=seeded(top_k))
    plain = sampled_probs(logits, top_k, top_p, temperature)
    fast = sampled_probs(logits, top_k, top_p, temperature, fast=True)
    assert torch.equal(plain > 0, fast > 0)  # the same tokens may be drawn
    assert torch.allclose(plain, fast, atol=1e-6, rtol=1e-4)  # with the same probabilities


def test_on_ties_at_the_kth_logit_both_draws_keep_exactly_k_and_the_same_tokens():
    logits = (3 * torch.randn(64, 4096, generator=seeded(1))).bfloat16().float()  # bf16 logits: ties are common
    assert (logits == logits.topk(900).values[:, -1:]).sum(-1).gt(1).any()  # some rows tie at the 900th
    plain, fast = sampled_probs(logits, 900), sampled_probs(logits, 900, fast=True)
    assert (plain > 0).sum(-1).eq(900).all() and (fast > 0).sum(-1).eq(900).all()
    assert torch.equal(plain > 0, fast > 0)  # both break the ties with torch.topk, on the same values
    assert torch.allclose(plain, fast, atol=1e-6, rtol=1e-4)


def test_top_candidates_on_a_hand_example():
    probs, order = top_candidates(torch.tensor([0.05, 0.5, 0.15, 0.3]).log(), top_k=3, top_p=0.7)
    assert order.tolist() == [1, 3, 2]  # most likely first; the 4th is cut by top-k
    # renormalised over the top 3: 0.526, 0.316, 0.158; the nucleus of 0.7 needs the first two
    assert torch.allclose(probs, torch.tensor([0.5, 0.3, 0.0]) / 0.95, atol=1e-6)


def test_fast_sampler_frequencies_match_the_probabilities():
    logits = torch.tensor([[[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]]]).expand(1, 20_000, 6).contiguous()
    drawn = sample_tokens_fast(logits, top_k=4, top_p=0.9, generator=seeded(0)).flatten()
    freq = torch.bincount(drawn, minlength=6).float() / drawn.numel()
    want = sampled_probs(logits[0, 0], top_k=4, top_p=0.9)
    assert torch.allclose(freq, want, atol=0.01), (freq, want)  # 3 sigma of 20k draws is < 0.011
    assert want[3:].eq(0).all() and drawn.max() <= 2  # outside the nucleus: never drawn
    assert sample_tokens_fast(logits[:, :5], temperature=1e-4, generator=seeded(0)).eq(0).all()  # greedy


def test_fast_generation_is_seeded_and_agrees_when_greedy(var_model, raster_model, vqvae):
    fast_var, fast_q = speed_up(copy.deepcopy(var_model), copy.deepcopy(vqvae.quantizer))
    fast_raster, _ = speed_up(copy.deepcopy(raster_model))

    def run(fast, seed, **kw):
        model, q, draw = (fast_var, fast_q, sample_tokens_fast) if fast else (var_model, vqvae.quantizer, None)
        return generate_var(model, q, [0, 5, 9], cfg=2.0, top_k=8, top_p=0.9, generator=seeded(seed),
                            **({"draw": draw} if draw else {}), **kw)
    assert all(a.equal(b) for a, b in zip(run(True, 0), run(True, 0)))  # a seed gives the same images
    assert not all(a.equal(b) for a, b in zip(run(True, 0), run(True, 1)))
    greedy = lambda fast: run(fast, 0, temperature=1e-9)  # the untrained logits differ by ~1e-5
    assert all(a.equal(b) for a, b in zip(greedy(True), greedy(False)))  # no randomness left: the same tokens
    r = lambda fast: (generate_raster(fast_raster, [1, 2], top_k=10, temperature=1e-9, generator=seeded(0),
                                      draw=sample_tokens_fast) if fast else
                      generate_raster(raster_model, [1, 2], top_k=10, temperature=1e-9, generator=seeded(0)))
    assert r(True)[0].equal(r(False)[0])


def test_the_plain_draw_on_the_fast_model_draws_the_plain_tokens(var_model, vqvae):
    """The speed layer's model and quantizer with the core's draw (bench's plain path): the
    tokens of a seed are those of the core."""
    fast_var, fast_q = speed_up(copy.deepcopy(var_model), copy.deepcopy(vqvae.quantizer))
    run = lambda m, q: flatten_tokens(generate_var(m, q, [0, 5, 9, 10], cfg=2.0, top_k=8, generator=seeded(3)))
    assert torch.equal(run(fast_var, fast_q), run(var_model, vqvae.quantizer))


# -- CUDA graphs and compiled blocks ----------------------------------------------------------
def test_graphed_sampler_needs_a_gpu(var_model, vqvae):
    with pytest.raises(ValueError, match="the model is on cpu: CUDA graphs need a CUDA GPU"):
        GraphedSampler(var_model, vqvae.quantizer, batch=2)


def test_compiled_blocks_draw_the_same_tokens(var_model, vqvae):
    torch._dynamo.reset()
    copy_ = compiled_blocks(var_model, backend="aot_eager")  # dynamo's tracing, with the KV cache filled in place
    eager, q = speed_up(copy.deepcopy(var_model), copy.deepcopy(vqvae.quantizer))
    run = lambda m: generate_var(m, q, [0, 5, 9], cfg=2.0, top_k=8, top_p=0.9, generator=seeded(0),
                                 draw=sample_tokens_fast)
    assert all(a.equal(b) for a, b in zip(run(copy_), run(eager)))
    assert all(a.equal(b) for a, b in zip(run(copy_), run(eager)))  # compiled once: the same again
    assert copy_ is not var_model and copy_.blocks[0]._compiled_call_impl is not None
    assert getattr(var_model.blocks[0], "_compiled_call_impl", None) is None  # the model itself is not compiled
    assert not isinstance(var_model.blocks[0].attn, FastSelfAttention)  # nor sped up
