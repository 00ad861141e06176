"""Scaling laws: the power-law fit recovers known laws, the FLOP count equals a hand count,
and a sweep appends each model to its results file and skips the ones already there."""
import math

import pytest
import torch

import var_tutorial.scaling as scaling
from var_tutorial.config import tokenizer_preset
from var_tutorial.results import read_results
from var_tutorial.scaling import (family_config, fit_power_law, pareto_front, power_law, run_sweep,
                                  training_flops_per_sequence)
from var_tutorial.transformer import transformer_preset


def test_fit_recovers_an_exact_power_law():
    x = torch.tensor([1e5, 3e5, 1e6, 3e6, 1e7, 3e7])
    y = power_law(x, alpha=-0.2, beta=2.5e-3)
    fit = fit_power_law(x, y)
    assert fit["alpha"] == pytest.approx(-0.2, rel=1e-9)
    assert fit["beta"] == pytest.approx(2.5e-3, rel=1e-6)
    assert fit["log10_beta"] == pytest.approx(math.log10(2.5e-3), rel=1e-9)
    assert fit["pearson_r"] == pytest.approx(-1.0, abs=1e-12)
    assert fit["alpha_se"] < 1e-9 and fit["n"] == 6


def test_fit_on_noisy_data_brackets_the_truth_with_its_standard_error():
    g = torch.Generator().manual_seed(0)
    x = torch.logspace(5, 8, 8, dtype=torch.float64)
    y = power_law(x, alpha=-0.05, beta=1e-4) * torch.exp(0.003 * torch.randn(8, generator=g, dtype=torch.float64))
    fit = fit_power_law(x, y)
    assert abs(fit["alpha"] + 0.05) < 3 * fit["alpha_se"] and 0 < fit["alpha_se"] < 0.01
    assert abs(fit["log10_beta"] - math.log10(1e-4)) < 3 * fit["log10_beta_se"]
    assert fit["pearson_r"] < -0.99
    # the same law with one point raised by 1%: a worse correlation and a larger standard error
    y2 = y.clone()
    y2[3] *= 1.01
    worse = fit_power_law(x, y2)
    assert worse["pearson_r"] > fit["pearson_r"] and worse["alpha_se"] > fit["alpha_se"]


@pytest.mark.parametrize("x, y, message", [([1, 2], [3, 4], "at least 3"), ([1, 2, 3], [1, 2], "the same number"),
                                            ([1, 0, 3], [1, 2, 3], "positive")])
def test_fit_refuses_bad_input(x, y, message):
    with pytest.raises(ValueError, match=message):
        fit_power_law(x, y)


def hand_count(cfg, var: bool) -> int:
    """Forward FLOPs of one sequence, layer by layer (2 per multiply-add), then backward = 2x
    forward, except VAR's word_embed, whose input needs no gradient (only its weight's)."""
    L, C, V, H = cfg.num_tokens, cfg.width, cfg.vocab_size, round(cfg.width * cfg.mlp_ratio)
    per_block = (2 * C * 6 * C                  # ada_lin on the condition vector (one row)
                 + 2 * L * C * 3 * C            # qkv
                 + 2 * L * L * C * 2            # q k^T and attention x v, over every head
                 + 2 * L * C * C                # proj
                 + 2 * L * C * H * 2)           # the MLP's two layers
    head = 2 * C * 2 * C + 2 * L * C * V        # the head's ada_lin and the logits
    embed = 2 * (L - 1) * cfg.latent_channels * C if var else 0  # raster embeds by table look-up
    forward = cfg.depth * per_block + head + embed
    return 3 * forward - embed


@pytest.mark.parametrize("kind", ["var", "raster"])
def test_flop_count_matches_a_hand_count(kind):
    cfg = transformer_preset("tiny", kind)
    assert training_flops_per_sequence(cfg) == hand_count(cfg, var=kind == "var")


