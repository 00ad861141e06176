"""Zero-shot editing: the kept tokens really are the image's own at every scale, masks and
their per-scale versions, the blends, the raster baseline, the CLI, and bad inputs."""
import pytest
import torch

from var_tutorial import editing
from var_tutorial.cli import main
from var_tutorial.config import tokenizer_preset, transformer_preset
from var_tutorial.editing import (
    box_mask,
    centre_box,
    edit_raster,
    edit_var,
    half_mask,
    outpaint_mask,
    psnr_outside,
    token_masks,
)
from var_tutorial.pretrained import load_transformer
from var_tutorial.transformer import VAR, RasterTransformer
from var_tutorial.vqvae import VQVAE


@pytest.fixture(scope="module")
def tiny():
    """Untrained tiny models: 16 px images, scales (1, 2, 4)."""
    torch.manual_seed(0)
    tok = VQVAE(tokenizer_preset("tiny")).eval()
    single = VQVAE(tokenizer_preset("tiny", quantizer="single")).eval()
    var = VAR(transformer_preset("tiny")).eval()
    raster = RasterTransformer(transformer_preset("tiny", kind="raster")).eval()
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return tok, single, var, raster, images


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_masks():
    m = box_mask(8, 2, 3, 4, 2)
    assert m.sum() == 8 and m[2:6, 3:5].all() and m.dtype == torch.bool
    assert centre_box(32, 0.25).sum() == 16 * 16 and centre_box(32, 0.25)[8:24, 8:24].all()
    assert half_mask(32, "top")[:16].all() and not half_mask(32, "top")[16:].any()
    assert (half_mask(32, "left") == half_mask(32, "top").T).all()
    frame = outpaint_mask(32, 20)
    assert frame.sum() == 32 * 32 - 20 * 20 and not frame[6:26, 6:26].any()


def test_token_masks_follow_the_cell_coverage():
    top = half_mask(16, "top").float()[None, None]
    m1, m2, m4 = token_masks(top, (1, 2, 4))
    assert not m1.any()  # exactly half the image: the 1x1 token (the global picture) is kept
    assert m2[0].tolist() == [[True, True], [False, False]] and m4[0, :2].all() and not m4[0, 2:].any()
    assert token_masks(top, (1,), threshold=0.4)[0].all()  # more than 40% covered: regenerated
    # threshold 0: every token the mask touches
    dot = box_mask(16, 0, 0, 1, 1).float()[None, None]
    assert [int(m.sum()) for m in token_masks(dot, (1, 2, 4), threshold=0.0)] == [1, 1, 1]


def test_kept_tokens_are_the_images_own_at_every_scale(tiny, monkeypatch):
    tok, _, var, _, images = tiny
    mask = box_mask(16, 4, 4, 8, 8)
    seen = []
    real_generate = editing.generate_var

    def spy(*args, after_step, **kw):
        def record(k, r_k):
            out = after_step(k, r_k)
            seen.append((k, r_k, out))
            return out
        return real_generate(*args, after_step=record, **kw)

    monkeypatch.setattr(editing, "generate_var", spy)
    edit_var(var, tok, images, mask, generator=seeded())
    own = tok.img_to_tokens(images)
    edit_k = token_masks(mask.float().expand(3, 1, 16, 16), tok.patch_nums)
    assert [k for k, *_ in seen] == [0, 1, 2]
    for k, sampled, used in seen:
        assert torch.equal(used[~edit_k[k]], own[k][~edit_k[k]])  # outside: the image's own tokens
        assert torch.equal(used[edit_k[k]], sampled[edit_k[k]])  # inside: the model's


def test_edits_are_seeded_and_blends_keep_the_outside(tiny):
    tok, _, var, _, images = tiny
    mask = centre_box(16, 0.25)
    a = edit_var(var, tok, images, mask, labels=[0, 1, 2], cfg=2.0, generator=seeded(3))
    b = edit_var(var, tok, images, mask, labels=[0, 1, 2], cfg=2.0, generator=seeded(3))
    assert torch.equal(a, b) and a.shape == images.shape
    recon = tok.tokens_to_img(tok.img_to_tokens(images))
    m = mask.float().expand(3, 1, 16, 16)
    pixel = edit_var(var, tok, images, mask, generator=seeded(3), blend="pixel")
    assert torch.allclose(pixel * (1 - m), recon * (1 - m))  # pasted back exactly
    assert (psnr_outside(pixel, recon, m) >= 99).all()
    out, steps = edit_var(var, tok, images, mask, generator=seeded(3), return_steps=True)
    assert len(steps) == 3 and torch.allclose(steps[-1], out)


def test_raster_keeps_the_tokens_outside(tiny, monkeypatch):
    _, single, _, raster, images = tiny
    made = []
    real_generate = editing.generate_raster
    monkeypatch.setattr(editing, "generate_raster", lambda *a, **kw: made.append(real_generate(*a, **kw)) or made[-1])
    out = edit_raster(raster, single, images, half_mask(16, "top"), generator=seeded())
    tokens, own = made[0][0], single.img_to_tokens(images)[0]  # (B, 4, 4) each
    assert out.shape == images.shape
    assert torch.equal(tokens[:, 2:], own[:, 2:])  # the bottom half: the image's own tokens
    assert not torch.equal(tokens[:, :2], own[:, :2])  # the top half: the model's


