"""The training-curve figures of notebook 05 draw the numbers of the history they are given:
one line per scale with the right steps and values, validation where it was measured, the
best validation point starred, and a clear error for a history without the key."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from var_tutorial.viz import per_scale_curves_figure, train_val_figure

PATCH_NUMS = (1, 2, 4)


def history(steps=(10, 20, 30, 40), val_every=20, val_losses=(5.0, 4.0)):
    """A small train_transformer-like history: training entries at every step, validation every 20."""
    out, val = [], iter(val_losses)
    for s in steps:
        h = {"step": s, "loss": 8.0 - s / 10, "accuracy": s / 100,
             "loss_per_scale": [8.0 - s / 10 - k for k in range(3)], "accuracy_per_scale": [s / 100 + k / 10 for k in range(3)]}
        if s % val_every == 0:
            v = next(val)
            h.update(val_loss=v, val_accuracy=0.1, val_loss_per_scale=[v + k for k in range(3)],
                     val_accuracy_per_scale=[0.1, 0.2, 0.3])
        out.append(h)
    return out


def test_per_scale_curves_draw_each_scale_of_training_and_validation():
    hist = history()
    fig = per_scale_curves_figure(hist, PATCH_NUMS, keys=("loss", "accuracy"), hline={"loss": ("ln V", 8.3)})
    assert len(fig.axes) == 2
    loss_ax = fig.axes[0]
    solid = [l for l in loss_ax.lines if l.get_linestyle() == "-"]
    dashed = [l for l in loss_ax.lines if l.get_linestyle() == "--"]
    assert len(solid) == 3 and len(dashed) == 3  # one per scale, training and validation
    for k, line in enumerate(solid):
        assert list(line.get_xdata()) == [10, 20, 30, 40]
        assert list(line.get_ydata()) == pytest.approx([h["loss_per_scale"][k] for h in hist])
    for k, line in enumerate(dashed):
        assert list(line.get_xdata()) == [20, 40]
        assert list(line.get_ydata()) == pytest.approx([5.0 + k, 4.0 + k])
        assert line.get_color() == solid[k].get_color()  # a scale keeps its colour
    assert any(l.get_linestyle() == ":" and l.get_ydata()[0] == 8.3 for l in loss_ax.lines)  # the reference line
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["r_1: 1x1", "r_2: 2x2", "r_3: 4x4", "training", "validation"]
    plt.close(fig)


def test_per_scale_curves_without_validation_draw_and_name_training_only():
    hist = [{k: v for k, v in h.items() if not k.startswith("val_")} for h in history()]
    fig = per_scale_curves_figure(hist, PATCH_NUMS, keys=("loss",))
    assert [l.get_linestyle() for l in fig.axes[0].lines] == ["-"] * 3
    assert [t.get_text() for t in fig.legends[0].get_texts()][-1] == "training"
    plt.close(fig)


def test_per_scale_curves_refuse_a_missing_key_and_a_wrong_scale_count():
    with pytest.raises(ValueError, match="psnr"):
        per_scale_curves_figure(history(), PATCH_NUMS, keys=("psnr",))
    with pytest.raises(ValueError, match="expected 2"):
        per_scale_curves_figure(history(), (1, 2))
    plt.close("all")


def test_train_val_figure_stars_the_best_validation_point():
    runs = {"A": history(steps=(10, 20, 30, 40, 50, 60), val_losses=(5.0, 4.5, 4.8)),  # best at step 40
            "B": history(val_losses=(6.0, 5.0))}                                           # best at step 40
    fig = train_val_figure(runs, key="loss")
    ax = fig.axes[0]
    stars = [l for l in ax.lines if l.get_marker() == "*"]
    assert [(l.get_xdata()[0], l.get_ydata()[0]) for l in stars] == [(40, 4.5), (40, 5.0)]
    train_a = next(l for l in ax.lines if l.get_label() == "A: training")
    assert list(train_a.get_ydata()) == pytest.approx([8.0 - s / 10 for s in (10, 20, 30, 40, 50, 60)])
    with pytest.raises(ValueError, match="'C'"):
        train_val_figure({"C": [{"step": 1}]})
    plt.close("all")
