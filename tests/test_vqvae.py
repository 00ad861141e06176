"""The VQ-VAE around either quantizer: shapes, the single-scale round trip, bad images."""
import pytest
import torch

from var_tutorial.config import tokenizer_preset
from var_tutorial.data import to_float, toy_dataset
from var_tutorial.vqvae import VQVAE


@pytest.fixture(scope="module")
def images():
    return to_float(toy_dataset(n=4, image_size=16)[0])


@pytest.mark.parametrize("quantizer", ["multiscale", "single"])
def test_forward_shapes(images, quantizer):
    torch.manual_seed(0)
    model = VQVAE(tokenizer_preset("tiny", quantizer))
    recon, tokens, loss = model(images)
    assert recon.shape == images.shape
    assert [t.shape[-1] for t in tokens] == ([1, 2, 4] if quantizer == "multiscale" else [4])
    assert torch.isfinite(loss)


def test_single_scale_round_trip(images):
    """decode(encode(f)) is the quantized f_hat, and every vector is its nearest code."""
    torch.manual_seed(0)
    model = VQVAE(tokenizer_preset("tiny", "single")).eval()
    with torch.no_grad():
        model.quantizer.codebook.embedding.weight.normal_()
    f = model.encode_latent(images)
    f_hat, tokens, _ = model.quantizer(f)
    torch.testing.assert_close(model.quantizer.decode(tokens), f_hat)
    dist = torch.cdist(f.permute(0, 2, 3, 1).reshape(-1, 8), model.quantizer.codebook.embedding.weight)
    assert torch.equal(tokens[0].flatten(), dist.argmin(1))


def test_tokens_to_img_matches_forward(images):
    torch.manual_seed(0)
    model = VQVAE(tokenizer_preset("tiny")).eval()
    recon, tokens, _ = model(images)
    torch.testing.assert_close(model.tokens_to_img(tokens), recon.clamp(-1, 1), atol=1e-5, rtol=1e-5)
    per_scale = model.reconstruct_per_scale(images)
    assert len(per_scale) == 3 and torch.allclose(per_scale[-1], model.tokens_to_img(tokens), atol=1e-5)


def test_shipped_tokenizers_reconstruct_real_images():
    from var_tutorial.data import load_split
    from var_tutorial.metrics import psnr
    from var_tutorial.pretrained import load_tokenizer

    x = to_float(load_split("cifar10", "test")[0][:64])
    for name, floor in [("tokenizer_cifar10", 25.0), ("vqvae_cifar10", 25.0)]:
        tok = load_tokenizer(name)
        assert psnr(tok.tokens_to_img(tok.img_to_tokens(x)), x).mean() > floor


# -- bad images -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    return VQVAE(tokenizer_preset("tiny"))


def test_wrong_image_size(tiny):
    with pytest.raises(ValueError, match=r"images has shape \(2, 3, 32, 32\): expected \(B, 3, 16, 16\)"):
        tiny.img_to_tokens(torch.zeros(2, 3, 32, 32))


def test_wrong_channel_count(tiny):
    with pytest.raises(ValueError, match=r"images has shape \(2, 1, 16, 16\): expected \(B, 3, 16, 16\)"):
        tiny.img_to_tokens(torch.zeros(2, 1, 16, 16))


def test_missing_batch_dimension(tiny):
    with pytest.raises(ValueError, match=r"images has shape \(3, 16, 16\).*add a batch dimension"):
        tiny.img_to_tokens(torch.zeros(3, 16, 16))


def test_uint8_images(tiny):
    with pytest.raises(ValueError, match=r"images has dtype torch.uint8: expected floats in \[-1, 1\].*to_float"):
        tiny.img_to_tokens(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))


def test_value_range(tiny):
    with pytest.raises(ValueError, match=r"images has values in \[0, 255\]: expected values in \[-1, 1\]"):
        tiny.img_to_tokens(torch.full((2, 3, 16, 16), 255.0).index_fill_(1, torch.tensor([0]), 0.0))


def test_not_a_tensor(tiny):
    with pytest.raises(TypeError, match=r"images is a list: expected a torch.Tensor"):
        tiny.img_to_tokens([[0.0]])


def test_single_scale_decode_wrong_count(tiny):
    model = VQVAE(tokenizer_preset("tiny", "single"))
    with pytest.raises(ValueError, match=r"tokens has 2 token maps: expected 1"):
        model.tokens_to_img([torch.zeros(1, 4, 4, dtype=torch.long)] * 2)


def test_single_scale_decode_out_of_range():
    model = VQVAE(tokenizer_preset("tiny", "single"))
    with pytest.raises(ValueError, match=r"tokens\[0\] holds indices in \[0, 64\].*\[0, 63\]"):
        model.tokens_to_img([torch.tensor([[[64, 0, 0, 0]] * 4])])