@pytest.mark.parametrize("mask, labels, kwargs, error, match", [
    (torch.ones(8, 8, dtype=torch.bool), None, {}, ValueError, r"mask has shape \(8, 8\): expected \(16, 16\)"),
    (torch.zeros(16, 16, dtype=torch.bool), None, {}, ValueError, "mask of image 0 is empty: there is nothing to edit"),
    (torch.ones(16, 16, dtype=torch.bool), None, {}, ValueError,
     "mask of image 0 covers the whole image: .* plain generation"),
    (torch.full((16, 16), 2.0), None, {}, ValueError, r"mask holds values in \[2, 2\]: expected 0 \(keep\)"),
    ([[1]], None, {}, TypeError, "mask is a list: expected a torch.Tensor"),
    (None, 10, {}, ValueError, r"labels hold values in \[10, 10\]: expected target classes in \[0, 9\], or "
                               "labels=None"),
    (None, [1, 2], {}, ValueError, r"labels has shape \(2,\): expected one target class per image, \(3,\)"),
    (None, None, {"blend": "soft"}, ValueError, "blend='soft': expected one of"),
    (None, None, {"threshold": 1.0}, ValueError, r"threshold=1.0: expected a fraction of a token's cell in \[0, 1\)"),
    (None, None, {"cfg": -1.0}, ValueError, "cfg=-1.0: expected a guidance strength >= 0"),
])
def test_bad_input(tiny, mask, labels, kwargs, error, match):
    tok, _, var, _, images = tiny
    mask = centre_box(16, 0.25) if mask is None else mask
    with pytest.raises(error, match=match):
        edit_var(var, tok, images, mask, labels, **kwargs)


def test_images_the_tokenizer_cannot_take(tiny):
    tok, _, var, _, images = tiny
    mask = centre_box(16, 0.25)
    with pytest.raises(ValueError, match="images has shape"):
        edit_var(var, tok, torch.zeros(3, 3, 32, 32), centre_box(32, 0.25))
    with pytest.raises(TypeError, match="images is a list"):
        edit_var(var, tok, images.tolist(), mask)
    with pytest.raises(ValueError, match=r"box \(top=10, left=0, height=8, width=4\): expected a non-empty box"):
        box_mask(16, 10, 0, 8, 4)


def test_edit_command_on_image_files(tmp_path, capsys):
    """The CLI on PNG files with the shipped model: a class edit of a real-looking input."""
    from PIL import Image

    from var_tutorial import data

    def write_png(img, path):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)

    images, _ = data.load_split("cifar10", "test")
    write_png(images[0], str(tmp_path / "cat.png"))
    main(["edit", str(tmp_path / "cat.png"), "--target", "ship", "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert (tmp_path / "out" / "cat_edited.png").read_bytes()[:4] == b"\x89PNG"
    write_png(torch.zeros(3, 20, 24, dtype=torch.uint8), str(tmp_path / "small.png"))
    for argv, status, message in (
            ([str(tmp_path / "small.png")], 1, r"small.png is 24x20: expected 32x32 (add --resize"),
            ([str(tmp_path / "cat.png"), "--target", "dragon"], 2, "--target 'dragon': expected a class index in [0, 9]"),
            ([str(tmp_path / "cat.png"), "--target", "12"], 2, "--target '12': expected a class index in [0, 9]")):
        with pytest.raises(SystemExit) as e:  # the command line says it in one line, with no traceback
            main(["edit", *argv, "--out", str(tmp_path / "out"), "--device", "cpu"])
        assert e.value.code == status and message in capsys.readouterr().err
    main(["edit", str(tmp_path / "small.png"), "--resize", "--region", "frame", "--out", str(tmp_path / "out"),
          "--device", "cpu"])
    assert "small.png is 24x20: centre-cropped to 20x20 and resized to 32x32" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(SystemExit) as e:
        main(["edit", str(tmp_path / "notes.txt"), "--device", "cpu"])
    assert e.value.code == 1 and "notes.txt could not be decoded" in capsys.readouterr().err


def test_measured_editing_results_hold():
    """The acceptance figures, as written by eval-editing on the GPU (results/editing_cifar10.json)."""
    from var_tutorial.records import read_results

    r = read_results("editing_cifar10")
    m = r["metrics"]
    assert m["images"] == 1000 and "eval-editing" in r["command"]
    t = m["tasks"]
    assert t["inpaint_centre"]["var"]["psnr_outside_db"] >= 25
    top = t["inpaint_top_half"]
    assert top["var"]["keeps_true_class"] >= top["raster"]["keeps_true_class"] + 0.10  # clearly more often
    assert t["class_edit_centre"]["mask_fraction"] >= 0.40
    assert t["class_edit_centre"]["var"]["target_class_rate"] >= 0.50
    assert all(len(method["per_class"]) == 10 for task in t.values() for method in task.values()
               if isinstance(method, dict))


def test_shipped_model_edits_on_cpu():
    """A smoke test with the real weights: two test images, centre in-painting, outside kept."""
    from var_tutorial import data

    model, tok = load_transformer("var_cifar10")
    images, _ = data.load_split("cifar10", "test")
    x = data.to_float(images[:2])
    mask = centre_box(32, 0.25)
    out = edit_var(model, tok, x, mask, generator=seeded())
    recon = tok.tokens_to_img(tok.img_to_tokens(x))
    assert (psnr_outside(out, recon, mask.float().expand(2, 1, 32, 32)) > 20).all()
