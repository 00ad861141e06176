"""The command line, as a student runs it."""
import json
import os
import re
import subprocess
import sys

from var_tutorial.cli import main


def test_quickstart_writes_reconstructions_samples_the_generation_strip_and_an_edit(tmp_path, capsys):
    main(["quickstart", "--out", str(tmp_path), "--device", "cpu"])
    out = capsys.readouterr().out
    for name in ("reconstruction", "class_grid", "generation_strip", "inpainting"):
        png = tmp_path / f"quickstart_{name}.png"
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "k=6:" in out
    # the shipped VAR, judged by the shipped classifier: most of its 80 samples show their class
    agreement = int(re.search(r"names the class VAR was asked for in (\d+)% of these 80 samples", out).group(1))
    assert agreement >= 60
    # the in-painting keeps the pixels outside the hole close to the test images
    assert float(re.search(r"outside it, ([\d.]+) dB from the original", out).group(1)) > 20


def test_eval_tokenizer_writes_results(tmp_path, monkeypatch):
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path))
    import shutil

    from var_tutorial.pretrained import PRETRAINED_DIR

    for suffix in (".safetensors", ".json"):  # evaluate a copy: the shipped sidecar stays untouched
        shutil.copy(PRETRAINED_DIR / f"tokenizer_cifar10{suffix}", tmp_path / f"tokenizer_cifar10{suffix}")
    main(["eval-tokenizer", "--weights", str(tmp_path / "tokenizer_cifar10.safetensors"), "--limit", "50",
          "--device", "cpu", "--results", "t"])
    record = json.loads((tmp_path / "t.json").read_text())
    m = record["metrics"]["tokenizers"]["tokenizer_cifar10"]
    assert m["images"] == 50 and len(m["psnr_per_scale"]) == 6
    assert all(b > a for a, b in zip(m["psnr_per_scale"], m["psnr_per_scale"][1:]))
    assert record["git_commit"] and record["device"].startswith("CPU")


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "var_tutorial", "--help"], capture_output=True, text=True).stdout
    for cmd in ("quickstart", "prepare-data", "train-tokenizer", "eval-tokenizer"):
        assert cmd in out


def test_every_command_is_handled_in_the_module_that_parses_it():
    """cli/: one module per command group, each command's parser next to its handler, and
    __main__.py only hands over to var_tutorial.cli.main."""
    import argparse
    from pathlib import Path

    import var_tutorial
    from var_tutorial import cli

    commands = []
    for group in cli.GROUPS:
        sub = argparse.ArgumentParser().add_subparsers()
        group.register(sub)
        for name, parser in sub.choices.items():
            assert parser.get_default("func").__module__ == group.__name__, name
            commands.append(name)
    assert commands == list(cli.parser()._subparsers._group_actions[0].choices)  # every command, in --help's order
    assert len(commands) == 16
    main_py = Path(var_tutorial.__file__).with_name("__main__.py").read_text()
    assert len(main_py.splitlines()) <= 40 and "from .cli import main" in main_py


def test_unknown_preset_is_refused():
    r = subprocess.run([sys.executable, "-m", "var_tutorial", "train-tokenizer", "--preset", "mnist"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice: 'mnist'" in r.stderr


def test_quickstart_train_path_runs_within_its_budget(tmp_path, monkeypatch, capsys):
    """`make quickstart ARGS=--train` on a GPU trains for minutes; here a 2-second budget, 40
    images and 2 samples per class check the whole path (train both, export, evaluate,
    reload, figures) on the CPU."""
    monkeypatch.delenv("VAR_TUTORIAL_RESULTS", raising=False)  # the default: results under --out
    main(["quickstart", "--train", "--minutes", "0.03", "--subset", "40", "--samples-per-class", "2",
          "--per-class", "2", "--out", str(tmp_path), "--device", "cpu"])
    for name in ("tokenizer_cifar10", "var_cifar10"):
        assert (tmp_path / f"{name}.safetensors").exists() and (tmp_path / "runs" / name / "ckpt.pt").exists()
    evaluation = json.loads((tmp_path / "results" / "var_cifar10.json").read_text())["metrics"]
    assert [e["cfg"] for e in evaluation["sweep"]] == [1, 4, 8, 16] and evaluation["samples_per_class"] == 2
    assert "VAR_TUTORIAL_RESULTS" not in os.environ  # put back as it was
    assert (tmp_path / "runs" / "tokenizer_cifar10" / "ckpt.pt").exists()
    assert (tmp_path / "quickstart_reconstruction.png").exists()
    assert json.loads((tmp_path / "results" / "train_tokenizer_cifar10.json").read_text())["metrics"]["history"]


def test_figures_draws_the_quickstart_pictures_for_imagenette(tmp_path, capsys):
    """`figures` at 64 px with the paper's 10 scales, on small untrained models (the trained
    Imagenette weights are not shipped): four pictures, and one PSNR per scale."""
    import torch

    from var_tutorial.classifier import Classifier
    from var_tutorial.config import ClassifierConfig, tokenizer_preset, transformer_config
    from var_tutorial.pretrained import load_tokenizer, save_weights, transformer_record
    from var_tutorial.transformer import build_transformer
    from var_tutorial.vqvae import VQVAE

    torch.manual_seed(0)
    tok_cfg = tokenizer_preset("imagenette64", base_channels=16, latent_channels=8, vocab_size=64)
    tok_file = save_weights(VQVAE(tok_cfg), tmp_path / "tok.safetensors", "tokenizer", tok_cfg.to_dict())
    cfg = transformer_config("var", "imagenette64", tok_cfg, depth=1, width=32, heads=2)
    assert cfg.num_tokens == 680 and len(cfg.patch_nums) == 10
    tokenizer = load_tokenizer(tok_file)
    var_file = save_weights(build_transformer(cfg), tmp_path / "var.safetensors", "transformer",
                            transformer_record(cfg, tokenizer, tok_file))
    cls = Classifier(ClassifierConfig(width=4))
    cls_file = save_weights(cls, tmp_path / "cls.safetensors", "classifier", cls.cfg.to_dict())
    main(["figures", "--dataset", "imagenette64", "--tokenizer", str(tok_file), "--var", str(var_file),
          "--classifier", str(cls_file), "--per-class", "1", "--cfg", "2", "--prefix", "i64", "--out", str(tmp_path / "f"),
          "--device", "cpu"])
    out = capsys.readouterr().out
    for name in ("reconstruction", "class_grid", "generation_strip", "inpainting"):
        assert (tmp_path / "f" / f"i64_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "k=10:" in out and "k=11:" not in out
    assert "of these 10 samples" in out and "centre quarter of 10 test images" in out
