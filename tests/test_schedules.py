"""Scale schedules of one's own: `train-tokenizer --patch-nums` trains a tokenizer on another
schedule (or fine-tunes one of another schedule to it, --init-from), names its files after the
schedule, refuses a schedule VAR cannot use in one line, and a VAR trained on its tokens takes
the schedule from it."""
import pytest
import torch

from var_tutorial.cli import main
from var_tutorial.config import TokenizerConfig
from var_tutorial.pretrained import load_tokenizer, load_transformer, read_weights, save_weights
from var_tutorial.records import read_results
from var_tutorial.vqvae import VQVAE

TINY = ["--preset", "tiny", "--dataset", "toy", "--subset", "32", "--batch-size", "8", "--log-every", "1",
        "--no-compile", "--device", "cpu"]


def tokenizer(tmp_path, name, *extra, steps=2):
    out = tmp_path / f"{name}.safetensors"
    main(["train-tokenizer", *TINY, "--steps", str(steps), "--out", str(tmp_path / name), "--export", str(out), *extra])
    return out


@pytest.fixture(autouse=True)
def results_here(tmp_path, monkeypatch):
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path / "results"))


def test_a_schedule_of_ones_own_is_trained_and_named_after_it(tmp_path):
    path = tokenizer(tmp_path, "s134", "--patch-nums", "1", "3", "4")
    assert load_tokenizer(path).cfg.patch_nums == (1, 3, 4)
    record = read_results("train_tokenizer_tiny_s1-3-4")  # the default name carries the schedule
    assert record["config"]["model"]["patch_nums"] == [1, 3, 4]
    tokenizer(tmp_path, "named", "--patch-nums", "1", "4", "--name", "two_scales")
    assert read_results("train_two_scales")["config"]["model"]["patch_nums"] == [1, 4]


def test_a_tokenizer_is_fine_tuned_to_another_schedule(tmp_path):
    start = tokenizer(tmp_path, "s124")
    tuned = tokenizer(tmp_path, "tuned", "--patch-nums", "1", "3", "4", "--init-from", str(start), "--lr", "1e-12",
                      steps=1)
    a, b = load_tokenizer(start), load_tokenizer(tuned)
    assert (a.cfg.patch_nums, b.cfg.patch_nums) == ((1, 2, 4), (1, 3, 4))
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):  # the same weights (lr ~ 0)
        if x.is_floating_point():
            assert torch.allclose(x, y, atol=1e-3), name
    assert read_results("train_tokenizer_tiny_s1-3-4_stage2")["config"]["train"]["init_from"] == str(start)


def test_only_the_schedule_may_change_from_the_starting_tokenizer(tmp_path, capsys):
    start = tokenizer(tmp_path, "s124")
    cfg = read_weights(start, "tokenizer")[1]
    other = TokenizerConfig.from_dict({**cfg, "beta": 0.5})
    save_weights(VQVAE(other), tmp_path / "beta.safetensors", "tokenizer", other.to_dict())
    with pytest.raises(SystemExit) as stop:
        main(["train-tokenizer", *TINY, "--steps", "1", "--out", str(tmp_path / "x"), "--export",
              str(tmp_path / "x.safetensors"), "--patch-nums", "1", "3", "4", "--init-from", str(tmp_path / "beta.safetensors")])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert stop.value.code == 2 and "differs in beta (0.5, not 0.25)" in line and "only the scale schedule" in line


@pytest.mark.parametrize("argv, message", [
    (["--patch-nums", "1", "2", "3"], "--patch-nums 1 2 3: the last scale must equal the latent size 4x4"),
    (["--patch-nums", "2", "4"], "--patch-nums 2 4: VAR's first scale must be 1"),
    (["--patch-nums", "1", "3", "2", "4"], "--patch-nums 1 3 2 4: the schedule must increase strictly"),
    (["--patch-nums", "1", "4", "--quantizer", "single"], "--patch-nums 1 4: a schedule is for the multi-scale"),
    (["--patch-nums", "0", "4"], "argument --patch-nums: 0: expected an integer >= 1"),
])
def test_a_schedule_var_cannot_use_is_refused_in_one_line(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train-tokenizer", *TINY, "--steps", "1", "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and message in err[-1], err
    assert not (tmp_path / "x").exists()  # refused before any work


def test_var_takes_its_schedule_from_the_tokenizer(tmp_path):
    tok = tokenizer(tmp_path, "s134", "--patch-nums", "1", "3", "4")
    out = tmp_path / "var.safetensors"
    main(["train", "--model", "var", *TINY, "--tokenizer", str(tok), "--steps", "2", "--out", str(tmp_path / "var"),
          "--export", str(out), "--name", "var_s134"])
    model, tokenizer_ = load_transformer(out)
    assert model.cfg.patch_nums == tokenizer_.cfg.patch_nums == (1, 3, 4) and model.cfg.num_tokens == 1 + 9 + 16


def test_one_phi_per_scale_cannot_change_the_number_of_scales(tmp_path):
    """phi_shared=0 gives every scale its own phi conv: a schedule of another length has another
    number of them, so the starting weights do not fit, and the message says why."""
    from var_tutorial.config import TokenizerTrainConfig, tokenizer_preset
    from var_tutorial.train import train_tokenizer

    start = tokenizer_preset("tiny", phi_shared=0)
    save_weights(VQVAE(start), tmp_path / "own_phis.safetensors", "tokenizer", start.to_dict())
    tcfg = TokenizerTrainConfig(dataset="toy", steps=1, batch_size=8, subset=32,
                                init_from=str(tmp_path / "own_phis.safetensors"))
    with pytest.raises(ValueError, match=r"the number of phi convs \(phi_shared=0: one per scale\) \(3, not 2\)"):
        train_tokenizer(tokenizer_preset("tiny", phi_shared=0, patch_nums=(1, 4)), tcfg, tmp_path / "run",
                        device="cpu", compile=False, progress=False)
