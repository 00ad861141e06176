"""The multi-scale residual quantizer against its definition (DESIGN.md, Algorithms 1 and 2)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from var_tutorial.config import TOKENIZER_PRESETS, TokenizerConfig, tokenizer_preset
from var_tutorial.quantizer import MultiScaleQuantizer
from var_tutorial.vqvae import VQVAE


def make_quantizer(patch_nums=(1, 2, 4), dim=8, vocab=64, seed=0):
    torch.manual_seed(seed)
    q = MultiScaleQuantizer(vocab, dim, patch_nums).eval()
    with torch.no_grad():  # codes on the scale of the features, so every scale picks different codes
        q.codebook.embedding.weight.normal_()
    return q


def random_tokens(q, B=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(q.vocab_size, (B, pn, pn), generator=g) for pn in q.patch_nums]


@pytest.mark.parametrize("name,expected", [("cifar10", 130), ("imagenette64", 680), ("tiny", 21)])
def test_token_counts_and_shapes_for_every_preset(name, expected):
    cfg = tokenizer_preset(name)
    assert cfg.num_tokens == expected == sum(p * p for p in cfg.patch_nums)
    q = MultiScaleQuantizer(cfg.vocab_size, cfg.latent_channels, cfg.patch_nums)
    f = torch.randn(2, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    f_hat, tokens, loss = q(f)
    assert f_hat.shape == f.shape and loss.dim() == 0
    assert [tuple(r.shape) for r in tokens] == [(2, p, p) for p in cfg.patch_nums]
    assert q.teacher_forcing_input(tokens).shape == (2, expected - 1, cfg.latent_channels)


def test_algorithm1_by_hand():
    """Re-derive the encoding loop from the paper's description and compare token by token."""
    q = make_quantizer()
    f = torch.randn(2, 8, 4, 4)
    E = q.codebook.embedding.weight
    residual, f_hat, want = f.clone(), torch.zeros_like(f), []
    for k, pn in enumerate(q.patch_nums):
        z = F.interpolate(residual, size=(pn, pn), mode="area") if pn != 4 else residual
        dist = ((z.permute(0, 2, 3, 1)[..., None, :] - E) ** 2).sum(-1)  # (B, pn, pn, V)
        r_k = dist.argmin(-1)
        h = E[r_k].permute(0, 3, 1, 2)
        if pn != 4:
            h = F.interpolate(h, size=(4, 4), mode="bicubic")
        h = q.phi.phis[q.phi.index_for(k, q.K)](h)
        f_hat, residual = f_hat + h, residual - h
        want.append(r_k)
    got_f_hat, got, _ = q(f)
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    torch.testing.assert_close(got_f_hat, f_hat, atol=1e-5, rtol=1e-5)


