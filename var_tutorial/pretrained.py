"""Saving and loading weights, and the registry of shipped checkpoints.

Shipped weights are safetensors files (no pickle: loading one can never run code),
stored in float16 to keep all of them under the 32 MB budget, with the model's
config inside the file's metadata, so ``load_tokenizer(path)`` rebuilds the model
with nothing else. Beside each file a JSON sidecar holds the config, the metrics
and the file's sha256, which is checked on every load.

Three kinds of weights: "tokenizer" (load_tokenizer), "transformer" (load_transformer:
VAR or the raster baseline, returned with its tokenizer), and "classifier"
(load_classifier, the evaluation classifier). A transformer's tokens mean something
only to the tokenizer that made them, so its file records that tokenizer's config and
sha256, and loading it with another tokenizer raises a ValueError.

Training checkpoints (for resuming) are different: they also hold the optimizer
state and the step, are written with torch.save, and are read back with
``torch.load(weights_only=True)``, which refuses pickled code. See train.py.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .classifier import Classifier
from .config import ClassifierConfig, TokenizerConfig, TransformerConfig, check_fits
from .data import REPO_ROOT, BadFileError, sha256_file
from .records import write_json
from .transformer import ConditionalTransformer, build_transformer
from .vqvae import VQVAE

PRETRAINED_DIR = REPO_ROOT / "data" / "pretrained"

# name -> file in data/pretrained/, and the command that makes it (on one H200: see docs/training.md)
REGISTRY = {
    "tokenizer_cifar10": ("tokenizer_cifar10.safetensors",
                          "python -m var_tutorial train-tokenizer --preset cifar10"),
    "vqvae_cifar10": ("vqvae_cifar10.safetensors",
                      "python -m var_tutorial train-tokenizer --preset cifar10 --quantizer single"),
    "var_cifar10": ("var_cifar10.safetensors", "python -m var_tutorial train --model var --preset cifar10"),
    "classifier_cifar10": ("classifier_cifar10.safetensors", "python -m var_tutorial train-classifier"),
}
# the registry entries whose files are there (a fresh clone has them all; a checkout
# between a code change and its GPU run may not yet)
SHIPPED = {name: entry for name, entry in REGISTRY.items() if (PRETRAINED_DIR / entry[0]).exists()}
FORMAT_VERSION = "1"


def save_weights(model: torch.nn.Module, path, kind: str, config: dict, metrics: dict | None = None,
                 dtype: torch.dtype = torch.float16) -> Path:
    """Write model weights (cast to dtype) + config as safetensors, and the JSON sidecar. Atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous().cpu()
               for k, v in model.state_dict().items()}
    meta = {"kind": kind, "config": json.dumps(config), "format_version": FORMAT_VERSION}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    sidecar = {"kind": kind, "file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
               "dtype": str(dtype).replace("torch.", ""), "config": config, "metrics": metrics or {}}
    write_json(path.with_suffix(".json"), sidecar)
    return path


def resolve(name_or_path) -> Path:
    """A registry name ('tokenizer_cifar10') or a path -> the weights file, with a clear error if absent."""
    if str(name_or_path) in REGISTRY:
        path, how = PRETRAINED_DIR / REGISTRY[str(name_or_path)][0], REGISTRY[str(name_or_path)][1]
    else:
        path, how = Path(name_or_path), None
    if path.is_dir():
        raise IsADirectoryError(f"weights file {path} is a folder: expected a .safetensors file or one of {sorted(REGISTRY)}")
    if not path.exists():
        hint = f" It is made by `{how}`." if how else f" Shipped names are {sorted(REGISTRY)}."
        raise FileNotFoundError(f"weights file {path} does not exist.{hint}")
    return path


def read_weights(name_or_path, expected_kind: str) -> tuple[dict, dict, Path]:
    """Load (state_dict in float32, config dict, path), checking the sha256 and the kind."""
    path = resolve(name_or_path)
    side = path.with_suffix(".json")
    if side.exists():
        try:
            want = json.loads(side.read_text()).get("sha256")
        except (json.JSONDecodeError, AttributeError) as e:
            raise BadFileError(f"the sidecar {side} of weights file {path} is not the JSON object that save_weights "
                               f"writes ({e}): restore it (git checkout -- {side.name}) or delete it") from None
        got = sha256_file(path)
        if want and want != got:
            raise BadFileError(
                f"weights file {path} is corrupted or was changed: its sha256 is {got}, "
                f"but {side.name} records {want}. Restore it (git checkout -- {path.name}) or retrain."
            )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise BadFileError(f"weights file {path} is not a readable safetensors file ({e}); it may be truncated") from e
    kind = meta.get("kind")
    if kind != expected_kind:
        raise BadFileError(f"weights file {path} holds a {kind!r} model: expected a {expected_kind!r} model")
    config = json.loads(meta["config"])
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return state, config, path


