"""The command line, as a student runs it."""
import json
import os
import re
import subprocess
import sys

import pytest

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
    assert len(commands) == 18
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


# -- bad input: one line that names the argument, the value and what was expected ------------------
def write_png(path, size=(32, 32), mode="RGB", colour=(200, 40, 90, 0)):
    """A flat image file of that size (width, height), PIL mode and colour; returns its path as a string."""
    from PIL import Image

    Image.new(mode, size, colour[: len(mode)]).save(path)
    return str(path)


def refused(argv, capsys) -> tuple[int, str]:
    """Run argv, which must end in a one-line error and no traceback: (exit status, that line)."""
    with pytest.raises(SystemExit) as e:  # an exception other than the exit would fail the test here
        main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return e.value.code, err.strip().splitlines()[-1]


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("VAR_TUTORIAL_DEBUG", raising=False)


def missing_gpu() -> str:
    """A CUDA device this machine lacks: 'cuda' without a GPU, else one past the last GPU."""
    import torch

    return f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


@pytest.mark.parametrize("argv, status, message", [
    # a data set that does not exist is refused before any file is looked for
    (["evaluate", "--model", "var", "--dataset", "cifar100"], 2, "argument --dataset: invalid choice: 'cifar100'"),
    (["edit", "IMG", "--dataset", "mnist"], 2, "argument --dataset: invalid choice: 'mnist'"),
    (["edit", "IMG", "--target", "10"], 2, "--target '10': expected a class index in [0, 9] or one of the cifar10"),
    (["edit", "IMG", "--dataset", "imagenette64", "--target", "tench"], 2,
     "--dataset imagenette64 has 64 px images, but var_cifar10 works on 32 px ones"),
    # NaN and infinity pass a check such as `value < 0`: every number the command line takes is checked finite
    (["quickstart", "--cfg", "nan"], 2, "argument --cfg: nan: expected a guidance strength >= 0"),
    (["edit", "IMG", "--cfg", "inf"], 2, "argument --cfg: inf: expected a guidance strength >= 0"),
    (["evaluate", "--model", "var", "--top-p", "nan"], 2, "argument --top-p: nan: expected a probability in (0, 1]"),
    (["evaluate", "--model", "var", "--temperature", "0"], 2, "argument --temperature: 0: expected a temperature > 0"),
    (["train", "--model", "var", "--lr", "inf"], 2, "argument --lr: inf: expected a learning rate > 0"),
    (["train", "--model", "var", "--minutes", "nan"], 2, "argument --minutes: nan: expected a number of minutes"),
    (["scaling", "--dropout", "nan"], 2, "argument --dropout: nan: expected a probability in [0, 1)"),
    (["bench", "--quick", "--budget-minutes", "inf"], 2, "argument --budget-minutes: inf: expected a number of"),
    (["train-tokenizer", "--warmup", "-1"], 2, "argument --warmup: -1: expected an integer >= 0"),
    # devices: checked before any work, not by the driver's error halfway through
    (["quickstart", "--device", "GPU"], 2, "argument --device: GPU: "),
    (["edit", "IMG", "--device", "gpu"], 2, "argument --device: 'gpu': expected cpu, cuda, cuda:<index> or mps"),
    # regions that would edit nothing or everything
    (["edit", "IMG", "--box", "0", "0", "32", "32"], 2, "--box 0 0 32 32 covers the whole 32x32 image"),
    (["edit", "IMG", "--mask-file", "BLACK"], 2, "black.png marks no pixel to regenerate: expected white where"),
    # bad files: exit status 1
    (["edit", "MISSING"], 1, "image MISSING does not exist"),
    (["edit", "IMG", "--weights", "MISSING"], 1, "weights file MISSING does not exist. Shipped names are"),
    (["edit", "IMG", "--weights", "tokenizer_cifar10"], 1, "holds a 'tokenizer' model: expected a 'transformer' model"),
    (["edit", "IMG", "--out", "IMG"], 1, "--out IMG: the folder cannot be made"),
    (["merge-scaling", "GARBAGE", "GARBAGE"], 1, "results file GARBAGE.json is not valid JSON"),
    (["prepare-data", "--archive-dir", "MISSING"], 1, "--archive-dir MISSING is not a folder"),
    (["make-exercises", "--answers", "MISSING", "--out", "MISSING"], 1, "--answers MISSING does not exist"),
])
def test_bad_input_is_one_line_naming_the_argument_and_the_value(argv, status, message, tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path))
    names = {"IMG": write_png(tmp_path / "img.png"), "BLACK": write_png(tmp_path / "black.png", mode="L", colour=(0,)),
             "MISSING": str(tmp_path / "missing.png"), "GARBAGE": str(tmp_path / "garbage"), "GPU": missing_gpu()}
    (tmp_path / "garbage.json").write_text("{not json")
    argv = [names.get(a, a) for a in argv]
    if argv[0] == "edit" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    for name, value in names.items():
        message = message.replace(name, value)
    status_got, line = refused(argv, capsys)
    assert status_got == status and message in line, line
    assert line.startswith(f"python -m var_tutorial {argv[0]}: error: ")


def test_a_huge_image_is_refused_before_it_is_decoded(tmp_path, capsys, monkeypatch):
    """PIL refuses to decode an image of more than MAX_IMAGE_PIXELS (a decompression bomb: a small
    file that unpacks to gigabytes); lowered here, so that a 40x40 file stands for a 20000x20000 one."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for side in (40, 100):  # PIL warns above the limit, and raises above twice it: both are refused
        status, line = refused(["edit", write_png(tmp_path / "big.png", (side, side)), "--resize", "--device", "cpu"],
                               capsys)
        assert status == 1 and "big.png is too large to decode safely" in line and "at most 1000 pixels" in line


def test_what_edit_does_to_its_input_is_said(tmp_path, capsys):
    """Nothing is changed silently: a tiny image enlarged by --resize, and an alpha channel dropped."""
    out = ["--out", str(tmp_path / "out"), "--device", "cpu"]
    main(["edit", write_png(tmp_path / "one.png", (1, 1)), "--resize", *out])
    assert "note: image " + str(tmp_path / "one.png") + " is 1x1: resized to 32x32 (enlarged 32 times" \
        in capsys.readouterr().err
    main(["edit", write_png(tmp_path / "rgba.png", mode="RGBA"), *out])
    assert "rgba.png is RGBA with transparency: its alpha channel is dropped" in capsys.readouterr().err
    assert (tmp_path / "out" / "rgba_edited.png").exists()


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    """--debug (before or after the command) or VAR_TUTORIAL_DEBUG=1 lets the exception through."""
    argv = ["edit", write_png(tmp_path / "img.png"), "--target", "10", "--out", str(tmp_path), "--device", "cpu"]
    for args in (argv + ["--debug"], ["--debug", *argv]):
        with pytest.raises(ValueError, match=r"--target '10': expected a class index"):
            main(args)
    monkeypatch.setenv("VAR_TUTORIAL_DEBUG", "1")
    with pytest.raises(ValueError, match=r"--target '10': expected a class index"):
        main(argv)


def test_a_real_process_prints_one_line_and_exits_with_the_status(tmp_path):
    r = subprocess.run([sys.executable, "-m", "var_tutorial", "edit", str(tmp_path / "missing.png")],
                       capture_output=True, text=True, env={**os.environ, "VAR_TUTORIAL_DEBUG": ""})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"python -m var_tutorial edit: error: image {tmp_path}/missing.png "
                                             "does not exist"]
