"""Record keeping: every reported number lives in results/<experiment>.json, written by the
code that measured it, together with the command, the git commit, the device and the config.

    write_results("var_cifar10", metrics, config)   # -> results/var_cifar10.json, atomically
    read_results("var_cifar10")["metrics"]          # what notebooks, tests and report.py read

The docs' tables are rendered from these files by report.py, and notebook plots read them;
no number is typed by hand. This module imports nothing of the package but `data`, so that
anything that measures can record without pulling in the rest."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from .data import REPO_ROOT, BadFileError


def results_dir() -> Path:
    """results/ in the repository, or $VAR_TUTORIAL_RESULTS (read at call time)."""
    return Path(os.environ.get("VAR_TUTORIAL_RESULTS") or REPO_ROOT / "results")


def git_commit() -> str:
    """The commit the code ran from. On the GPU machine (a copy without .git) the
    launcher passes it in VAR_TUTORIAL_COMMIT."""
    if os.environ.get("VAR_TUTORIAL_COMMIT"):
        return os.environ["VAR_TUTORIAL_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_description(device: torch.device | str | None = None) -> str:
    """The device in words, as the records store it: "NVIDIA H200 (torch 2.11.0+cu130)"."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def write_results(name: str, metrics: dict, config: dict | None = None, device=None,
                  out_dir: Path | str | None = None) -> Path:
    """Write results/<name>.json atomically and return its path."""
    out_dir = Path(out_dir or results_dir())
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "experiment": name,
        "command": "python -m var_tutorial " + " ".join(sys.argv[1:]) if sys.argv else "",
        "git_commit": git_commit(),
        "device": device_description(device),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": config or {},
        "metrics": metrics,
    }
    return write_json(out_dir / f"{name}.json", record)


def write_json(path: Path, record: dict) -> Path:
    """Write a JSON file atomically (a temporary file, then rename): readers never see half of it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_results(name: str, folder: Path | str | None = None) -> dict:
    """The record results/<name>.json (or <folder>/<name>.json) as a dict: experiment, command,
    git_commit, device, date, config, metrics."""
    path = Path(folder or results_dir()) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no results file {path}: it is written by the command that measures it "
                                "(docs/results.md and docs/training.md name each command)")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BadFileError(f"results file {path} is not valid JSON ({e}): it was cut short or edited by hand") from None
    if not isinstance(record, dict) or "metrics" not in record:
        raise BadFileError(f"results file {path} holds no 'metrics': expected a record written by write_results")
    return record
