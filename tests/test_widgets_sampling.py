"""Tests for the sampling widget (widgets.sampling_controls, notebook 06) and its core,
widgets.sampling_figure: seeded, redrawn when a control moves, and bad values refused with
errors that name the argument. Tiny random models: no shipped weights, a second or two."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from var_tutorial.classifier import Classifier
from var_tutorial.config import ClassifierConfig, tokenizer_preset, transformer_preset
from var_tutorial.transformer import VAR
from var_tutorial.vqvae import VQVAE
from var_tutorial.widgets import sample_class, sampling_controls, sampling_figure

NAMES = [f"class{c}" for c in range(10)]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    tokenizer = VQVAE(tokenizer_preset("tiny")).eval()
    model = VAR(transformer_preset("tiny")).eval()
    with torch.no_grad():  # at initialisation the gates are ~0 and the class barely matters: randomise
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    classifier = Classifier(ClassifierConfig(width=8)).eval()
    return model, tokenizer, classifier


def draw(models, **kw):
    model, tokenizer, _ = models
    fig, samples = sampling_figure(model, tokenizer, **{"label": 0, "n": 4, **kw})
    plt.close(fig)
    return samples


def test_sample_class_shapes(models):
    model, tokenizer, _ = models
    images, f_hats = sample_class(model, tokenizer, 3, n=5)
    assert images.shape == (5, 3, 16, 16) and images.min() >= -1 and images.max() <= 1
    assert len(f_hats) == len(tokenizer.patch_nums)
    assert torch.allclose(tokenizer.fhat_to_img(f_hats[-1]), images)


def test_same_seed_same_samples_and_every_knob_changes_them(models):
    base = draw(models, seed=0, cfg=4.0)
    assert base.dtype == torch.uint8 and base.shape == (4, 3, 16, 16)
    assert torch.equal(draw(models, seed=0, cfg=4.0), base)
    for change in (dict(seed=1), dict(label=5), dict(cfg=0.0), dict(temperature=0.3), dict(top_k=2),
                   dict(top_p=0.3)):
        assert not torch.equal(draw(models, **{"seed": 0, "cfg": 4.0, **change}), base), change


def test_figure_rows_and_classifier_labels(models):
    model, tokenizer, classifier = models
    fig, samples = sampling_figure(model, tokenizer, 2, n=3, steps=True, class_names=NAMES, classifier=classifier)
    K = len(tokenizer.patch_nums)
    assert len(fig.axes) == K  # one row per scale
    assert [ax.get_ylabel() for ax in fig.axes] == [f"k={k + 1}: {p}x{p}" for k, p in enumerate(tokenizer.patch_nums)]
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(labels) == 3 and all(name.lstrip("✗ ") in NAMES for name in labels)
    assert "the classifier agrees on" in fig._suptitle.get_text()
    plt.close(fig)
    fig, _ = sampling_figure(model, tokenizer, 2, n=3)
    assert len(fig.axes) == 1  # the samples only
    plt.close(fig)


def test_controls_resample_when_a_control_moves(models):
    model, tokenizer, classifier = models
    ui = sampling_controls(model, tokenizer, NAMES, classifier, label=1, cfg=4.0, n=4)
    assert set(ui.controls) == {"label", "cfg", "top_k", "top_p", "temperature", "seed", "steps"}
    assert ui.draws == 1 and ui.samples.shape == (4, 3, 16, 16)
    first = ui.samples.clone()
    assert torch.equal(first, draw(models, label=1, cfg=4.0))  # the picture is sampling_figure's
    ui.controls["seed"].value = 7
    assert ui.draws == 2 and not torch.equal(ui.samples, first)
    after_seed = ui.samples.clone()
    ui.controls["cfg"].value = 0.0
    assert ui.draws == 3 and not torch.equal(ui.samples, after_seed)
    ui.controls["label"].value = 6
    assert ui.values()["label"] == 6 and torch.equal(ui.samples, draw(models, label=6, cfg=0.0, seed=7))
    ui.controls["steps"].value = True  # same samples, more rows
    assert ui.draws == 5 and torch.equal(ui.samples, draw(models, label=6, cfg=0.0, seed=7))
    plt.close("all")


def test_a_failing_draw_is_shown_not_swallowed(models):
    """A callback's exception would only reach JupyterLab's log console; the widget shows it."""
    model, tokenizer, classifier = models
    ui = sampling_controls(model, tokenizer, NAMES, n=2)

    def broken(**values):
        raise RuntimeError("the sampler broke")
    ui._draw = broken
    ui.controls["seed"].value = 3
    assert isinstance(ui.error, RuntimeError) and ui.draws == 1
    assert ui.output.outputs[-1]["text"] == "RuntimeError: the sampler broke\n"
    plt.close("all")


@pytest.mark.parametrize("kw, name", [
    (dict(label=10), "label="), (dict(label=-1), "label="), (dict(label=1.0), "label="),
    (dict(seed=-1), "seed="), (dict(n=0), "n="),
    (dict(cfg=-1.0), "cfg="), (dict(top_k=-1), "top_k="), (dict(top_p=0.0), "top_p="),
    (dict(temperature=0.0), "temperature="),
])
def test_bad_values_name_the_argument(models, kw, name):
    with pytest.raises(ValueError, match=name):
        draw(models, **kw)


@pytest.mark.parametrize("kw, name", [
    (dict(cfg=25.0), "cfg="), (dict(top_k=7), "top_k="), (dict(top_p=0.01), "top_p="),
    (dict(temperature=3.0), "temperature="), (dict(label=10), "label="), (dict(seed=-2), "seed="),
    (dict(n=0), "n="), (dict(class_names=NAMES[:3]), "class_names"),
])
def test_controls_refuse_values_outside_the_sliders(models, kw, name):
    model, tokenizer, _ = models
    with pytest.raises(ValueError, match=name):
        sampling_controls(model, tokenizer, **{"class_names": NAMES, **kw})
