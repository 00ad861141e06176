"""Shipped weights: they load with nothing but the package, match their sha256, and
broken files give errors that name the file."""
import json
import shutil

import pytest
import torch

from var_tutorial.config import tokenizer_preset, transformer_preset
from var_tutorial.data import sha256_file
from var_tutorial.pretrained import (
    PRETRAINED_DIR,
    SHIPPED,
    load_tokenizer,
    load_transformer,
    read_weights,
    save_weights,
    transformer_record,
)
from var_tutorial.transformer import build_transformer
from var_tutorial.vqvae import VQVAE


def test_shipped_files_match_their_sidecars_and_budget():
    total = 0
    for name, (file, _) in SHIPPED.items():
        path = PRETRAINED_DIR / file
        side = json.loads(path.with_suffix(".json").read_text())
        assert side["sha256"] == sha256_file(path), name
        assert "cifar10_test" in side["metrics"], name
        total += path.stat().st_size
    assert total <= 32e6  # all shipped weights together stay within 32 MB


def test_shipped_tokenizers_rebuild_from_the_file_alone():
    ms, ss = load_tokenizer("tokenizer_cifar10"), load_tokenizer("vqvae_cifar10")
    assert ms.cfg.quantizer == "multiscale" and ms.patch_nums == (1, 2, 3, 4, 6, 8)
    assert ss.cfg.quantizer == "single" and ss.patch_nums == (8,)
    assert not ms.training


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = VQVAE(tokenizer_preset("tiny")).eval()
    path = save_weights(model, tmp_path / "t.safetensors", "tokenizer", model.cfg.to_dict(), dtype=torch.float32)
    again = load_tokenizer(path)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert all(torch.equal(a, b) for a, b in zip(model.img_to_tokens(x), again.img_to_tokens(x)))


@pytest.fixture()
def copy_of_shipped(tmp_path):
    src = PRETRAINED_DIR / "vqvae_cifar10.safetensors"
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def test_corrupted_file_is_refused(copy_of_shipped):
    data = bytearray(copy_of_shipped.read_bytes())
    data[-100] ^= 0xFF
    copy_of_shipped.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"weights file .*vqvae_cifar10.safetensors is corrupted.*sha256"):
        load_tokenizer(copy_of_shipped)


def test_truncated_file_is_refused(copy_of_shipped):
    copy_of_shipped.write_bytes(copy_of_shipped.read_bytes()[:1000])
    copy_of_shipped.with_suffix(".json").unlink()  # no sidecar: the format check must catch it
    with pytest.raises(ValueError, match=r"weights file .*vqvae_cifar10.safetensors is not a readable safetensors"):
        load_tokenizer(copy_of_shipped)


def test_missing_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"weights file .*nope.safetensors does not exist.*Shipped names"):
        load_tokenizer(tmp_path / "nope.safetensors")


def test_wrong_kind_is_refused(tmp_path):
    model = VQVAE(tokenizer_preset("tiny"))
    path = save_weights(model, tmp_path / "x.safetensors", "transformer", model.cfg.to_dict())
    with pytest.raises(ValueError, match=r"holds a 'transformer' model: expected a 'tokenizer' model"):
        read_weights(path, "tokenizer")


def test_pickle_is_never_needed(copy_of_shipped):
    """Shipped files are safetensors: plain bytes plus a JSON header, no pickle opcodes."""
    head = copy_of_shipped.read_bytes()[:8]
    header_len = int.from_bytes(head, "little")
    header = json.loads(copy_of_shipped.read_bytes()[8 : 8 + header_len])
    assert header["__metadata__"]["kind"] == "tokenizer"


def test_a_transformer_file_that_pairs_a_misfit_tokenizer_is_refused(tmp_path):
    """Training never writes such a file, but a record made by hand may pair a transformer with a
    tokenizer whose tokens it cannot read: loading checks that they fit (config.check_fits)."""
    tok = VQVAE(tokenizer_preset("tiny"))
    tok_file = save_weights(tok, tmp_path / "tok.safetensors", "tokenizer", tok.cfg.to_dict())
    cfg = transformer_preset("tiny", vocab_size=32)  # the tokenizer has 64 codes
    weights = save_weights(build_transformer(cfg), tmp_path / "var.safetensors", "transformer",
                           transformer_record(cfg, tok, tok_file))
    with pytest.raises(ValueError, match=r"the var transformer has \{'vocab_size': 32, .*expected its tokenizer's"):
        load_transformer(weights)
