"""Tests for the editing widget (widgets.editor, notebook 07) and its core, widgets.editor_figure /
edit_one: built on real CIFAR-10 test images with the shipped VAR, it edits again when a control
changes and Regenerate is clicked, it is seeded, and an error in the callback is shown and kept,
never swallowed. About ten seconds on a CPU."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from var_tutorial import data
from var_tutorial.editing import centre_box
from var_tutorial.pretrained import load_transformer
from var_tutorial.widgets import EDIT_REGIONS, edit_one, edit_region_mask, editor, editor_figure


@pytest.fixture(scope="module")
def shipped():
    model, tokenizer = load_transformer("var_cifar10")
    images, labels = data.load_split("cifar10", "test")
    picks = torch.tensor([0, 1000, 2000])  # three test images of different classes
    return model, tokenizer, images[picks], labels[picks], data.class_names("cifar10")


def test_region_presets():
    assert torch.equal(edit_region_mask(32, "centre"), centre_box(32, 0.25))
    assert edit_region_mask(32, "top")[:16].all() and not edit_region_mask(32, "top")[16:].any()
    assert edit_region_mask(32, "frame").sum() == 32 * 32 - 20 * 20
    box = edit_region_mask(32, "box", top=2, left=3, height=4, width=5)
    assert box.sum() == 20 and box[2:6, 3:8].all()
    for region in EDIT_REGIONS:
        m = edit_region_mask(32, region)
        assert m.shape == (32, 32) and 0 < m.sum() < 32 * 32
    with pytest.raises(ValueError, match=r"region='middle': expected one of"):
        edit_region_mask(32, "middle")


def test_edit_one_is_seeded_and_keeps_the_outside(shipped):
    model, tokenizer, images, _, _ = shipped
    mask = edit_region_mask(32, "centre")
    a = edit_one(model, tokenizer, images[0], mask, seed=3)
    assert a["result"].dtype == torch.uint8 and a["result"].shape == (3, 32, 32)
    assert len(a["steps"]) == len(tokenizer.patch_nums) and torch.equal(a["steps"][-1], a["result"])
    assert a["psnr_outside"] > 20
    assert torch.equal(edit_one(model, tokenizer, images[0], mask, seed=3)["result"], a["result"])
    assert not torch.equal(edit_one(model, tokenizer, images[0], mask, seed=4)["result"], a["result"])
    pixel = edit_one(model, tokenizer, images[0], mask, seed=3, blend="pixel")
    assert pixel["psnr_outside"] == 100  # the reconstruction pasted back: exact outside (clamped)
    with pytest.raises(ValueError, match=r"seed=-1: expected an integer >= 0"):
        edit_one(model, tokenizer, images[0], mask, seed=-1)


def test_editor_figure_panels(shipped):
    model, tokenizer, images, _, names = shipped
    fig, edit = editor_figure(model, tokenizer, images[1], region="top", label=3, cfg=8.0, class_names=names)
    assert "cat, cfg=8" in fig._suptitle.get_text() and "PSNR outside" in fig._suptitle.get_text()
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["original", "masked", "edited"]
    assert "after k=6 (8x8)" in titles
    plt.close(fig)


def test_editor_regenerates_when_a_control_changes(shipped):
    model, tokenizer, images, labels, names = shipped
    ui = editor(model, tokenizer, images, labels, names, index=1, region="centre", seed=0)
    assert ui.draws == 1 and ui.error is None and ui.edit["result"].shape == (3, 32, 32)
    first = ui.edit["result"].clone()
    # the widget's picture is editor_figure's
    fig, edit = editor_figure(model, tokenizer, images[1], region="centre", top=8, left=8, height=16, width=16,
                              label=None, cfg=16.0, seed=0, blend="none")
    plt.close(fig)
    assert torch.equal(edit["result"], first)
    assert ui.controls["top"].disabled  # the box sliders only matter for region "box"

    ui.controls["label"].value = names.index("ship")  # a target class ...
    assert ui.draws == 1  # ... does nothing until Regenerate
    ui.button.click()
    assert ui.draws == 2 and not torch.equal(ui.edit["result"], first)
    after_class = ui.edit["result"].clone()

    ui.controls["seed"].value = 1
    ui.button.click()
    assert ui.draws == 3 and not torch.equal(ui.edit["result"], after_class)

    ui.controls["region"].value = "box"
    assert not ui.controls["top"].disabled
    ui.controls["top"].value, ui.controls["height"].value = 0, 8
    ui.button.click()
    assert ui.draws == 4 and ui.error is None
    changed = (ui.edit["result"].int() - ui.edit["reference"].int()).abs().sum(0)  # (32, 32)
    assert changed[:8].float().mean() > changed[16:].float().mean()  # the new part is at the top


def test_editor_shows_a_callback_error(shipped):
    model, tokenizer, images, labels, names = shipped
    ui = editor(model, tokenizer, images, labels, names, region="box")
    before = ui.edit["result"].clone()
    ui.controls["top"].value, ui.controls["height"].value = 30, 10  # runs off the 32x32 image
    ui.button.click()
    assert isinstance(ui.error, ValueError) and ui.draws == 1
    shown = "".join(o.get("text", "") for o in ui.output.outputs)
    assert "ValueError: box (top=30" in shown and "expected a non-empty box inside the 32x32 image" in shown
    assert torch.equal(ui.edit["result"], before)  # the last good edit is kept
    ui.controls["height"].value = 2  # fixed: the error goes away
    ui.button.click()
    assert ui.error is None and ui.draws == 2


def test_editor_refuses_bad_arguments(shipped):
    model, tokenizer, images, labels, names = shipped
    with pytest.raises(ValueError, match=r"index=3: expected an image index between 0 and 2"):
        editor(model, tokenizer, images, index=3)
    with pytest.raises(ValueError, match=r"label=10: expected None \(no class\) or a class index"):
        editor(model, tokenizer, images, label=10)
    with pytest.raises(ValueError, match=r"blend='soft': expected one of"):
        editor(model, tokenizer, images, blend="soft")
    with pytest.raises(ValueError, match=r"class_names has 2 names"):
        editor(model, tokenizer, images, class_names=["a", "b"])