def load_tokenizer(name_or_path="tokenizer_cifar10", device="cpu") -> VQVAE:
    """Rebuild a tokenizer (multi-scale or single-scale) from a weights file, in eval mode."""
    state, config, path = read_weights(name_or_path, "tokenizer")
    model = VQVAE(TokenizerConfig.from_dict(config))
    _load_state(model, state, path)
    return model.to(device).eval()


def _load_state(model: torch.nn.Module, state: dict, path: Path) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise BadFileError(
            f"weights file {path} does not match the model its config describes: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


# -- transformers: a model is only meaningful with the tokenizer whose tokens it learned --
def transformer_record(cfg: TransformerConfig, tokenizer: VQVAE, tokenizer_file) -> dict:
    """What a transformer's checkpoint and weights file say about the model and its tokenizer:
    the transformer's config, the tokenizer's config, its file (a registry name or a path)
    and that file's sha256."""
    return {"model": cfg.to_dict(), "tokenizer": tokenizer.cfg.to_dict(), "tokenizer_file": str(tokenizer_file),
            "tokenizer_sha256": sha256_file(resolve(tokenizer_file))}


def check_tokenizer(record: dict, tokenizer: VQVAE, tokenizer_sha256: str | None, source) -> None:
    """Refuse a tokenizer other than the one the transformer was trained on (see transformer_record)."""
    want = TokenizerConfig.from_dict(record["tokenizer"]).to_dict()
    got = tokenizer.cfg.to_dict()
    if got != want:
        diff = ", ".join(f"{k}={got[k]!r} (expected {want[k]!r})" for k in want if got[k] != want[k])
        raise ValueError(
            f"tokenizer does not match the transformer {source}: it was trained on the tokens of "
            f"{record['tokenizer_file']}, and the tokenizer given has {diff}. "
            f"Pass tokenizer={record['tokenizer_file']!r} (or leave it out to load that one)."
        )
    if tokenizer_sha256 is not None and tokenizer_sha256 != record["tokenizer_sha256"]:
        raise ValueError(
            f"tokenizer does not match the transformer {source}: its config is right, but its weights file "
            f"has sha256 {tokenizer_sha256[:16]}..., and the transformer was trained on the tokens of "
            f"{record['tokenizer_file']} with sha256 {record['tokenizer_sha256'][:16]}... Other weights give "
            "tokens another meaning: retrain the transformer on this tokenizer, or use the original one."
        )


def load_transformer(name_or_path="var_cifar10", tokenizer=None, device="cpu") -> tuple[ConditionalTransformer, VQVAE]:
    """Rebuild a transformer (VAR or raster) and its tokenizer, both in eval mode.

    tokenizer: None loads the one the transformer was trained on (recorded in its file); a
    registry name or weights file is loaded and checked (config and sha256); a VQVAE
    object is checked by config. A mismatch raises a ValueError that says what differs.
    """
    state, record, path = read_weights(name_or_path, "transformer")
    given = record["tokenizer_file"] if tokenizer is None else tokenizer
    if isinstance(given, VQVAE):
        tok, sha = given, None
    else:
        tok, sha = load_tokenizer(given, device=device), sha256_file(resolve(given))
    check_tokenizer(record, tok, sha, source=path)  # the very tokenizer the transformer learned from...
    cfg = TransformerConfig.from_dict(record["model"])
    check_fits(tok.cfg, cfg)  # ... and one whose tokens it can read (a record made by hand may pair others)
    model = build_transformer(cfg)
    _load_state(model, state, path)
    return model.to(device).eval(), tok


def load_classifier(name_or_path="classifier_cifar10", device="cpu") -> Classifier:
    """Rebuild the evaluation classifier (classifier.py) in eval mode."""
    state, config, path = read_weights(name_or_path, "classifier")
    model = Classifier(ClassifierConfig.from_dict(config))
    _load_state(model, state, path)
    return model.to(device).eval()


def record_metrics(name_or_path, key: str, metrics: dict) -> None:
    """Add measured metrics under `key` to a weights file's sidecar (the weights are untouched)."""
    side = resolve(name_or_path).with_suffix(".json")
    if not side.exists():
        raise FileNotFoundError(f"no sidecar {side} beside the weights: it is written by save_weights")
    record = json.loads(side.read_text())
    record.setdefault("metrics", {})[key] = metrics
    write_json(side, record)


def metrics_of(name_or_path) -> dict:
    """The metrics recorded in a weights file's sidecar ({} if none)."""
    side = resolve(name_or_path).with_suffix(".json")
    return json.loads(side.read_text()).get("metrics", {}) if side.exists() else {}