def test_decode_of_encode_is_f_hat():
    q = make_quantizer()
    f = torch.randn(3, 8, 4, 4)
    f_hat, tokens, _ = q(f)
    torch.testing.assert_close(q.decode(q.encode(f)), f_hat, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(q.decode(tokens), f_hat, atol=1e-6, rtol=1e-6)


def test_teacher_forcing_input_is_the_downsampled_cumulative_f_hat():
    """Input of scale k+1 = decode(r_1..r_k) area-downsampled to pn_{k+1}; and it equals the
    inputs the step-by-step inference path (next_input) produces for the same tokens."""
    q = make_quantizer(patch_nums=(1, 2, 3, 4, 6, 8))
    tokens = random_tokens(q)
    tf = q.teacher_forcing_input(tokens)  # (B, L-1, C)
    by_definition = [F.interpolate(q.decode(tokens[: k + 1]), size=(pn, pn), mode="area").flatten(2).transpose(1, 2)
                     for k, pn in enumerate(q.patch_nums[1:])]
    torch.testing.assert_close(tf, torch.cat(by_definition, 1), atol=1e-5, rtol=1e-5)
    f_hat, steps = None, []
    for k, r_k in enumerate(tokens):
        f_hat, nxt = q.next_input(k, f_hat, q.embed(r_k))
        if k < q.K - 1:
            steps.append(nxt.flatten(2).transpose(1, 2))
    torch.testing.assert_close(tf, torch.cat(steps, 1), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(f_hat, q.decode(tokens), atol=1e-6, rtol=1e-6)


def test_phi_sharing_follows_nearest_tick():
    q = make_quantizer(patch_nums=(1, 2, 3, 4, 6, 8))
    ticks = np.linspace(1 / 12, 11 / 12, 4)
    want = [int(np.argmin(abs(ticks - k / 5))) for k in range(6)]
    assert [q.phi.index_for(k, 6) for k in range(6)] == want == [0, 0, 1, 2, 3, 3]


# phi_shared = n, K scales -> the phi conv of every scale. The ticks spread over [0, 1] with a
# margin of 1/(3n) for n = 4 and 1/(2n) for any other n (0: n = K, one per scale); scale k sits at
# k/(K-1) and takes the nearest tick, the first of two equally near ones.
#   n=6, K=3: ticks 1/12, 3/12, ..., 11/12; scale 2 sits at 1/2, as near 5/12 as 7/12: conv 2
#   n=8, K=10: ticks (2i+1)/16; 1/9 -> 1/16, 2/9 -> 3/16, ..., 8/9 -> 15/16, 1 -> 15/16
PHI_OF_EVERY_SCALE = [
    (4, 6, [0, 0, 1, 2, 3, 3]),
    (6, 3, [0, 2, 5]),
    (8, 10, [0, 0, 1, 2, 3, 4, 5, 6, 7, 7]),
    (3, 10, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]),
    (1, 6, [0, 0, 0, 0, 0, 0]),
    (0, 6, [0, 1, 2, 3, 4, 5]),
    (0, 4, [0, 1, 2, 3]),
]


@pytest.mark.parametrize("n,K,want", PHI_OF_EVERY_SCALE)
def test_phi_of_every_scale_as_the_reference_chooses_it(n, K, want):
    q = MultiScaleQuantizer(16, 8, [1, 2, 3, 4, 5, 6, 8, 10, 13, 16][-K:], phi_shared=n)
    assert len(q.phi.phis) == (n or K)
    assert [q.phi.index_for(k, K) for k in range(K)] == want


def test_one_phi_per_scale_encodes_and_decodes():
    q = MultiScaleQuantizer(64, 8, (1, 2, 4), phi_shared=0).eval()
    assert len(q.phi.phis) == 3
    f = torch.randn(2, 8, 4, 4)
    f_hat, tokens, _ = q(f)
    torch.testing.assert_close(q.decode(tokens), f_hat, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="phi_shared=-1"):
        tokenizer_preset("tiny", phi_shared=-1)


def test_phi_mixes_half_and_half():
    q = make_quantizer()
    h = torch.randn(2, 8, 4, 4)
    phi = q.phi.phis[0]
    torch.testing.assert_close(phi(h), 0.5 * h + 0.5 * F.conv2d(h, phi.weight, phi.bias, padding=1))


def test_loss_and_straight_through_gradient():
    q = make_quantizer()
    f = torch.randn(2, 8, 4, 4, requires_grad=True)
    f_hat, tokens, loss = q(f)
    # the loss is the scale average of (beta + 1) * ||f_hat_k - f||^2 in value
    want = sum((q.beta + 1) * F.mse_loss(q.decode(tokens[: k + 1]), f) for k in range(q.K)) / q.K
    torch.testing.assert_close(loss, want, atol=1e-6, rtol=1e-5)
    # straight-through: d f_hat / d f is the identity
    w = torch.randn_like(f)
    (f_hat * w).sum().backward()
    torch.testing.assert_close(f.grad, w)


def test_shipped_tokenizer_gets_closer_with_every_scale():
    from var_tutorial.data import to_float, toy_dataset
    from var_tutorial.pretrained import load_tokenizer

    tok = load_tokenizer("tokenizer_cifar10")
    x = to_float(toy_dataset(n=8, image_size=32)[0])
    f = tok.encode_latent(x)
    tokens = tok.img_to_tokens(x)
    errors = [F.mse_loss(tok.quantizer.decode(tokens[: k + 1]), f).item() for k in range(len(tokens))]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors


# -- bad input ------------------------------------------------------------------------------
def test_schedule_must_increase():
    with pytest.raises(ValueError, match=r"patch_nums=\(1, 3, 2, 8\).*increase strictly"):
        TokenizerConfig(patch_nums=(1, 3, 2, 8))


def test_schedule_must_end_at_latent_size():
    with pytest.raises(ValueError, match=r"patch_nums=\(1, 2, 4\).*latent size 8x8.*got 4x4"):
        TokenizerConfig(image_size=32, patch_nums=(1, 2, 4))


def test_schedule_must_be_positive():
    with pytest.raises(ValueError, match=r"patch_nums=\(0, 8\).*positive"):
        TokenizerConfig(patch_nums=(0, 8))


def test_token_indices_out_of_range():
    q = make_quantizer()
    tokens = random_tokens(q)
    tokens[1][0, 0, 0] = 64
    with pytest.raises(ValueError, match=r"tokens\[1\] holds indices in \[\d+, 64\].*\[0, 63\]"):
        q.decode(tokens)


def test_negative_token_indices():
    q = make_quantizer()
    tokens = random_tokens(q)
    tokens[0][:] = -1
    with pytest.raises(ValueError, match=r"tokens\[0\] holds indices in \[-1"):
        q.decode(tokens)


def test_float_tokens_refused():
    q = make_quantizer()
    tokens = [t.float() for t in random_tokens(q)]
    with pytest.raises(ValueError, match=r"tokens\[0\] has dtype torch.float32: expected integer"):
        q.decode(tokens)


def test_token_map_of_wrong_size():
    q = make_quantizer()
    tokens = random_tokens(q)
    tokens[2] = tokens[2][:, :3, :3]
    with pytest.raises(ValueError, match=r"tokens\[2\] has shape \(3, 3, 3\): expected \(B, 4, 4\)"):
        q.decode(tokens)


def test_too_many_token_maps():
    q = make_quantizer()
    with pytest.raises(ValueError, match=r"tokens has 4 token maps: expected 1..3"):
        q.decode(random_tokens(q) + [torch.zeros(3, 4, 4, dtype=torch.long)])


def test_teacher_forcing_needs_all_scales():
    q = make_quantizer()
    with pytest.raises(ValueError, match=r"tokens has 2 token maps: expected 3"):
        q.teacher_forcing_input(random_tokens(q)[:2])


def test_latent_of_wrong_shape():
    q = make_quantizer()
    with pytest.raises(ValueError, match=r"latent f has shape \(2, 8, 5, 5\): expected \(B, 8, 4, 4\)"):
        q(torch.randn(2, 8, 5, 5))


def test_unknown_preset_and_quantizer():
    with pytest.raises(ValueError, match=r"preset='mnist'.*expected one of"):
        tokenizer_preset("mnist")
    with pytest.raises(ValueError, match=r"quantizer='residual'.*'multiscale' or 'single'"):
        tokenizer_preset("tiny", quantizer="residual")


def test_presets_are_copies():
    cfg = tokenizer_preset("cifar10")
    cfg.vocab_size = 7
    assert TOKENIZER_PRESETS["cifar10"].vocab_size == 4096
    assert VQVAE(tokenizer_preset("tiny")).patch_nums == (1, 2, 4)
