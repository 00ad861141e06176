"""Transformer training on tiny models and toy data: the token cache round-trips, both models
learn, resuming is exact, the compiled path traces, and a transformer refuses a tokenizer
other than its own."""
import json
import math

import pytest
import torch
import torch.nn as nn

import var_tutorial.config as config
import var_tutorial.train.transformer as transformer_loop
from var_tutorial.cli import main
from var_tutorial.config import (
    TransformerTrainConfig,
    check_fits,
    tokenizer_preset,
    transformer_config,
    transformer_preset,
)
from var_tutorial.data import sha256_file, to_float
from var_tutorial.pretrained import load_tokenizer, load_transformer, save_weights, transformer_record
from var_tutorial.train import Steps, param_groups, token_cache, train_transformer, training_set
from var_tutorial.transformer import build_transformer, unflatten_tokens
from var_tutorial.vqvae import VQVAE


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and on a shared CPU waiting for it is slow."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

N = 48  # toy training images


def tiny_tokenizer(quantizer: str, seed: int = 0) -> VQVAE:
    """An untrained tiny tokenizer whose codes sit on encoder outputs (so that the toy images use
    many of them): every code is 'dead' at first, and a restart moves it onto a residual."""
    torch.manual_seed(seed)
    tok = VQVAE(tokenizer_preset("tiny", quantizer)).eval()
    x = to_float(training_set("toy", "train", 16, N)[0])
    tok.quantizer.codebook.restart_dead_codes(tok.quantizer.residuals(tok.encode_latent(x)),
                                              generator=torch.Generator().manual_seed(seed))
    return tok


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tokens")
    out = {}
    for kind, quantizer in (("var", "multiscale"), ("raster", "single")):
        path = save_weights(tiny_tokenizer(quantizer), d / f"{quantizer}.safetensors", "tokenizer",
                            tokenizer_preset("tiny", quantizer).to_dict(), dtype=torch.float32)
        tokens = token_cache(path, "toy", "train", N, cache_dir=d / "cache", progress=False)
        val = token_cache(path, "toy", "test", 16, cache_dir=d / "cache", progress=False)
        out[kind] = {"tokenizer": path, "tokens": tokens, "val": tuple(t[:16] for t in val)}
    out["dir"] = d
    return out


def run(files, kind, out, steps=40, **kw):
    tok = load_tokenizer(files[kind]["tokenizer"])
    cfg = transformer_config(kind, "tiny", tok.cfg)
    tcfg = TransformerTrainConfig(dataset="toy", tokenizer=str(files[kind]["tokenizer"]), steps=steps, batch_size=16,
                                  lr=3e-3, warmup_steps=4, log_every=4, eval_every=8, ckpt_every=8,
                                  keep_best=kw.pop("tcfg_keep_best", False))
    return train_transformer(cfg, tcfg, tok, out, device="cpu", compile=kw.pop("compile", False), progress=False,
                             tokens=files[kind]["tokens"], val_tokens=files[kind]["val"], **kw)


def test_token_cache_round_trips(files, monkeypatch):
    path = files["var"]["tokenizer"]
    tokens, labels = files["var"]["tokens"]
    tok = load_tokenizer(path)
    L = tok.cfg.num_tokens
    assert tokens.dtype == torch.int16 and tokens.shape == (2 * N, L) and labels.shape == (2 * N,)
    images, image_labels = training_set("toy", "train", 16, N)
    assert torch.equal(labels, image_labels.repeat(2))
    x = to_float(images)
    for rows, xs in ((tokens[:N], x), (tokens[N:], x.flip(-1))):  # the images, then their mirror images
        decoded = tok.tokens_to_img(unflatten_tokens(rows.long(), tok.patch_nums))
        assert torch.equal(decoded, tok.tokens_to_img(tok.img_to_tokens(xs)))
    # the second call reads the cache file, named by the tokenizer file's sha256
    cached = files["dir"] / "cache" / f"tokens_toy_train_subset{N}_{sha256_file(path)[:16]}.pt"
    assert cached.is_file()
    monkeypatch.setattr(transformer_loop, "encode_tokens", lambda *a, **k: pytest.fail("the cache was not used"))
    again = token_cache(path, "toy", "train", N, cache_dir=files["dir"] / "cache")
    assert torch.equal(again[0], tokens) and torch.equal(again[1], labels)


