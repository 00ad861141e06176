"""Notebook 08's plots and widget: the fit follows the ticked models, and bad choices say why."""
import matplotlib
import pytest

matplotlib.use("Agg")

from var_tutorial.powerlaw import fit_power_law
from var_tutorial.records import read_results
from var_tutorial.viz import scaling_figure
from var_tutorial.widgets import scaling_fit

MODELS = read_results("scaling_cifar10")["metrics"]["models"]


def test_the_widget_refits_on_the_ticked_models():
    w = scaling_fit(MODELS)
    var = sorted((m for m in MODELS if m["kind"] == "var"), key=lambda m: m["parameters"])
    everything = fit_power_law([m["parameters"] for m in var], [m["test_loss"] for m in var])
    assert w.fit == everything and w.chosen() == [m["depth"] for m in var]
    w.boxes[var[0]["depth"]].value = False  # leave the smallest model out
    rest = fit_power_law([m["parameters"] for m in var[1:]], [m["test_loss"] for m in var[1:]])
    assert w.fit == rest and w.fit["pearson_r"] != everything["pearson_r"]
    for d in w.chosen()[:-2]:
        w.boxes[d].value = False
    assert w.fit is None and len(w.chosen()) == 2  # two models: no fit, and the output says so
    assert w.message == "tick at least 3 models to fit a power law (2 ticked)"


def test_the_file_fits_are_the_figure_fits():
    fits = read_results("scaling_cifar10")["metrics"]["fits"]["var"]
    var = [m for m in MODELS if m["kind"] == "var"]
    again = fit_power_law([m["train_flops"] for m in var], [m["test_error"] for m in var])
    assert again["alpha"] == pytest.approx(fits["test_error_vs_train_flops"]["alpha"], rel=1e-9)
    fig = scaling_figure(MODELS, x="train_flops", y="test_loss", pareto=True)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("alpha = " in t for t in labels) and any("Pareto" in t for t in labels)


def test_bad_choices_name_the_value():
    with pytest.raises(ValueError, match="'flops'"):
        scaling_figure(MODELS, x="flops")
    with pytest.raises(ValueError, match="kind='gpt'"):
        scaling_fit(MODELS, kind="gpt")
