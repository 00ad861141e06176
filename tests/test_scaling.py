"""Scaling laws: the power-law fit recovers known laws, the FLOP count equals a hand count,
and a sweep appends each model to its results file and skips the ones already there."""
import json
import math
from pathlib import Path

import pytest
import torch

import var_tutorial.scaling as scaling
from var_tutorial.config import tokenizer_preset, transformer_preset
from var_tutorial.powerlaw import fit_power_law, pareto_front, power_law
from var_tutorial.records import read_results
from var_tutorial.scaling import family_config, run_sweep, training_flops_per_sequence


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
    y = power_law(x, alpha=-0.05, beta=1e-4) * torch.exp(0.003 * torch.randn(8, generator=g, dtype=torch.float64)).numpy()
    fit = fit_power_law(x, y)
    assert abs(fit["alpha"] + 0.05) < 3 * fit["alpha_se"] and 0 < fit["alpha_se"] < 0.01
    assert abs(fit["log10_beta"] - math.log10(1e-4)) < 3 * fit["log10_beta_se"]
    assert fit["pearson_r"] < -0.99
    # the same law with one point raised by 1%: a worse correlation and a larger standard error
    y2 = y.copy()
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


@pytest.fixture
def toy_sweep(tmp_path, monkeypatch):
    """run_sweep's keyword arguments for a toy sweep (tiny tokenizers, toy images, 6 steps),
    and the list of (kind, depth, lr) that train_transformer is called with."""
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

    def spy(cfg, tcfg, *a, **k):
        trained.append((cfg.kind, cfg.depth, tcfg.lr))
        return real_train(cfg, tcfg, *a, **k)

    monkeypatch.setattr(scaling, "train_transformer", spy)
    kw = dict(dataset="toy", preset="tiny", steps=6, batch_size=8, warmup_steps=2, width_per_depth=16,
              results_folder=tmp_path / "results", out_dir=tmp_path / "runs", progress=False, log=lambda m: None,
              tokenizers=tokenizers, caches=caches)
    return kw, trained


def test_sweep_appends_models_and_skips_finished_ones(tmp_path, toy_sweep):
    kw, calls = toy_sweep
    record = run_sweep(depths=(1, 2), raster_depths=(1,), **kw)
    trained = [c[:2] for c in calls]
    assert trained == [("raster", 1), ("var", 1), ("var", 2)]  # smallest first
    assert "fits" in record["metrics"] and record["metrics"]["fits"] == {}  # fewer than 3 depths: no fit yet
    record = run_sweep(depths=(1, 2, 3), raster_depths=(1,), **kw)
    trained = [c[:2] for c in calls]
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
    assert [c[:2] for c in calls][4:] == [("var", 1)]
    assert all(c[2] == 1e-3 for c in calls)
    assert all(m["model_lr"] == 1e-3 and m["lr_rule"] == "constant" for m in models)


def test_each_tokenizer_is_read_once_and_passed_to_training(toy_sweep, monkeypatch):
    import var_tutorial.train.transformer as transformer_loop

    kw, calls = toy_sweep
    read = []
    real_load = scaling.load_tokenizer
    monkeypatch.setattr(scaling, "load_tokenizer", lambda path, **k: read.append(path) or real_load(path, **k))
    monkeypatch.setattr(transformer_loop, "load_tokenizer", lambda *a, **k: pytest.fail("read the tokenizer again"))
    run_sweep(depths=(1, 2), raster_depths=(1,), **kw)
    assert [c[:2] for c in calls] == [("raster", 1), ("var", 1), ("var", 2)]
    assert read == [kw["tokenizers"]["raster"], kw["tokenizers"]["var"]]  # three models, two tokenizers


def test_inverse_width_rule_gives_each_width_its_own_lr_and_is_another_budget(toy_sweep):
    kw, calls = toy_sweep
    run_sweep(depths=(1,), raster_depths=(), **kw)
    run_sweep(depths=(1, 2), raster_depths=(), lr_rule="inverse-width", **kw)
    assert calls == [("var", 1, 1e-3), ("var", 1, 1e-3 * 256 / 16), ("var", 2, 1e-3 * 256 / 32)]
    models = read_results("scaling_toy", kw["results_folder"])["metrics"]["models"]
    assert [(m["lr_rule"], m["model_lr"]) for m in models] == [("constant", 1e-3), ("inverse-width", 0.016),
                                                               ("inverse-width", 0.008)]
    assert scaling.model_lr(1e-3, 512, "inverse-width") == 5e-4 and scaling.model_lr(1e-3, 512) == 1e-3
    with pytest.raises(ValueError, match="lr_rule='sqrt'.*constant, inverse-width"):
        run_sweep(depths=(1,), raster_depths=(), lr_rule="sqrt", **kw)
    assert len(calls) == 3  # refused before any training


