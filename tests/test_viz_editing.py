"""The in-painting figure (the `figures` command, notebook 09) says what its checkerboard means:
a colour key under the images, whose swatch has the checkerboard's grey, inside the figure and
clear of the images."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from var_tutorial.editing import centre_box
from var_tutorial.viz import CHECKER, MASK_KEY, add_mask_key, image_rows_figure, inpainting_figure, mask_overlay


def toy_edit(B=3, S=16):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (B, 3, S, S), dtype=torch.uint8, generator=g)
    return images, centre_box(S, 0.25), torch.randint(0, 256, (B, 3, S, S), dtype=torch.uint8, generator=g)


def test_the_inpainting_figure_has_a_key_for_its_mask():
    images, mask, edited = toy_edit()
    fig = inpainting_figure(images, mask, edited)
    assert len(fig.legends) == 1
    key = fig.legends[0]
    assert [t.get_text() for t in key.get_texts()] == list(MASK_KEY)
    swatch = key.legend_handles[0].get_facecolor()[:3]
    assert swatch == pytest.approx((CHECKER[0] / 255,) * 3)  # the checkerboard's darker grey
    hidden = mask_overlay(images, mask)[:, :, mask]  # what the middle row shows inside the mask
    assert set(hidden.unique().tolist()) == set(CHECKER)
    plt.close(fig)


def test_the_key_sits_inside_the_figure_below_the_images():
    images, mask, edited = toy_edit(B=10, S=64)  # notebook 09's figure: one image per class
    fig = inpainting_figure(images, mask, edited)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    key = fig.legends[0].get_window_extent(renderer)
    page = fig.bbox
    assert page.x0 <= key.x0 and key.x1 <= page.x1 and page.y0 <= key.y0 and key.y1 <= page.y1  # not clipped
    lowest = min(ax.get_window_extent(renderer).y0 for ax in fig.axes)
    assert key.y1 <= lowest  # under the images, covering none
    plt.close(fig)


def test_a_figure_without_a_mask_gets_no_key_unless_asked():
    images, _, edited = toy_edit()
    fig = image_rows_figure({"a": images, "b": edited})
    assert not fig.legends
    add_mask_key(fig, labels=("hidden", "kept"))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["hidden", "kept"]
    plt.close(fig)