@pytest.mark.parametrize("kind", ["var", "raster"])
def test_both_models_learn_and_log_per_scale(files, kind, tmp_path):
    model, history = run(files, kind, tmp_path / kind)
    logged = [h for h in history if "loss" in h]
    assert logged[-1]["loss"] < 0.8 * logged[0]["loss"] and logged[0]["loss"] == pytest.approx(math.log(64), abs=0.3)
    K = len(model.cfg.patch_nums)
    assert all(len(h["loss_per_scale"]) == K and len(h["accuracy_per_scale"]) == K for h in logged)
    val = [h for h in history if "val_loss" in h]
    assert [h["step"] for h in val] == [8, 16, 24, 32, 40] and len(val[-1]["val_loss_per_scale"]) == K
    ck = torch.load(tmp_path / kind / "ckpt.pt", weights_only=True)
    assert ck["step"] == 40 and ck["config"] == model.cfg.to_dict()
    assert ck["tokenizer_sha256"] == sha256_file(files[kind]["tokenizer"])


def test_resume_continues_exactly(files, tmp_path):
    _, straight = run(files, "var", tmp_path / "straight", steps=20)
    run(files, "var", tmp_path / "split", steps=20, stop_after=7)  # interrupted after 7 steps (checkpoint at 7)
    _, resumed = run(files, "var", tmp_path / "split", steps=20)
    drop_time = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa: E731
    assert drop_time(resumed) == drop_time(straight)


def test_compiled_path_traces(files, tmp_path):
    """The GPU path compiles the transformer; "aot_eager" traces it the same way (forward and
    backward graphs) without generating code, which takes seconds on a CPU instead of a minute."""
    _, eager = run(files, "var", tmp_path / "eager", steps=4)
    _, compiled = run(files, "var", tmp_path / "compiled", steps=4, compile="aot_eager")
    assert compiled[-1]["loss"] == pytest.approx(eager[-1]["loss"], rel=1e-4)


def test_a_transformer_refuses_another_tokenizer(files, tmp_path):
    path = files["var"]["tokenizer"]
    tok = load_tokenizer(path)
    cfg = transformer_config("var", "tiny", tok.cfg)
    weights = save_weights(build_transformer(cfg), tmp_path / "var.safetensors", "transformer",
                           transformer_record(cfg, tok, path))
    model, same = load_transformer(weights)  # the recorded tokenizer
    assert model.cfg == cfg and same.cfg == tok.cfg
    other = VQVAE(tokenizer_preset("tiny", vocab_size=32))
    with pytest.raises(ValueError, match=r"tokenizer does not match the transformer .*var.safetensors.*"
                                         r"vocab_size=32 \(expected 64\)"):
        load_transformer(weights, tokenizer=other)
    retrained = save_weights(tiny_tokenizer("multiscale", seed=1), tmp_path / "retrained.safetensors", "tokenizer",
                             tok.cfg.to_dict())
    with pytest.raises(ValueError, match=r"its config is right, but its weights file has sha256"):
        load_transformer(weights, tokenizer=retrained)
    # resuming a run with another tokenizer is refused as well
    run(files, "var", tmp_path / "r", steps=2)
    tcfg = TransformerTrainConfig(dataset="toy", tokenizer=str(retrained), steps=4, batch_size=16)
    with pytest.raises(ValueError, match=r"checkpoint .*ckpt.pt was trained with tokenizer_sha256"):
        train_transformer(cfg, tcfg, load_tokenizer(retrained), tmp_path / "r", device="cpu", compile=False,
                          progress=False, tokens=files["var"]["tokens"])


def test_configs_follow_the_tokenizer():
    ms, ss = tokenizer_preset("cifar10"), tokenizer_preset("cifar10", "single")
    var, raster = transformer_config("var", "cifar10", ms), transformer_config("raster", "cifar10", ss, depth=3)
    assert var.patch_nums == ms.patch_nums and raster.patch_nums == (8,) and raster.depth == 3
    with pytest.raises(ValueError, match=r"tokenizer has quantizer='multiscale': the raster model needs a 'single'"):
        transformer_config("raster", "cifar10", ms)
    with pytest.raises(ValueError, match=r"model='gpt': expected 'var' \(next-scale\) or 'raster'"):
        transformer_config("gpt", "cifar10", ms)


