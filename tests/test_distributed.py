"""Training through torchrun on two CPU processes (gloo): the same global batch gives the same
losses as one process, only rank 0 writes, and a failure on one rank stops both with its error."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from test_train_transformer import tiny_tokenizer

from var_tutorial import distributed
from var_tutorial.config import tokenizer_preset
from var_tutorial.pretrained import save_weights

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    return save_weights(tiny_tokenizer("multiscale"), d / "ms.safetensors", "tokenizer",
                        tokenizer_preset("tiny", "multiscale").to_dict(), dtype=torch.float32)


def launch(args, tmp_path, name, procs=1, timeout=240):
    """python -m var_tutorial <args> in one process, or through torchrun in `procs` processes."""
    env = {**os.environ, "VAR_TUTORIAL_RESULTS": str(tmp_path / name), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"] if procs > 1 \
        else [sys.executable]
    return subprocess.run(head + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def tail(out: subprocess.CompletedProcess, chars: int = 8000) -> str:
    """The end of a failed run's stderr without its progress bars, for the assertion message."""
    return "\n".join(line for line in out.stderr.splitlines() if "it/s" not in line and "s/it" not in line)[-chars:]


def history(tmp_path, name, experiment):
    return json.loads((tmp_path / name / f"{experiment}.json").read_text())["metrics"]["history"]


def test_two_processes_learn_like_one(tmp_path, tokenizer_file, monkeypatch):
    for name, procs in (("one", 1), ("two", 2)):
        args = ["-m", "var_tutorial", "train", "--model", "var", "--preset", "tiny", "--tokenizer", str(tokenizer_file),
                "--subset", "48", "--steps", "8", "--batch-size", "16", "--log-every", "1", "--eval-every", "4",
                "--out", str(tmp_path / name / "run"), "--export", str(tmp_path / name / "var.safetensors")]
        out = launch(args, tmp_path, name, procs)
        assert out.returncode == 0, tail(out)
        assert out.stdout.count("saved ") == 1  # rank 0 alone exported and wrote the results
    one, two = history(tmp_path, "one", "train_var_toy"), history(tmp_path, "two", "train_var_toy")
    assert [h["step"] for h in one] == [h["step"] for h in two] == list(range(1, 9))
    # the same global batch and the same steps; only the class-dropout draws differ between the runs
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    vals = [(a["val_loss"], b["val_loss"]) for a, b in zip(one, two) if "val_loss" in a]
    assert len(vals) == 2 and all(b == pytest.approx(a, rel=1e-4) for a, b in vals)
    assert two[0]["loss"] == pytest.approx(one[0]["loss"], rel=1e-6)  # before the first update: nearly equal
    # the report that compares the two runs (results/ddp_scaling.json on the GPUs)
    monkeypatch.setenv("VAR_TUTORIAL_RESULTS", str(tmp_path / "report"))
    path = distributed.scaling_report(tmp_path / "one", tmp_path / "two", "train_var_toy", skip=2, first=4)
    assert path == tmp_path / "report" / "ddp_scaling.json"  # the default name, not a run's
    assert json.loads(path.read_text())["experiment"] == "ddp_scaling"
    report = json.loads(path.read_text())["metrics"]
    assert (report["single"]["processes"], report["multi"]["processes"]) == (1, 2)
    assert report["single"]["first_losses"] == [h["loss"] for h in one[:4]]
    assert report["first_losses_max_relative_difference"] < 1e-4 and report["speedup"] > 0
    with pytest.raises(ValueError, match="no steps after step 50"):
        distributed.scaling_report(tmp_path / "one", tmp_path / "two", "train_var_toy", skip=50)


def test_tokenizer_trains_on_two_processes(tmp_path):
    args = ["-m", "var_tutorial", "train-tokenizer", "--preset", "tiny", "--dataset", "toy", "--subset", "32",
            "--steps", "4", "--batch-size", "8", "--log-every", "1", "--no-compile",
            "--out", str(tmp_path / "run"), "--export", str(tmp_path / "tok.safetensors")]
    one, two = (launch(args[:-4] + ["--out", str(tmp_path / n / "run"), "--export", str(tmp_path / n / "t.safetensors")],
                       tmp_path, n, procs) for n, procs in (("one", 1), ("two", 2)))
    assert one.returncode == 0 and two.returncode == 0, tail(one) + tail(two)
    a, b = (history(tmp_path, n, "train_tokenizer_tiny") for n in ("one", "two"))
    assert [h["step"] for h in a] == [h["step"] for h in b]
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-3) and y["psnr"] == pytest.approx(x["psnr"], rel=1e-3)


def test_a_failing_rank_stops_every_rank(tmp_path, tokenizer_file):
    script = tmp_path / "fail_on_rank_1.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        import var_tutorial.train.transformer as loop
        from var_tutorial.cli import main

        real = loop.batch_indices
        def batch_indices(n, step, batch_size, seed):
            if step == 3 and os.environ["RANK"] == "1":
                raise RuntimeError("rank 1 failed on purpose at step 3")
            return real(n, step, batch_size, seed)
        loop.batch_indices = batch_indices
        sys.exit(main(["train", "--model", "var", "--preset", "tiny", "--tokenizer", {str(tokenizer_file)!r},
                       "--subset", "48", "--steps", "50", "--batch-size", "16", "--eval-every", "0",
                       "--out", {str(tmp_path / "run")!r}, "--export", {str(tmp_path / "v.safetensors")!r}]))
    """))
    out = launch([str(script)], tmp_path, "fail", procs=2, timeout=120)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "rank 1 failed on purpose at step 3" in text and "rank: 1" in text  # torchrun names the failing rank
    assert not (tmp_path / "v.safetensors").exists()  # nothing was exported


def test_a_batch_must_split_evenly(monkeypatch):
    assert torch.equal(distributed.shard(torch.arange(6)), torch.arange(6))  # one process: the whole batch
    monkeypatch.setattr(distributed, "world", lambda: 4)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    assert distributed.shard(torch.arange(8)).tolist() == [2, 3]
    with pytest.raises(ValueError, match="batch_size=6: expected a multiple of the number of processes \\(4\\)"):
        distributed.shard(torch.arange(6))


def test_a_time_budget_ends_every_rank_at_the_same_step(tmp_path, tokenizer_file):
    """--minutes: rank 0's step count is everyone's, and a passed deadline on any rank ends all
    of them (otherwise one rank would wait for the other forever)."""
    args = ["-m", "var_tutorial", "train", "--model", "var", "--preset", "tiny", "--tokenizer", str(tokenizer_file),
            "--subset", "48", "--minutes", "0.05", "--batch-size", "16", "--eval-every", "0",
            "--out", str(tmp_path / "run"), "--export", str(tmp_path / "v.safetensors")]
    out = launch(args, tmp_path, "budget", procs=2, timeout=180)
    assert out.returncode == 0, tail(out)
    steps = history(tmp_path, "budget", "train_var_toy")[-1]["step"]
    assert steps > 60 and out.stdout.count("steps fit in 0.05 min") == 1  # printed by rank 0 only
