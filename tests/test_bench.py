"""The fast paths of the benchmarks compute the same function as the plain ones (compiled
FlexAttention against eager SDPA with the dense mask, compiled against eager, the speed layer
against the core; the speed layer's own tests are in tests/test_fast.py), the time guard stops a
run, and `bench --quick` runs end to end on tiny configs and writes its three results files."""
import copy
import json
import time

import pytest
import torch
from test_train_transformer import one_thread  # noqa: F401  (autouse: one CPU thread for tiny models)

from var_tutorial.bench import (
    Clock,
    OutOfTime,
    alarm,
    compile_for_speed,
    compiled_logit_diff,
    random_quantizer,
    reference_config,
    speed_layer_agrees,
)
from var_tutorial.cli import main
from var_tutorial.config import transformer_preset
from var_tutorial.fast import FastSelfAttention, speed_up, use_flex_attention
from var_tutorial.train import param_groups, token_loss
from var_tutorial.transformer import build_transformer


def tiny_model(kind: str):
    """A tiny model whose weights are moved away from VAR's near-identity initialisation,
    so that attention really mixes the tokens and the logits are not all near zero."""
    torch.manual_seed(0)
    model = build_transformer(transformer_preset("tiny", kind, dropout=0.0))
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


@pytest.mark.parametrize("scope", ["blocks", "model"])
def test_compiled_flex_matches_eager_sdpa(scope):
    """The GPU's fastest training path (FlexAttention under torch.compile) traced with "aot_eager"."""
    torch._dynamo.reset()
    model = tiny_model("var").train()
    labels, x = inputs(model.cfg)
    plain = logits_of(model, labels, x)
    fast = use_flex_attention(copy.deepcopy(model))
    fast = compile_for_speed(fast, "aot_eager", scope)
    torch.testing.assert_close(logits_of(fast, labels, x), plain, rtol=1e-5, atol=1e-5)


