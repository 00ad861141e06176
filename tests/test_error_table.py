"""The error table of docs/errors.md: every row is run here, and its message asserted.

Each row is (area, call, error, message): `call` is the exact code shown in the table, run
with the names below in scope; it must raise `error` with `message` somewhere in its text.
The docs file is made from these rows (`python tests/test_error_table.py` rewrites it), and
a test keeps the two equal, so the table never promises an error that the code does not give.
"""
import re
import sys
from pathlib import Path

import pytest
import torch

from var_tutorial import data, editing, sampling
from var_tutorial.config import (
    ClassifierTrainConfig,
    TokenizerTrainConfig,
    TransformerTrainConfig,
    check_fits,
    tokenizer_preset,
    transformer_config,
    transformer_preset,
)
from var_tutorial.metrics import sample_images
from var_tutorial.pretrained import load_tokenizer, load_transformer
from var_tutorial.transformer import VAR, RasterTransformer
from var_tutorial.vqvae import VQVAE

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"

ROWS = [
    # tokenizing and decoding (tok: the tiny tokenizer, 16 px images, scales (1, 2, 4), 64 codes)
    ("tokenize", "tok.img_to_tokens(torch.rand(2, 3, 32, 32))", ValueError, "images has shape (2, 3, 32, 32): expected (B, 3, 16, 16)"),
    ("tokenize", "tok.img_to_tokens(torch.rand(2, 1, 16, 16))", ValueError, "images has shape (2, 1, 16, 16): expected (B, 3, 16, 16)"),
    ("tokenize", "tok.img_to_tokens(torch.rand(3, 16, 16))", ValueError, "(add a batch dimension with img[None])"),
    ("tokenize", "tok.img_to_tokens(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))", ValueError, "images has dtype torch.uint8: expected floats in [-1, 1] (convert uint8 images with data.to_float)"),
    ("tokenize", "tok.img_to_tokens(torch.full((2, 3, 16, 16), 255.0))", ValueError, "images has values in [255, 255]: expected values in [-1, 1]"),
    ("tokenize", "tok.img_to_tokens([[0.0]])", TypeError, "images is a list: expected a torch.Tensor of shape (B, 3, 16, 16)"),
    ("decode", "tok.tokens_to_img([torch.full((1, 1, 1), 999), r2, r4])", ValueError, "tokens[0] holds indices in [999, 999]: expected indices in [0, 63] (vocab_size=64)"),
    ("decode", "tok.tokens_to_img([r1.float(), r2, r4])", ValueError, "tokens[0] has dtype torch.float32: expected integer token indices"),
    ("decode", "tok.tokens_to_img([r1, torch.zeros(1, 3, 3, dtype=torch.long), r4])", ValueError, "tokens[1] has shape (1, 3, 3): expected (B, 2, 2) for scale 2"),
    ("decode", "tok.tokens_to_img([r1, r2, r4, r4])", ValueError, "tokens has 4 token maps: expected 1..3 (one per scale of (1, 2, 4))"),
    # configurations
    ("config", "tokenizer_preset('tiny', patch_nums=(1, 3, 2))", ValueError, "patch_nums=(1, 3, 2): the schedule must increase strictly"),
    ("config", "tokenizer_preset('mnist')", ValueError, "preset='mnist': unknown preset; expected one of ['cifar10', 'imagenette64', 'tiny']"),
    ("config", "tokenizer_preset('tiny', quantizer='fsq')", ValueError, "quantizer='fsq': expected 'multiscale' or 'single'"),
    ("config", "transformer_preset('tiny', width=64, heads=3)", ValueError, "width=64, heads=3: width must be a multiple of heads"),
    ("config", "check_fits(tok.cfg, ras.cfg)", ValueError, "tokenizer has quantizer='multiscale': the raster model needs a 'single' tokenizer"),
    ("config", "transformer_config('var', 'tiny', tok.cfg, vocab_size=32)", ValueError, "the var transformer has {'vocab_size': 32, 'patch_nums': (1, 2, 4), 'latent_channels': 8}: expected its tokenizer's {'vocab_size': 64, 'patch_nums': (1, 2, 4), 'latent_channels': 8}"),
    # generating (var: a tiny VAR model, ras: a tiny raster model)
    ("generate", "sampling.generate_var(var, tok.quantizer, [0, 11])", ValueError, "labels hold values in [0, 11]: expected classes in [0, 9] (num_classes=10), or 10 for no class"),
    ("generate", "sampling.generate_var(var, tok.quantizer, [])", ValueError, "labels is empty: expected at least one class label"),
    ("generate", "sampling.generate_var(var, tok.quantizer, [0], cfg=-1.0)", ValueError, "cfg=-1.0: expected a guidance strength >= 0 (0 turns guidance off)"),
    ("generate", "sampling.generate_var(var, tok.quantizer, [0], cfg=float('nan'))", ValueError, "cfg=nan: expected a guidance strength >= 0"),
    ("generate", "sampling.generate_var(var, tok.quantizer, [0], top_p=0.0)", ValueError, "top_p=0.0: expected a probability in (0, 1] (1 keeps every token)"),
    ("generate", "sampling.generate_raster(ras, [0], top_p=1.5)", ValueError, "top_p=1.5: expected a probability in (0, 1]"),
    ("generate", "sampling.generate_var(var, tok.quantizer, [0], top_k=-1)", ValueError, "top_k=-1: expected an integer >= 0 (0 keeps every token)"),
    ("generate", "sampling.generate_var(var, tok.quantizer, [0], temperature=0.0)", ValueError, "temperature=0.0: expected a number > 0"),
    ("generate", "sampling.generate_var(var, tok.quantizer, [0], temperature=float('inf'))", ValueError, "temperature=inf: expected a number > 0"),
    ("generate", "sampling.generate_var(ras, tok.quantizer, [0])", ValueError, "model is a RasterTransformer: generate_var needs a VAR model (use generate_raster)"),
    ("generate", "sampling.generate_var(var, tok, [0])", ValueError, "quantizer is a VQVAE: expected a MultiScaleQuantizer (pass vqvae.quantizer, not the VQVAE)"),
    ("generate", "sample_images(var, tok, torch.tensor([0]), cfg=1.0, batch_size=0)", ValueError, "batch_size=0: expected an integer >= 1 (images generated per forward pass)"),
    # editing (img: two 16 px images, box: their centre quarter)
    ("edit", "editing.edit_var(var, tok, img, torch.ones(8, 8, dtype=torch.bool))", ValueError, "mask has shape (8, 8): expected (16, 16), (2, 16, 16) or (2, 1, 16, 16)"),
    ("edit", "editing.edit_var(var, tok, img, torch.zeros(16, 16, dtype=torch.bool))", ValueError, "mask of image 0 is empty: there is nothing to edit"),
    ("edit", "editing.edit_var(var, tok, img, torch.ones(16, 16, dtype=torch.bool))", ValueError, "covers the whole image: nothing of the image would be kept, so this is plain generation"),
    ("edit", "editing.edit_var(var, tok, img, box, labels=10)", ValueError, "labels hold values in [10, 10]: expected target classes in [0, 9], or labels=None for no class"),
    ("edit", "editing.edit_var(var, tok, img, box, blend='soft')", ValueError, "blend='soft': expected one of ('none', 'latent', 'pixel')"),
    ("edit", "editing.box_mask(16, 10, 0, 8, 4)", ValueError, "box (top=10, left=0, height=8, width=4): expected a non-empty box inside the 16x16 image"),
    # training
    ("train", "TransformerTrainConfig(batch_size=0)", ValueError, "batch_size=0: expected an integer >= 1"),
    ("train", "TransformerTrainConfig(lr=0.0)", ValueError, "lr=0.0: expected a learning rate > 0"),
    ("train", "TransformerTrainConfig(lr=float('inf'))", ValueError, "lr=inf: expected a learning rate > 0"),
    ("train", "TokenizerTrainConfig(steps=0)", ValueError, "steps=0: expected an integer >= 1"),
    ("train", "ClassifierTrainConfig(label_smoothing=-0.1)", ValueError, "label_smoothing=-0.1: expected a number >= 0.0"),
    # loading weights
    ("load", "load_tokenizer('no_such_file.safetensors')", FileNotFoundError, "does not exist. Shipped names are ['classifier_cifar10', 'tokenizer_cifar10', 'var_cifar10', 'vqvae_cifar10']"),
    ("load", "load_transformer('tokenizer_cifar10')", ValueError, "holds a 'tokenizer' model: expected a 'transformer' model"),
    ("load", "load_transformer('var_cifar10', tokenizer='vqvae_cifar10')", ValueError, "tokenizer does not match the transformer"),
    # data
    ("data", "data.load_split('mnist', 'train')", ValueError, "name='mnist' is not a known data set; expected one of ['cifar10', 'imagenette64']"),
    ("data", "data.load_split('cifar10', 'val')", ValueError, "split='val' is not a known split; expected one of ['train', 'test']"),
    ("data", "data.make_loader(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(4), batch_size=0)", ValueError, "batch_size=0: expected an integer >= 1"),
]


