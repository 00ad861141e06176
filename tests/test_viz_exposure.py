"""The exposure-bias figure of notebook 11 draws, per run, the loss of every scale with the true
context and with the model's own, the gap between them shaded, and names what is missing; its
plots are stored as palette PNGs, in less than half the bytes."""
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from PIL import Image

from var_tutorial.viz import exposure_figure, figure_bytes


def metrics(true=(3.0, 4.0, 5.0), own=(3.0, 4.5, 6.0), patch_nums=(1, 2, 4)):
    return {"patch_nums": list(patch_nums), "true_context": {"loss_per_scale": list(true)},
            "own_context": {"loss_per_scale": list(own)}}


def test_one_panel_per_run_with_both_curves_at_their_scales():
    runs = {"a": metrics(), "b": metrics((2.0, 2.5), (2.0, 3.5), (1, 3))}
    fig = exposure_figure(runs, title="gap")
    assert len(fig.axes) == 2
    for ax, m in zip(fig.axes, runs.values()):
        true, own = ax.lines
        assert list(true.get_xdata()) == list(own.get_xdata()) == list(range(1, len(m["patch_nums"]) + 1))
        assert list(true.get_ydata()) == pytest.approx(m["true_context"]["loss_per_scale"])
        assert list(own.get_ydata()) == pytest.approx(m["own_context"]["loss_per_scale"])
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"{p}×{p}" for p in m["patch_nums"]]
        assert len(ax.collections) == 1  # the shaded gap
    assert fig.axes[0].get_title() == "a" and fig._suptitle.get_text() == "gap"
    plt.close(fig)


def test_a_run_without_both_contexts_is_named():
    with pytest.raises(ValueError, match=r"runs\['b'\] has no own_context"):
        exposure_figure({"a": metrics(), "b": {"patch_nums": [1], "true_context": {}}})
    with pytest.raises(ValueError, match="runs is empty"):
        exposure_figure({})


def test_a_plot_stored_with_a_palette_is_a_smaller_png_of_the_same_size():
    fig = exposure_figure({"a": metrics(), "b": metrics()})
    full, palette = figure_bytes(fig), figure_bytes(fig, colors=256)
    a, b = Image.open(io.BytesIO(full)), Image.open(io.BytesIO(palette))
    assert b.format == "PNG" and b.mode == "P" and a.size == b.size and len(palette) < len(full) / 2
    for bad in ({"colors": 1}, {"colors": 300}, {"format": "jpeg", "colors": 16}):
        with pytest.raises(ValueError, match="colors="):
            figure_bytes(fig, **bad)
    plt.close(fig)