def test_check_fits_is_the_one_compatibility_check():
    ms, ss = tokenizer_preset("cifar10"), tokenizer_preset("cifar10", "single")
    check_fits(ms, transformer_config("var", "cifar10", ms))
    check_fits(ss, transformer_config("raster", "cifar10", ss))
    with pytest.raises(ValueError, match=r"tokenizer has quantizer='single': the var model needs a 'multiscale'"):
        check_fits(ss, transformer_preset("cifar10"))
    with pytest.raises(ValueError, match=r"the var transformer has \{'vocab_size': 1024, .*\}: expected its "
                                         r"tokenizer's \{'vocab_size': 4096, .*\(transformer_config fits"):
        check_fits(ms, transformer_preset("cifar10", vocab_size=1024))
    with pytest.raises(ValueError, match=r"'patch_nums': \(1, 4\).*'patch_nums': \(1, 2, 4\)"):
        check_fits(tokenizer_preset("tiny"), transformer_preset("tiny", patch_nums=(1, 4)))
    with pytest.raises(ValueError, match=r"'latent_channels': 8.*'latent_channels': 32"):
        check_fits(ms, transformer_preset("cifar10", latent_channels=8))
    # the raster model reads tokens, not latents: its latent_channels is not compared
    check_fits(ss, transformer_preset("cifar10", kind="raster", latent_channels=8))
    with pytest.raises(ValueError, match=r"'vocab_size': 512"):  # an override may not undo the fit
        transformer_config("var", "cifar10", ms, vocab_size=512)


def test_training_takes_the_loaded_tokenizer_and_checks_it_fits(files, tmp_path, monkeypatch):
    monkeypatch.setattr(transformer_loop, "load_tokenizer", lambda *a, **k: pytest.fail("read the tokenizer again"))
    model, history = run(files, "var", tmp_path / "once", steps=2)  # the tokens are given: no token cache either
    assert history[-1]["step"] == 2
    raster_tok = load_tokenizer(files["raster"]["tokenizer"])
    cfg = transformer_config("var", "tiny", load_tokenizer(files["var"]["tokenizer"]).cfg)
    tcfg = TransformerTrainConfig(dataset="toy", tokenizer=str(files["raster"]["tokenizer"]), steps=2, batch_size=16)
    with pytest.raises(ValueError, match=r"tokenizer has quantizer='single': the var model needs a 'multiscale'"):
        train_transformer(cfg, tcfg, raster_tok, tmp_path / "misfit", device="cpu", progress=False,
                          tokens=files["var"]["tokens"])
    assert not (tmp_path / "misfit").exists()  # refused before any work


@pytest.mark.parametrize("kind", ["var", "raster"])
def test_no_weight_decay_on_norms_biases_and_embeddings(kind):
    model = build_transformer(transformer_preset("tiny", kind))
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert decayed == {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    for name in ("class_emb.weight", "pos_1LC", "pos_start", "blocks.0.attn.log_scale", "blocks.0.attn.qkv.bias",
                 "lvl_embed.weight" if kind == "var" else "tok_embed.weight"):
        assert name not in decayed


def test_time_budget_fixes_the_step_count_and_keeps_the_deadline():
    def budget_run(seconds_per_step):
        now = [0.0]
        loop = Steps(0, 10_000, minutes=1.0, clock=lambda: now[0], progress=False)
        while loop.running:
            now[0] += seconds_per_step(loop.step)
            loop.advance()
        return loop, now[0]

    # steps 20..60 take 0.25 s each: after 15 s, the remaining 45 s less the 2% kept back
    # for validation and checkpoints (1.2 s) hold 175 more steps
    loop, seconds = budget_run(lambda step: 0.25)
    assert loop.total == loop.step == 235 and seconds == 58.75
    # a run that slows down to 1 s per step after step 80 stops at the deadline instead
    loop, seconds = budget_run(lambda step: 0.25 if step < 80 else 1.0)
    assert loop.total == loop.step == 121 and seconds == 61.0


def test_train_command(files, tmp_path, monkeypatch):
    monkeypatch.setenv("VAR_TUTORIAL_DATA", str(tmp_path / "data"))  # the token cache goes there
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path / "results"))
    main(["train", "--model", "raster", "--preset", "tiny", "--tokenizer", str(files["raster"]["tokenizer"]),
          "--subset", "32", "--steps", "6", "--batch-size", "8", "--log-every", "2", "--eval-every", "3",
          "--out", str(tmp_path / "run"), "--export", str(tmp_path / "raster.safetensors"), "--device", "cpu"])
    record = json.loads((tmp_path / "results" / "train_raster_toy.json").read_text())
    assert [h["step"] for h in record["metrics"]["history"]] == [2, 3, 4, 6]
    assert record["config"]["model"]["kind"] == "raster" and record["config"]["train"]["steps"] == 6
    model, tok = load_transformer(tmp_path / "raster.safetensors")
    assert model.cfg.kind == "raster" and tok.cfg.quantizer == "single"
    assert len(list((tmp_path / "data" / "cache").glob("tokens_toy_*.pt"))) == 2  # train and test