def test_compiled_training_step_matches_eager():
    """One real training step (token_loss, backward, AdamW) of per-block compiled blocks and of eager ones."""
    torch._dynamo.reset()
    eager = tiny_model("var").train()
    fast = compile_for_speed(copy.deepcopy(eager), "aot_eager", "blocks")
    cfg = eager.cfg
    quantizer = random_quantizer(cfg, "cpu")
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(cfg.vocab_size, (4, cfg.num_tokens), generator=g)
    labels = torch.randint(cfg.num_classes, (4,), generator=g)
    losses = []
    for model in (eager, fast):
        opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3, betas=(0.9, 0.95))
        torch.manual_seed(4)
        loss_BL, _ = token_loss(model, cfg, quantizer, idx, labels, bf16=False)
        loss_BL.mean().backward()
        opt.step()
        losses.append(loss_BL.detach())
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for p, q in zip(eager.parameters(), fast.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


def test_time_guard():
    assert not Clock(0.001).allows(5.0, "a measurement")
    t = time.monotonic()
    with pytest.raises(OutOfTime):
        with alarm(1.0):
            time.sleep(10)
    assert time.monotonic() - t < 5


def test_quick_bench_writes_its_results(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path))
    main(["bench", "--quick"])
    out = capsys.readouterr().out
    assert "generation" in out and "done" in out
    records = {name: json.loads((tmp_path / f"bench_{name}.json").read_text())
               for name in ("generation", "reference", "training")}
    for r in records.values():
        assert r["metrics"]["complete"] and r["metrics"]["quick"]

    gen = records["generation"]["metrics"]
    assert {(row["resolution"], row["batch"]) for row in gen["rows"]} == {(32, 4), (32, 1), (64, 4), (64, 1)}
    for row in gen["rows"]:
        assert row["next_scale_images_per_s"] > 0 and row["next_token_images_per_s"] > 0
        assert row["speedup_next_scale_over_next_token"] == pytest.approx(
            row["next_token_seconds_per_batch"] / row["next_scale_seconds_per_batch"], rel=1e-2)
        # the lead is the ratio of steps over what a next-scale step costs in next-token steps
        assert row["steps_ratio"] == pytest.approx(16 / 3 if row["resolution"] == 32 else 36 / 5, rel=1e-3)
        assert row["speedup_next_scale_over_next_token"] == pytest.approx(
            row["steps_ratio"] / row["next_scale_step_in_next_token_steps"], rel=1e-2)
    assert gen["skipped"] == [] and gen["targets_met_by_path"] == {}  # the targets are for a GPU at batch 64
    m32 = gen["models"]["32px"]
    assert m32["var"]["config"]["width"] == m32["raster"]["config"]["width"]
    assert m32["var"]["config"]["vocab_size"] == m32["raster"]["config"]["vocab_size"]
    assert m32["var"]["steps"] == 3 and m32["raster"]["steps"] == 16  # scales (1, 2, 4) against a 4x4 map

    for m in gen["models"].values():  # the speed layer against the core, recorded beside the timings
        assert m["var"]["speed_layer_vs_plain"]["static_kv_cache_max_abs_logit_diff"] < 1e-5
        assert m["var"]["speed_layer_vs_plain"]["bicubic_matrices_max_abs_diff"] < 1e-5
        assert m["raster"]["speed_layer_vs_plain"]["static_kv_cache_max_abs_logit_diff"] < 1e-5

    ref = records["reference"]["metrics"]["configs"]
    assert set(ref) == {"cifar32-d8", "cifar32-d12", "paper256-d16"}
    for entry in ref.values():
        assert entry["train"]["tokens_per_s"] > 0 and entry["sample"]["images_per_s"] > 0
        assert entry["train"]["max_abs_logit_diff_vs_plain"] < 1e-4
        assert entry["sample"]["speed_layer_vs_plain"]["static_kv_cache_max_abs_logit_diff"] < 1e-5
        assert "whole model" in entry["train"]["path"]  # the fastest path first
        assert entry["reference"]["train_tokens_per_s"] > 0
        assert entry["train_vs_reference"] == pytest.approx(
            entry["train"]["tokens_per_s"] / entry["reference"]["train_tokens_per_s"], rel=1e-2)

    train = records["training"]["metrics"]
    assert [v["variant"] for v in train["variants"]][:2] == ["eager, SDPA", "compiled per block, SDPA"]
    assert any("FlexAttention" in s["variant"] for s in train["skipped"])  # no backward pass on the CPU
    for v in train["variants"]:
        assert v["tokens_per_s"] > 0 and v["flops_per_sequence"] > 0 and v["fraction_of_matmul_peak"] > 0
        assert v["max_abs_logit_diff_vs_plain"] < 1e-4


def test_compiled_logit_diff_compares_the_compiled_copy_with_the_model():
    torch.manual_seed(0)
    model = build_transformer(reference_config((1, 2, 4), 2, quick=True)).eval()
    diff = compiled_logit_diff(model, 3, torch.device("cpu"), backend="aot_eager")
    assert 0.0 <= diff < 1e-5  # float32 on the CPU, the same operations traced: equal up to rounding
    assert model.cache_len == 0 and not model.blocks[0].attn.caching  # the model's cache is switched off again


def test_speed_layer_agrees_compares_the_speed_layer_with_the_core():
    model = tiny_model("var").eval()
    quantizer = random_quantizer(model.cfg, "cpu")
    out = speed_layer_agrees(model, quantizer, torch.device("cpu"))
    assert set(out) == {"static_kv_cache_max_abs_logit_diff", "bicubic_matrices_max_abs_diff"}
    assert 0.0 <= out["static_kv_cache_max_abs_logit_diff"] < 1e-5 and 0.0 <= out["bicubic_matrices_max_abs_diff"] < 1e-5
    assert not isinstance(model.blocks[0].attn, FastSelfAttention)  # the model is left as it was
    assert model.cache_len == 0 and not model.training
    speed_up(model)
    with pytest.raises(ValueError, match="sped up already"):
        speed_layer_agrees(model, quantizer, torch.device("cpu"))
