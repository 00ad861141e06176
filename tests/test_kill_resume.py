"""A training process killed with SIGKILL resumes from its last checkpoint and ends exactly
where an uninterrupted run ends: the same losses, bit for bit (CPU)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from test_train_transformer import tiny_tokenizer

from var_tutorial.config import tokenizer_preset
from var_tutorial.pretrained import save_weights

ROOT = Path(__file__).resolve().parents[1]
STEPS = 300


def train_command(tokenizer: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "var_tutorial", "train", "--model", "var", "--preset", "tiny",
            "--tokenizer", str(tokenizer), "--subset", "48", "--steps", str(STEPS), "--batch-size", "8",
            "--log-every", "10", "--eval-every", "50", "--ckpt-every", "10", "--out", str(out / "run"),
            "--export", str(out / "var.safetensors"), "--device", "cpu", "--no-compile"]


def environment(out: Path) -> dict:
    return {**os.environ, "VAR_TUTORIAL_DATA": str(out / "data"), "VAR_TUTORIAL_RESULTS": str(out / "results"),
            "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}


def checkpoint_step(path: Path) -> int:
    try:
        return torch.load(path, weights_only=True)["step"]
    except Exception:  # not written yet (the save itself is atomic: never half a file)
        return -1


def history(out: Path) -> list[dict]:
    record = json.loads((out / "results" / "train_var_toy.json").read_text())
    return [{k: v for k, v in h.items() if k != "seconds"} for h in record["metrics"]["history"]]


def test_sigkill_then_resume_gives_the_same_losses(tmp_path):
    torch.manual_seed(0)
    tokenizer = save_weights(tiny_tokenizer("multiscale"), tmp_path / "tok.safetensors", "tokenizer",
                             tokenizer_preset("tiny").to_dict(), dtype=torch.float32)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(train_command(tokenizer, straight), env=environment(straight), check=True, capture_output=True)

    proc = subprocess.Popen(train_command(tokenizer, killed), env=environment(killed),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt, deadline = killed / "run" / "ckpt.pt", time.time() + 240
    while checkpoint_step(ckpt) < 30 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up, no last checkpoint: as if the machine died
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    stopped_at = checkpoint_step(ckpt)
    assert 30 <= stopped_at < STEPS and not (killed / "var.safetensors").exists()

    resumed = subprocess.run(train_command(tokenizer, killed), env=environment(killed), check=True,
                             capture_output=True, text=True)
    assert f"resumed from {ckpt} at step {stopped_at}/{STEPS}" in resumed.stdout
    assert history(killed) == history(straight)  # every logged loss and accuracy, bit for bit
    a = torch.load(straight / "run" / "ckpt.pt", weights_only=True)["model"]
    b = torch.load(ckpt, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