@pytest.mark.parametrize("config, field, value, match", [
    (TransformerTrainConfig, "batch_size", 0, r"batch_size=0: expected an integer >= 1"),
    (TransformerTrainConfig, "steps", 0, r"steps=0: expected an integer >= 1"),
    (TransformerTrainConfig, "lr", 0.0, r"lr=0.0: expected a learning rate > 0"),
    (TransformerTrainConfig, "eval_every", -1, r"eval_every=-1: expected an integer >= 0"),
    (TransformerTrainConfig, "batch_size", 2.5, r"batch_size=2.5: expected an integer >= 1"),
    (config.TokenizerTrainConfig, "batch_size", 0, r"batch_size=0: expected an integer >= 1"),
    (config.ClassifierTrainConfig, "epochs", 0, r"epochs=0: expected an integer >= 1"),
    (config.ClassifierTrainConfig, "label_smoothing", -0.1, r"label_smoothing=-0.1: expected a number >= 0.0"),
])
def test_training_configs_refuse_bad_numbers(config, field, value, match):
    with pytest.raises(ValueError, match=match):
        config(**{field: value})


def test_train_command_refuses_batch_size_zero(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--model", "var", "--batch-size", "0"])
    assert e.value.code == 2 and "argument --batch-size: 0: expected an integer >= 1" in capsys.readouterr().err


def test_keep_best_returns_the_weights_of_the_lowest_validation_loss(files, tmp_path, monkeypatch):
    """Early stopping: with validation losses 3, 1, 2 at steps 8, 16, 24, the run of 24 steps
    returns the weights it had after step 16 (the same as a run of 24 steps stopped there)."""
    fake = [3.0, 1.0, 2.0]
    monkeypatch.setattr(transformer_loop, "validate", lambda *a, **k: {"val_loss": fake.pop(0) if fake else 0.0})
    model, history = run(files, "var", tmp_path / "best", steps=24, tcfg_keep_best=True)
    assert history[-1] == {"step": 24, "restored_best_step": 16, "restored_best_val_loss": 1.0}
    stopped, _ = run(files, "var", tmp_path / "stopped", steps=24, stop_after=16)  # the same schedule, 16 steps
    for (name, a), b in zip(model.state_dict().items(), stopped.state_dict().values()):
        assert torch.equal(a, b), name


def test_holdout_validates_on_training_images_the_model_never_learns_from(files, tmp_path, monkeypatch):
    """--holdout 8: the test split is never read, the 8 held-out images (unflipped) are the
    validation tokens, and neither they nor their mirror images are in the training tokens."""
    monkeypatch.setenv("VAR_TUTORIAL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path / "results"))
    seen = {}
    real_validate = transformer_loop.validate

    def spy_validate(model, cfg, quantizer, tokens, *a, **k):
        seen["val"] = tokens[0].cpu()
        return real_validate(model, cfg, quantizer, tokens, *a, **k)

    monkeypatch.setattr(transformer_loop, "validate", spy_validate)
    main(["train", "--model", "var", "--preset", "tiny", "--tokenizer", str(files["var"]["tokenizer"]),
          "--subset", "32", "--steps", "4", "--batch-size", "8", "--eval-every", "2", "--holdout", "8",
          "--name", "var_held", "--out", str(tmp_path / "run"), "--export", str(tmp_path / "var.safetensors"),
          "--device", "cpu"])
    caches = sorted(p.name for p in (tmp_path / "data" / "cache").glob("tokens_toy_*.pt"))
    assert len(caches) == 1 and "_train_" in caches[0]  # the test split was never tokenized
    cache = torch.load(tmp_path / "data" / "cache" / caches[0], weights_only=True)["tokens"]
    n = len(cache) // 2
    held = {tuple(r) for r in seen["val"].tolist()}
    assert len(seen["val"]) == 8 and held <= {tuple(r) for r in cache[:n].tolist()}
    (train, _), (val, _) = transformer_loop.hold_out((cache, torch.zeros(len(cache))), 8)
    assert torch.equal(val, seen["val"].to(val.dtype)) and len(train) == 2 * (n - 8)
    record = json.loads((tmp_path / "results" / "train_var_held.json").read_text())
    assert record["config"]["train"]["holdout"] == 8
    assert [h["step"] for h in record["metrics"]["history"] if "val_loss" in h] == [2, 4]


def test_the_references_choices_from_the_command_line(files, tmp_path, monkeypatch):
    """--key-bias off --drop-path 0.3 --dropout 0: the trained model ignores its keys' bias (changing
    it changes no logit) and drops its branches with a probability rising over the blocks to 0.3;
    both are recorded in the results file and the weights."""
    monkeypatch.setenv("VAR_TUTORIAL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path / "results"))
    main(["train", "--model", "var", "--preset", "tiny", "--tokenizer", str(files["var"]["tokenizer"]),
          "--subset", "16", "--steps", "3", "--batch-size", "8", "--eval-every", "0", "--key-bias", "off",
          "--drop-path", "0.3", "--dropout", "0", "--name", "var_ref", "--out", str(tmp_path / "run"),
          "--export", str(tmp_path / "var.safetensors"), "--device", "cpu"])
    model, tok = load_transformer(tmp_path / "var.safetensors")
    assert (model.cfg.key_bias, model.cfg.drop_path, model.cfg.dropout) == (False, 0.3, 0.0)
    keeps = [block.keep for block in model.blocks]
    assert keeps[0] == 1.0 and keeps[-1] == pytest.approx(0.7) and keeps == sorted(keeps, reverse=True)
    model.eval()
    images = to_float(training_set("toy", "train", tok.cfg.image_size, 4)[0])
    with torch.no_grad():
        tokens = tok.img_to_tokens(images)
        x, labels = tok.quantizer.teacher_forcing_input(tokens), torch.arange(4)
        before = model(labels, x)
        C = model.cfg.width
        for block in model.blocks:
            block.attn.qkv.bias[C: 2 * C] += 1.0  # the keys' part of the bias
        assert torch.equal(model(labels, x), before)
    record = json.loads((tmp_path / "results" / "train_var_ref.json").read_text())
    assert (record["config"]["model"]["key_bias"], record["config"]["model"]["drop_path"]) == (False, 0.3)
    with pytest.raises(SystemExit) as e:
        main(["train", "--model", "var", "--drop-path", "1"])
    assert e.value.code == 2


# -- exposure bias: self-forced fine-tuning and the per-scale gap ----------------------------
@pytest.fixture(scope="module")
def trained_var(files, tmp_path_factory):
    """A tiny VAR trained 40 steps on the toy tokens, saved like every exported transformer."""
    d = tmp_path_factory.mktemp("var")
    model, _ = run(files, "var", d / "run")
    tok = load_tokenizer(files["var"]["tokenizer"])
    path = save_weights(model, d / "var.safetensors", "transformer",
                        transformer_record(model.cfg, tok, files["var"]["tokenizer"]), dtype=torch.float32)
    return path


def batch(files, n=12):
    idx, labels = files["var"]["tokens"]
    return idx[:n].long(), labels[:n]


def test_self_forcing_with_fraction_zero_is_teacher_forcing(files, trained_var):
    """fraction=0 is token_loss itself, and with fraction 0.5 the teacher-forced half of the batch
    gets exactly token_loss's numbers (eval mode: no class dropout to draw differently)."""
    model, tok = load_transformer(trained_var)
    idx, labels = batch(files)
    q, cfg = tok.quantizer, model.cfg
    with torch.no_grad():
        plain = transformer_loop.token_loss(model, cfg, q, idx, labels, bf16=False)
        zero = transformer_loop.self_forced_loss(model, cfg, q, idx, labels, False, fraction=0.0)
        half = transformer_loop.self_forced_loss(model, cfg, q, idx, labels, False, fraction=0.5)
    assert torch.equal(zero[0], plain[0]) and torch.equal(zero[1], plain[1])
    assert torch.allclose(half[0][6:], plain[0][6:], atol=1e-6) and torch.equal(half[1][6:], plain[1][6:])
    assert not torch.allclose(half[0][:6], plain[0][:6])  # the self-forced half saw another context


@pytest.mark.parametrize("target", ["truth", "teacher"])
def test_self_forced_rows_learn_from_the_models_own_tokens(files, trained_var, target):
    """The self-forced rows' input is the teacher-forcing input of the model's own (argmax)
    tokens from a teacher-forced pass; their loss is against the true tokens, or against that
    pass's distribution. Written out by hand here, step by step."""
    model, tok = load_transformer(trained_var)
    idx, labels = batch(files)
    q, cfg = tok.quantizer, model.cfg
    with torch.no_grad():
        teacher = model(labels, q.teacher_forcing_input(unflatten_tokens(idx, cfg.patch_nums)))
        own = teacher.argmax(-1)
        logits = model(labels, q.teacher_forcing_input(unflatten_tokens(own, cfg.patch_nums)))
        want = (-(teacher.softmax(-1) * logits.log_softmax(-1)).sum(-1) if target == "teacher"
                else torch.nn.functional.cross_entropy(logits.transpose(1, 2), idx, reduction="none"))
        got, correct = transformer_loop.self_forced_loss(model, cfg, q, idx, labels, False, fraction=1.0,
                                                         draw="argmax", target=target)
    assert torch.allclose(got, want, atol=1e-5) and torch.equal(correct, logits.argmax(-1) == idx)
    assert not torch.equal(own, idx)  # the model's tokens are not the truth, so the inputs differed


def test_exposure_gap_is_zero_at_the_first_scale(files, trained_var):
    """Scale 1 has no coarser scale, so its context is the same in both measurements; the later
    scales see the model's own draws and, for this barely trained model, do worse."""
    model, tok = load_transformer(trained_var)
    m = transformer_loop.exposure_gap(model, model.cfg, tok.quantizer, batch(files, 32), batch_size=8, seed=3)
    true, own = m["true_context"], m["own_context"]
    assert own["loss_per_scale"][0] == pytest.approx(true["loss_per_scale"][0], abs=1e-6)
    assert own["loss_per_scale"][-1] > true["loss_per_scale"][-1]
    again = transformer_loop.exposure_gap(model, model.cfg, tok.quantizer, batch(files, 32), batch_size=8, seed=3)
    assert again == m  # seeded: the same draws


def finetune(files, trained_var, out, steps=16, fraction=0.5, **kw):
    tok = load_tokenizer(files["var"]["tokenizer"])
    model, _ = load_transformer(trained_var)
    tcfg = TransformerTrainConfig(dataset="toy", tokenizer=str(files["var"]["tokenizer"]), steps=steps, batch_size=16,
                                  lr=3e-3, warmup_steps=2, log_every=4, eval_every=0, ckpt_every=8)
    forcing = config.SelfForcing(init_from=str(trained_var), fraction=fraction)
    return train_transformer(model.cfg, tcfg, tok, out, device="cpu", compile=False, progress=False,
                             tokens=files["var"]["tokens"], self_forcing=forcing, **kw)


def test_finetuning_starts_from_the_weights_learns_and_resumes_exactly(files, trained_var, tmp_path):
    model, history = finetune(files, trained_var, tmp_path / "straight", steps=24)
    start, _ = load_transformer(trained_var)
    tok = load_tokenizer(files["var"]["tokenizer"])
    idx, labels = batch(files, 32)
    with torch.no_grad():  # the fine-tuned model does better on its own context than where it started
        before = transformer_loop.exposure_gap(start, start.cfg, tok.quantizer, (idx, labels), 8, seed=1)
        after = transformer_loop.exposure_gap(model, model.cfg, tok.quantizer, (idx, labels), 8, seed=1)
    assert after["own_context"]["loss"] < before["own_context"]["loss"]
    logged = [h["loss"] for h in history if "loss" in h]
    assert logged[0] < math.log(64) - 0.5  # it started from trained weights, not from scratch
    finetune(files, trained_var, tmp_path / "split", steps=24, stop_after=8)
    _, resumed = finetune(files, trained_var, tmp_path / "split", steps=24)
    drop_time = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa: E731
    assert drop_time(resumed) == drop_time(history)
    with pytest.raises(ValueError, match=r"was trained with self_forcing .*'fraction': 0.5.*not .*'fraction': 0.25"):
        finetune(files, trained_var, tmp_path / "split", steps=24, fraction=0.25)


def test_finetune_and_exposure_commands(files, trained_var, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAR_TUTORIAL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path / "results"))
    main(["finetune", "--weights", str(trained_var), "--dataset", "toy", "--subset", "16", "--steps", "4",
          "--batch-size", "8", "--fraction", "0.5", "--target", "teacher", "--name", "ft", "--out",
          str(tmp_path / "run"), "--export", str(tmp_path / "ft.safetensors"), "--device", "cpu"])
    record = json.loads((tmp_path / "results" / "train_ft.json").read_text())
    assert record["config"]["self_forcing"] == {"init_from": str(trained_var), "fraction": 0.5, "draw": "sample",
                                                "target": "teacher"}
    assert record["config"]["train"]["lr"] == 1e-4 and record["metrics"]["train_steps"] == 4
    main(["exposure", "--weights", str(tmp_path / "ft.safetensors"), "--dataset", "toy", "--images", "8",
          "--results", "exposure_ft", "--device", "cpu"])
    m = json.loads((tmp_path / "results" / "exposure_ft.json").read_text())["metrics"]
    assert m["images"] == 8 and m["patch_nums"] == [1, 2, 4] and len(m["loss_gap_per_scale"]) == 3
    assert m["loss_gap_per_scale"][0] == pytest.approx(0, abs=1e-5)
    assert "loss (own context)" in capsys.readouterr().out
    for bad, message in ((["--fraction", "2"], "argument --fraction: 2: expected a fraction of the batch in [0, 1]"),
                         (["--draw", "top"], "argument --draw: invalid choice: 'top'")):
        with pytest.raises(SystemExit) as e:
            main(["finetune", *bad])
        assert e.value.code == 2 and message in capsys.readouterr().err
    # early stopping on held-out training images, as the train command does
    main(["finetune", "--weights", str(trained_var), "--dataset", "toy", "--subset", "24", "--steps", "4",
          "--batch-size", "8", "--holdout", "8", "--eval-every", "2", "--keep-best", "--name", "ft_best", "--out",
          str(tmp_path / "run_best"), "--export", str(tmp_path / "ft_best.safetensors"), "--device", "cpu"])
    record = json.loads((tmp_path / "results" / "train_ft_best.json").read_text())
    evals = [h for h in record["metrics"]["history"] if "val_loss" in h]
    assert record["config"]["train"]["keep_best"] and record["config"]["train"]["holdout"] == 8 and len(evals) == 2
    assert record["metrics"]["exported_weights_of_step"] == min(evals, key=lambda h: h["val_loss"])["step"]
    tok = load_tokenizer(files["raster"]["tokenizer"])
    cfg = transformer_config("raster", "tiny", tok.cfg)
    raster = save_weights(build_transformer(cfg), tmp_path / "r.safetensors", "transformer",
                          transformer_record(cfg, tok, files["raster"]["tokenizer"]))
    with pytest.raises(SystemExit) as e:
        main(["finetune", "--weights", str(raster), "--dataset", "toy"])
    assert e.value.code == 2 and "holds a 'raster' transformer: expected VAR" in capsys.readouterr().err