def scope() -> dict:
    """The names the calls use: tiny untrained models (seeded) and small inputs."""
    torch.manual_seed(0)
    tok = VQVAE(tokenizer_preset("tiny")).eval()
    return dict(
        torch=torch, data=data, editing=editing, sampling=sampling, tokenizer_preset=tokenizer_preset,
        transformer_preset=transformer_preset, transformer_config=transformer_config, check_fits=check_fits,
        sample_images=sample_images, load_tokenizer=load_tokenizer,
        load_transformer=load_transformer, TransformerTrainConfig=TransformerTrainConfig,
        TokenizerTrainConfig=TokenizerTrainConfig, ClassifierTrainConfig=ClassifierTrainConfig,
        tok=tok, var=VAR(transformer_preset("tiny")).eval(),
        ras=RasterTransformer(transformer_preset("tiny", kind="raster")).eval(),
        r1=torch.zeros(1, 1, 1, dtype=torch.long), r2=torch.zeros(1, 2, 2, dtype=torch.long),
        r4=torch.zeros(1, 4, 4, dtype=torch.long), img=torch.rand(2, 3, 16, 16) * 2 - 1,
        box=editing.centre_box(16, 0.25),
    )


@pytest.fixture(scope="module")
def names():
    return scope()


@pytest.mark.parametrize("area, call, error, message", ROWS, ids=[f"{r[0]}: {r[1]}" for r in ROWS])
def test_every_row_raises_its_message(names, area, call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        eval(call, dict(names))


def test_rows_are_distinct_and_enough():
    assert len({r[1] for r in ROWS}) == len(ROWS) >= 30


def render() -> str:
    lines = ["# Errors a student can meet, and what they say", "",
             "Every public function checks what a student can get wrong and answers with a `ValueError` or",
             "`TypeError` that names the argument, the value it received and what was expected. Each row",
             "below is run by `tests/test_error_table.py`, which asserts the message shown (this file is",
             "made from that test: `python tests/test_error_table.py`). In the calls, `tok` is a tiny",
             "tokenizer for 16 px images (scales 1, 2, 4; 64 codes), `var` and `ras` tiny VAR and raster",
             "models (10 classes), `img` two 16 px images, `box` their centre quarter, `r1, r2, r4` token",
             "maps of the three scales.", "",
             "| area | call | error | the message says |", "|---|---|---|---|"]
    for area, call, error, message in ROWS:
        lines.append(f"| {area} | `{call}` | `{error.__name__}` | {message.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def test_the_docs_table_is_these_rows():
    assert DOC.read_text() == render(), "docs/errors.md is out of date: run `python tests/test_error_table.py`"


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}", file=sys.stderr)