def test_flops_are_close_to_6_N_tokens_for_a_wide_model():
    """The usual estimate 6 * parameters * tokens counts the weights every token passes through;
    AdaLN's weights (used once per image, on the class) and the embeddings are not among them.
    For the sweep's largest CIFAR model the count stays within 10% of it (attention is the rest)."""
    tok = tokenizer_preset("cifar10", "multiscale")
    cfg = family_config("var", 8, tok)
    from var_tutorial.transformer import build_transformer
    model = build_transformer(cfg)
    n = sum(p.numel() for name, p in model.named_parameters() if not any(k in name for k in ("emb", "pos", "ada_lin")))
    assert training_flops_per_sequence(cfg) == pytest.approx(6 * n * cfg.num_tokens, rel=0.1)


def test_family_follows_the_papers_rule_and_checks_depth():
    tok = tokenizer_preset("cifar10", "multiscale")
    cfg = family_config("var", 5, tok)
    assert (cfg.depth, cfg.width, cfg.heads) == (5, 320, 5) and cfg.vocab_size == tok.vocab_size
    with pytest.raises(ValueError, match="depth=0"):
        family_config("var", 0, tok)
    with pytest.raises(ValueError, match="width_per_depth=0"):
        family_config("var", 2, tok, width_per_depth=0)


def test_pareto_front():
    points = [(1.0, 5.0), (2.0, 4.0), (3.0, 4.5), (4.0, 3.0), (0.5, 6.0)]
    assert pareto_front(points) == [4, 0, 1, 3]


def test_sweep_appends_models_and_skips_finished_ones(tmp_path, monkeypatch):
    from test_train_transformer import N, tiny_tokenizer
    from var_tutorial.pretrained import save_weights
    from var_tutorial.train import token_cache

    torch.set_num_threads(1)
    tokenizers, caches = {}, {}
    for kind, quantizer in (("var", "multiscale"), ("raster", "single")):
        path = save_weights(tiny_tokenizer(quantizer), tmp_path / f"{quantizer}.safetensors", "tokenizer",
                            tokenizer_preset("tiny", quantizer).to_dict(), dtype=torch.float32)
        train = token_cache(path, "toy", "train", N, cache_dir=tmp_path / "cache", progress=False)
        test = token_cache(path, "toy", "test", 16, cache_dir=tmp_path / "cache", progress=False)
        tokenizers[kind], caches[kind] = path, (train, tuple(t[:16] for t in test))
    trained = []
    real_train = scaling.train_transformer
    monkeypatch.setattr(scaling, "train_transformer",
                        lambda cfg, *a, **k: trained.append((cfg.kind, cfg.depth)) or real_train(cfg, *a, **k))
    kw = dict(dataset="toy", preset="tiny", steps=6, batch_size=8, warmup_steps=2, width_per_depth=16,
              results_folder=tmp_path / "results", out_dir=tmp_path / "runs", progress=False, log=lambda m: None,
              tokenizers=tokenizers, caches=caches)
    record = run_sweep(depths=(1, 2), raster_depths=(1,), **kw)
    assert trained == [("raster", 1), ("var", 1), ("var", 2)]  # smallest first
    assert "fits" in record["metrics"] and record["metrics"]["fits"] == {}  # fewer than 3 depths: no fit yet
    record = run_sweep(depths=(1, 2, 3), raster_depths=(1,), **kw)
    assert trained[3:] == [("var", 3)]  # the finished models were skipped
    models = read_results("scaling_toy", tmp_path / "results")["metrics"]["models"]
    assert [(m["kind"], m["depth"]) for m in models] == [("raster", 1), ("var", 1), ("var", 2), ("var", 3)]
    m = models[-1]
    assert (m["width"], m["heads"]) == (48, 3) and m["train_flops"] == m["flops_per_sequence"] * 6 * 8
    assert 0 < m["test_error"] <= 1 and m["test_loss"] > 0 and len(m["test_loss_per_scale"]) == 3
    fit = record["metrics"]["fits"]["var"]["test_loss_vs_parameters"]
    assert fit["n"] == 3 and -1 <= fit["pearson_r"] <= 1
    # another budget is another experiment: nothing is skipped
    run_sweep(depths=(1,), raster_depths=(), **{**kw, "steps": 4})
    assert trained[4:] == [("var", 1)]