def test_entries_from_before_the_lr_rule_count_as_constant():
    old = {"kind": "var", "depth": 2, "steps": 10, "lr": 1e-3}
    assert scaling._same_run(old, "var", 2, {"steps": 10, "lr": 1e-3, "lr_rule": "constant", "dropout": 0.0})
    assert not scaling._same_run(old, "var", 2, {"steps": 10, "lr": 1e-3, "lr_rule": "inverse-width", "dropout": 0.0})
    assert not scaling._same_run(old, "var", 2, {"steps": 10, "lr": 1e-3, "lr_rule": "constant", "dropout": 0.1})


def test_dropout_is_the_same_for_every_model_and_part_of_the_budget(toy_sweep):
    kw, calls = toy_sweep
    run_sweep(depths=(1,), raster_depths=(), **kw)
    record = run_sweep(depths=(1,), raster_depths=(), dropout=0.1, **kw)
    assert len(calls) == 2  # another budget: trained again
    assert [m["dropout"] for m in record["metrics"]["models"]] == [0.0, 0.1]
    assert record["config"]["budget"]["dropout"] == 0.1
    with pytest.raises(ValueError, match="dropout=1.0: expected a probability"):
        run_sweep(depths=(1,), raster_depths=(), dropout=1.0, **kw)


def test_merge_joins_the_parts_of_a_sweep_and_fits_all_models(toy_sweep):
    kw, calls = toy_sweep
    folder = kw["results_folder"]
    whole = run_sweep(depths=(1, 2, 3), raster_depths=(), results_name="whole", **kw)
    part_a = run_sweep(depths=(1, 3), raster_depths=(), results_name="part_a", **kw)
    run_sweep(depths=(2,), raster_depths=(1,), results_name="part_b", **kw)
    merged = scaling.merge_sweeps(["part_a", "part_b"], "merged", results_folder=folder, parts_folder=folder)
    models = merged["metrics"]["models"]
    assert [(m["kind"], m["depth"]) for m in models] == [("raster", 1), ("var", 1), ("var", 2), ("var", 3)]
    assert merged["config"] == part_a["config"]
    assert [p["name"] for p in merged["metrics"]["parts"]] == ["part_a", "part_b"]
    # the same seeded models as the sweep run in one piece, hence the same fit
    fit, ref = (r["metrics"]["fits"]["var"]["test_loss_vs_parameters"] for r in (merged, whole))
    assert fit["n"] == 3 and fit["alpha"] == pytest.approx(ref["alpha"], rel=1e-6)
    with pytest.raises(ValueError, match="var depth 1 is in both part_a and whole"):
        scaling.merge_sweeps(["part_a", "whole"], "bad", results_folder=folder, parts_folder=folder)
    run_sweep(depths=(4,), raster_depths=(), results_name="part_c", **{**kw, "steps": 4})
    with pytest.raises(ValueError, match="part_c: its config .* differs from part_a"):
        scaling.merge_sweeps(["part_a", "part_c"], "bad", results_folder=folder, parts_folder=folder)
    with pytest.raises(ValueError, match="expected two or more"):
        scaling.merge_sweeps(["part_a"], "bad", results_folder=folder, parts_folder=folder)
    # a part written before the budget named early stopping merges with one that names it off
    old = json.loads((Path(folder) / "part_b.json").read_text())
    for key in ("keep_best", "val_images"):
        del old["config"]["budget"][key]
    (Path(folder) / "part_b.json").write_text(json.dumps(old))
    again = scaling.merge_sweeps(["part_a", "part_b"], "merged", results_folder=folder, parts_folder=folder)
    assert again["config"] == part_a["config"] and len(again["metrics"]["models"]) == 4


def test_a_sweep_repeated_with_another_seed_is_fitted_on_the_mean_of_the_seeds(toy_sweep):
    kw, calls = toy_sweep
    folder = kw["results_folder"]
    seed0 = run_sweep(depths=(1, 2, 3), raster_depths=(), results_name="seed0", **kw)
    seed1 = run_sweep(depths=(1, 2, 3), raster_depths=(), results_name="seed1", seed=1, **kw)
    assert len(calls) == 6 and seed1["config"]["budget"]["seed"] == 1
    loss0, loss1 = ([m["test_loss"] for m in r["metrics"]["models"]] for r in (seed0, seed1))
    assert all(a != b for a, b in zip(loss0, loss1))  # the seed changes the initialisation and the batches
    merged = scaling.merge_sweeps(["seed0", "seed1"], "both", results_folder=folder, parts_folder=folder)
    m = merged["metrics"]
    assert [(e["depth"], e["seed"]) for e in m["models"]] == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]
    assert merged["config"]["budget"]["seed"] == [0, 1]
    params = [e["parameters"] for e in seed0["metrics"]["models"]]
    want = fit_power_law(params, [(a + b) / 2 for a, b in zip(loss0, loss1)])
    fit = m["fits"]["var"]["test_loss_vs_parameters"]
    assert fit["n"] == 3 and fit["alpha"] == pytest.approx(want["alpha"], rel=1e-9)
    assert fit["pearson_r"] == pytest.approx(want["pearson_r"], rel=1e-9)
    for seed, record in (("0", seed0), ("1", seed1)):  # and each seed alone, as its own sweep fitted it
        assert m["fits_per_seed"][seed]["var"]["test_loss_vs_parameters"]["alpha"] == pytest.approx(
            record["metrics"]["fits"]["var"]["test_loss_vs_parameters"]["alpha"], rel=1e-9)
    means = scaling.seed_means(m["models"])
    assert [e["test_loss_seeds"] for e in means] == [list(p) for p in zip(loss0, loss1)]
    assert "seed 1" in scaling.summary(merged) and "mean over seeds" in scaling.summary(merged)
    with pytest.raises(ValueError, match=r"var depth 1 is in both seed1 and seed1 \(seed 1 in both\)"):
        scaling.merge_sweeps(["seed1", "seed1"], "bad", results_folder=folder, parts_folder=folder)
    # a sweep resumed with another seed trains again: the seed is part of the budget
    run_sweep(depths=(1,), raster_depths=(), results_name="seed0", seed=2, **kw)
    assert len(calls) == 7


def test_hold_out_keeps_an_image_and_its_mirror_together_and_draws_from_every_class():
    n, L = 40, 3
    idx = torch.arange(n).repeat(2)[:, None].expand(2 * n, L) * 10  # row i + n mirrors row i: same image number
    idx = idx + torch.cat([torch.zeros(n), torch.ones(n)]).long()[:, None]  # ... with a 1 added for "mirrored"
    labels = (torch.arange(n) * 10 // n).repeat(2)  # sorted by class, as an ImageFolder data set is
    (train, train_labels), (val, val_labels) = scaling.hold_out((idx, labels), 8)
    assert len(train) == 2 * (n - 8) and len(val) == 8 and len(val_labels) == 8
    val_images = set((val[:, 0] // 10).tolist())
    train_images = (train[:, 0] // 10).tolist()
    assert not val_images & set(train_images)  # no held-out image, flipped or not, is trained on
    assert all(train_images.count(i) == 2 for i in set(train_images))  # each training image with its mirror
    assert (val[:, 0] % 10 == 0).all()  # validation uses the images unflipped
    assert len(set(val_labels.tolist())) > 1  # random, not the last (one-class) rows
    again = scaling.hold_out((idx, labels), 8)[1][0]
    assert torch.equal(again, val)  # seeded
    for bad in (0, n):
        with pytest.raises(ValueError, match=f"val_images={bad}: expected between 1 and {n - 1}"):
            scaling.hold_out((idx, labels), bad)


def test_early_stopping_sweep_chooses_on_held_out_training_images(toy_sweep, monkeypatch):
    kw, calls = toy_sweep
    seen = []
    real_train = scaling.train_transformer

    def spy(cfg, tcfg, *a, tokens=None, val_tokens=None, **k):
        seen.append((len(tokens[0]), val_tokens and len(val_tokens[0]), tcfg.keep_best, tcfg.eval_every))
        return real_train(cfg, tcfg, *a, tokens=tokens, val_tokens=val_tokens, **k)

    monkeypatch.setattr(scaling, "train_transformer", spy)
    train_rows = len(kw["caches"]["var"][0][0])
    record = run_sweep(depths=(1,), raster_depths=(), keep_best=True, val_images=4, **kw)
    assert seen == [(train_rows - 8, 4, True, 1)]  # 4 images and their 4 mirrors held out; 6 steps // 10 -> every step
    m = record["metrics"]["models"][0]
    assert (m["keep_best"], m["val_images"]) == (True, 4) and 1 <= m["restored_best_step"] <= 6
    assert m["train_flops_to_best"] == m["flops_per_sequence"] * m["restored_best_step"] * 8
    assert m["best_heldout_loss"] > 0
    run_sweep(depths=(1,), raster_depths=(), **kw)  # without early stopping: another budget, trained again
    assert seen[1] == (train_rows, None, False, 0)
    with pytest.raises(ValueError, match="keep_best=True with val_images=0: early stopping needs held-out"):
        run_sweep(depths=(1,), raster_depths=(), keep_best=True, **kw)
