"""Interactive views (ipywidgets) for the notebooks.

A widget only chooses *what* to look at; the picture itself comes from viz.py, so a
static copy of a notebook (or a script) can draw the same figure without widgets.
scale_slider tokenizes and decodes once, for every image and every k, when it is built;
moving a control only redraws. sampling_controls samples anew on every change (about a
second for 8 images on a CPU), and its picture is sampling_figure, which needs no widgets.

    from var_tutorial.widgets import scale_slider, sampling_controls
    scale_slider(tokenizer, images)                      # the cell's last line: shows the UI
    sampling_controls(model, tokenizer, class_names)     # VAR's samples, with CFG, top-k, top-p, ...
"""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from .classifier import features_and_logits
from .data import to_float, to_uint8
from .editing import BLENDS, edit_var, psnr_outside
from .editing import REGIONS as EDIT_REGIONS
from .editing import region_mask as edit_region_mask
from .metrics import psnr
from .powerlaw import fit_power_law
from .sampling import generate_var
from .viz import edit_view_figure, image_rows_figure, scale_view_figure, scaling_figure, show


@torch.no_grad()
def coarse_to_fine(tokenizer, images: torch.Tensor):
    """Token maps and the reconstruction from the first k scales, for every k.

    images: (B, 3, H, W), uint8 or floats in [-1, 1]. Returns (x, tokens, per_scale, psnr_KB):
    x (B, 3, H, W) in [-1, 1] on the CPU, tokens [r_1 (B, pn_1, pn_1), ..., r_K],
    per_scale [recon from r_1, recon from r_1..r_2, ...] each (B, 3, H, W), and
    psnr_KB (K, B): the PSNR of every reconstruction in dB.
    """
    x = to_float(images) if images.dtype == torch.uint8 else images.float()
    device = next(tokenizer.parameters()).device
    tokens = tokenizer.img_to_tokens(x.to(device))
    per_scale = [tokenizer.tokens_to_img(tokens[: k + 1]).cpu() for k in range(len(tokens))]
    psnr_KB = torch.stack([psnr(recon, x.cpu()) for recon in per_scale])  # (K, B)
    return x.cpu(), [r.cpu() for r in tokens], per_scale, psnr_KB


def scale_slider(tokenizer, images: torch.Tensor, labels=None, class_names=None, index: int = 0, k: int = 1):
    """Choose an image and k: the reconstruction from the first k scales beside the
    original, and the token map r_k that scale k added.

    tokenizer: a multi-scale VQVAE (load_tokenizer("tokenizer_cifar10")).
    images: a small batch (B, 3, H, W), uint8 or in [-1, 1]; a dozen is plenty.
    labels, class_names: optional, to name the images in the drop-down.
    Returns the widget: make it the last expression of a cell (or display() it).
    """
    K = len(tokenizer.patch_nums)
    if not 1 <= k <= K:
        raise ValueError(f"k={k}: expected a number of scales between 1 and {K} (patch_nums={tokenizer.patch_nums})")
    if not 0 <= index < len(images):
        raise ValueError(f"index={index}: expected an image index between 0 and {len(images) - 1}")
    x, tokens, per_scale, psnr_KB = coarse_to_fine(tokenizer, images)

    def name(i):
        if labels is not None and class_names is not None:
            return f"{i}: {class_names[int(labels[i])]}"
        return str(i)

    image_w = widgets.Dropdown(options=[(name(i), i) for i in range(len(x))], value=index, description="image")
    k_w = widgets.IntSlider(value=k, min=1, max=K, step=1, description="k (scales)", continuous_update=True)

    def draw(index, k):
        scale_view_figure(x[index], per_scale[k - 1][index], tokens[k - 1][index], k, tokenizer.patch_nums,
                          psnr_db=float(psnr_KB[k - 1, index]), vocab_size=tokenizer.cfg.vocab_size)
        plt.show()

    out = widgets.interactive_output(draw, {"index": image_w, "k": k_w})
    return widgets.VBox([widgets.HBox([image_w, k_w]), out])


# -- sampling from VAR (notebook 06) ------------------------------------------------------
TOP_K_CHOICES = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)  # 0 keeps every token
# the sliders' ranges (the GPU sweep of notebook 06 ends at cfg 20)
CFG_MAX, TOP_P_MIN, TEMPERATURE_RANGE = 20.0, 0.05, (0.1, 2.0)


def _check_sample_args(model, label, seed, n, class_names) -> None:
    """The checks generate_var does not do (it checks cfg, top_k, top_p and temperature)."""
    num_classes = model.cfg.num_classes
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_classes:
        raise ValueError(f"label={label!r}: expected a class index between 0 and {num_classes - 1}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected an integer >= 0")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}: expected an integer >= 1 (images sampled per draw)")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names: expected one per class ({num_classes})")


@torch.no_grad()
def sample_class(model, tokenizer, label: int, cfg: float = 4.0, top_k: int = 0, top_p: float = 1.0,
                 temperature: float = 1.0, seed: int = 0, n: int = 8) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """n samples of class `label` with these settings: (images, f_hats).

    images: (n, 3, H, W) in [-1, 1] on the CPU. f_hats: the cumulative f_hat after each
    scale, K tensors (n, Cv, h, w) on the model's device (tokenizer.fhat_to_img(f_hats[k])
    is the image from the first k + 1 scales). The same seed and settings always give the
    same images: every draw comes from one generator seeded with `seed`.
    """
    _check_sample_args(model, label, seed, n, None)
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(seed)
    labels = torch.full((n,), label, dtype=torch.long, device=device)
    _, f_hats = generate_var(model, tokenizer.quantizer, labels, cfg=cfg, top_k=top_k, top_p=top_p,
                             temperature=temperature, generator=generator, return_steps=True)
    return tokenizer.fhat_to_img(f_hats[-1]).cpu(), f_hats


def sampling_figure(model, tokenizer, label: int, cfg: float = 4.0, top_k: int = 0, top_p: float = 1.0,
                    temperature: float = 1.0, seed: int = 0, n: int = 8, steps: bool = False,
                    class_names=None, classifier=None):
    """The picture behind sampling_controls, without widgets: (figure, samples uint8 (n, 3, H, W)).

    One row of n samples of class `label`; with steps=True one row per scale k (the image
    from the first k scales), the samples in the last row. With a classifier, each column
    is labelled with the class it predicts for the sample, and the title counts agreements.
    """
    _check_sample_args(model, label, seed, n, class_names)
    images, f_hats = sample_class(model, tokenizer, label, cfg, top_k, top_p, temperature, seed, n)
    samples = to_uint8(images)
    if steps:  # the image from the first k scales, for every k; the last row is the samples
        with torch.no_grad():
            rows = {f"k={k + 1}: {p}x{p}": tokenizer.fhat_to_img(f).cpu()
                    for k, (p, f) in enumerate(zip(tokenizer.patch_nums, f_hats))}
    else:
        rows = {"samples": images}
    name = class_names[label] if class_names is not None else f"class {label}"
    title = f"{name}: cfg={cfg:g}, top_k={top_k}, top_p={top_p:g}, temperature={temperature:g}, seed {seed}"
    col_labels = None
    if classifier is not None:
        predicted = features_and_logits(classifier, samples)[1].argmax(1).tolist()  # n class indices
        title += f"\nthe classifier agrees on {sum(p == label for p in predicted)} of {n}"
        col_labels = [("" if p == label else "✗ ") + (class_names[p] if class_names is not None else str(p))
                      for p in predicted]
    fig = image_rows_figure(rows, col_labels=col_labels)
    fig.suptitle(title, fontsize=9, y=1.0)
    fig.tight_layout()
    return fig, samples


class SamplingControls(widgets.VBox):
    """The UI that sampling_controls returns: the controls above, the picture below.

    controls: {"label", "cfg", "top_k", "top_p", "temperature", "seed", "steps"} -> widget;
    samples: the images on show, uint8 (n, 3, H, W); draws: how many times it has sampled;
    error: the exception of the last draw, if it failed (it is also shown under the controls).
    Setting a control's value (by hand or in code) samples again and redraws.
    """

    def __init__(self, draw, controls: dict):
        self.controls, self.samples, self.draws, self.error = controls, None, 0, None
        self._draw, self.output = draw, widgets.Output()
        row1 = widgets.HBox([controls["label"], controls["seed"], controls["steps"]])
        row2 = widgets.HBox([controls["cfg"], controls["top_k"]])
        row3 = widgets.HBox([controls["top_p"], controls["temperature"]])
        super().__init__([row1, row2, row3, self.output])
        self.redraw()
        for w in controls.values():
            w.observe(lambda change: self.redraw(), names="value")

    def values(self) -> dict:
        return {name: w.value for name, w in self.controls.items()}

    def redraw(self) -> None:
        try:
            fig, self.samples = self._draw(**self.values())
        except Exception as e:  # shown to the student under the controls (a callback's error is otherwise silent)
            self.error = e
            self.output.outputs = ()
            self.output.append_stderr(f"{type(e).__name__}: {e}\n")
            return
        self.error = None
        self.draws += 1
        self.output.clear_output(wait=True)
        with self.output:
            show(fig)


def sampling_controls(model, tokenizer, class_names, classifier=None, label: int = 0, cfg: float = 4.0,
                      top_k: int = 0, top_p: float = 1.0, temperature: float = 1.0, seed: int = 0, n: int = 8,
                      steps: bool = False) -> SamplingControls:
    """Sample VAR interactively: the class, the CFG strength, top-k, top-p, the temperature and
    the seed; "show the scales" adds how the samples grew. Each change samples n new images (on a CPU,
    about a second for 8 with the cifar10 model) and draws them with sampling_figure.

    model, tokenizer: load_transformer("var_cifar10"). classifier (optional): load_classifier(
    "classifier_cifar10"), to label every sample with the class it sees.
    The other arguments are the controls' first values. Returns the widget: make it the last
    expression of a cell (or display() it).
    """
    _check_sample_args(model, label, seed, n, class_names)
    if not 0 <= cfg <= CFG_MAX:
        raise ValueError(f"cfg={cfg!r}: expected a guidance strength between 0 and {CFG_MAX:g} (the slider's range)")
    if top_k not in TOP_K_CHOICES:
        raise ValueError(f"top_k={top_k!r}: expected one of the slider's values {TOP_K_CHOICES} "
                         "(0 keeps every token)")
    if not TOP_P_MIN <= top_p <= 1.0:
        raise ValueError(f"top_p={top_p!r}: expected a probability between {TOP_P_MIN:g} and 1 (the slider's range; "
                         "1 keeps every token)")
    lo, hi = TEMPERATURE_RANGE
    if not lo <= temperature <= hi:
        raise ValueError(f"temperature={temperature!r}: expected a number between {lo:g} and {hi:g} "
                         "(the slider's range)")
    slider = dict(continuous_update=False, style={"description_width": "initial"})
    controls = {
        "label": widgets.Dropdown(options=[(c, i) for i, c in enumerate(class_names)], value=label,
                                  description="class"),
        "seed": widgets.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed", layout={"width": "160px"}),
        "steps": widgets.Checkbox(value=steps, description="show the scales"),
        "cfg": widgets.FloatSlider(value=cfg, min=0.0, max=CFG_MAX, step=0.5, description="cfg", **slider),
        "top_k": widgets.SelectionSlider(options=[("all", 0)] + [(str(k), k) for k in TOP_K_CHOICES[1:]],
                                         value=top_k, description="top_k", **slider),
        "top_p": widgets.FloatSlider(value=top_p, min=TOP_P_MIN, max=1.0, step=0.05, description="top_p", **slider),
        "temperature": widgets.FloatSlider(value=temperature, min=lo, max=hi, step=0.05, description="temperature",
                                           **slider),
    }

    def draw(**values):
        return sampling_figure(model, tokenizer, n=n, class_names=class_names, classifier=classifier, **values)

    return SamplingControls(draw, controls)


# -- the editor (notebook 07) -------------------------------------------------------------
NO_CLASS = -1  # the editor's class drop-down value for "no class" (labels=None: the null class)


@torch.no_grad()
def edit_one(model, tokenizer, image: torch.Tensor, mask: torch.Tensor, label=None, cfg: float = 4.0, seed: int = 0,
             blend: str = "none") -> dict:
    """Edit one image (3, S, S) (uint8 or in [-1, 1]) with edit_var, seeded: a dict with
    'result' uint8 (3, S, S), 'steps' [uint8 (3, S, S)] * K (the image after each scale),
    'reference' uint8 (3, S, S) (the tokenizer's reconstruction) and 'psnr_outside' (dB, of the
    result against that reconstruction, over the kept pixels). label: None (no class) or a class."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected an integer >= 0")
    if image.dim() != 3:
        raise ValueError(f"image has shape {tuple(image.shape)}: expected one image (3, S, S)")
    device = next(model.parameters()).device
    x = (to_float(image) if image.dtype == torch.uint8 else image.float())[None].to(device)
    generator = torch.Generator(device).manual_seed(seed)
    labels = None if label is None else torch.tensor([int(label)], device=device)
    out, steps = edit_var(model, tokenizer, x, mask, labels, cfg=cfg, generator=generator, blend=blend,
                          return_steps=True)
    reference = tokenizer.tokens_to_img(tokenizer.img_to_tokens(x))
    db = float(psnr_outside(out, reference, mask.float().to(device)[None, None]).clamp_max(100)[0])
    return {"result": to_uint8(out[0].cpu()), "steps": [to_uint8(s[0].cpu()) for s in steps],
            "reference": to_uint8(reference[0].cpu()), "psnr_outside": db}


def editor_figure(model, tokenizer, image: torch.Tensor, region: str = "centre", top: int = 8, left: int = 8,
                  height: int = 16, width: int = 16, label: int | None = None, cfg: float = 4.0, seed: int = 0,
                  blend: str = "none", class_names=None):
    """The picture behind the editor, without widgets: (figure, edit) with edit from edit_one.
    Top row: the original, the masked image, the edit; below, the image after each scale."""
    mask = edit_region_mask(image.shape[-1], region, top, left, height, width)
    edit = edit_one(model, tokenizer, image, mask, label, cfg, seed, blend)
    what = "no class" if label is None else (class_names[label] if class_names is not None else f"class {label}")
    where = f"box top={top} left={left} {height}x{width}" if region == "box" else region
    cfg_text = "" if label is None else f", cfg={cfg:g}"
    title = (f"{where} ({float(mask.float().mean()):.0%} of the image), {what}{cfg_text}, blend={blend}, seed {seed}"
             f"\nPSNR outside the mask: {edit['psnr_outside']:.1f} dB")
    fig = edit_view_figure(image, mask, edit["result"], edit["steps"], tokenizer.patch_nums, title)
    return fig, edit


class Editor(widgets.VBox):
    """The UI that editor() returns: the controls, a Regenerate button, the picture below.

    controls: {"index", "region", "top", "left", "height", "width", "label", "cfg", "seed",
    "blend"} -> widget; button: Regenerate (button.click() in code does what a click does);
    edit: the last edit (edit_one's dict), draws: how many times it has edited; error: the
    exception of the last attempt or None. An error is shown in the output, in red, and kept
    in .error; nothing is swallowed silently.
    """

    def __init__(self, draw, controls: dict):
        self.controls, self.edit, self.error, self.draws = controls, None, None, 0
        self._draw, self.output = draw, widgets.Output()
        self.button = widgets.Button(description="Regenerate", button_style="primary", icon="refresh")
        self.button.on_click(lambda _: self.redraw())
        c = controls
        rows = [widgets.HBox([c["index"], c["label"], c["blend"]]),
                widgets.HBox([c["region"], c["top"], c["left"]]),
                widgets.HBox([c["height"], c["width"]]),
                widgets.HBox([c["cfg"], c["seed"], self.button])]
        super().__init__(rows + [self.output])
        c["region"].observe(lambda change: self._enable_box(), names="value")
        self._enable_box()
        self.redraw()

    def _enable_box(self) -> None:
        for name in ("top", "left", "height", "width"):
            self.controls[name].disabled = self.controls["region"].value != "box"

    def values(self) -> dict:
        v = {name: w.value for name, w in self.controls.items()}
        v["label"] = None if v["label"] == NO_CLASS else v["label"]
        return v

    def redraw(self) -> None:
        self.output.outputs = ()  # clear
        try:
            fig, edit = self._draw(**self.values())
        except Exception as e:  # shown to the student, in the output, and kept
            self.error = e
            self.output.append_stderr(f"{type(e).__name__}: {e}\n")
            return
        self.edit, self.error = edit, None
        self.draws += 1
        with self.output:
            show(fig)


def editor(model, tokenizer, images: torch.Tensor, labels=None, class_names=None, index: int = 0,
           region: str = "centre", label: int | None = None, cfg: float = 16.0, seed: int = 0,
           blend: str = "none") -> Editor:
    """Edit real images with VAR, zero-shot: choose the image, the region to regenerate (a
    preset, or a box placed with the top/left/height/width sliders), the target class ("no
    class": the model only makes the region fit its surroundings), the CFG strength (used only
    with a class), the seed and the blend; "Regenerate" edits anew (on a CPU about a second)
    and shows the original, the masked image, the edit and the image after each scale.

    model, tokenizer: load_transformer("var_cifar10"). images: a few (B, 3, S, S), uint8 or in
    [-1, 1]; labels, class_names: optional, to name the images (and the classes) in the
    drop-downs. The other arguments are the controls' first values. Returns the widget: make
    it the last expression of a cell (or display() it). The picture is editor_figure's.
    """
    n_cls = model.cfg.num_classes
    S = images.shape[-1]
    if images.dim() != 4:
        raise ValueError(f"images has shape {tuple(images.shape)}: expected a batch (B, 3, S, S)")
    if not 0 <= index < len(images):
        raise ValueError(f"index={index}: expected an image index between 0 and {len(images) - 1}")
    if region not in EDIT_REGIONS:
        raise ValueError(f"region={region!r}: expected one of {EDIT_REGIONS}")
    if label is not None and not (isinstance(label, int) and 0 <= label < n_cls):
        raise ValueError(f"label={label!r}: expected None (no class) or a class index between 0 and {n_cls - 1}")
    if not 0 <= cfg <= CFG_MAX:
        raise ValueError(f"cfg={cfg!r}: expected a guidance strength between 0 and {CFG_MAX:g} (the slider's range)")
    if blend not in BLENDS:
        raise ValueError(f"blend={blend!r}: expected one of {BLENDS}")
    if class_names is not None and len(class_names) != n_cls:
        raise ValueError(f"class_names has {len(class_names)} names: expected one per class ({n_cls})")

    def name(i):
        if labels is not None and class_names is not None:
            return f"{i}: {class_names[int(labels[i])]}"
        return str(i)

    cls = [(class_names[c] if class_names is not None else f"class {c}", c) for c in range(n_cls)]
    slider = dict(continuous_update=False, style={"description_width": "initial"}, layout={"width": "220px"})
    controls = {
        "index": widgets.Dropdown(options=[(name(i), i) for i in range(len(images))], value=index, description="image"),
        "label": widgets.Dropdown(options=[("no class", NO_CLASS)] + cls, value=NO_CLASS if label is None else label,
                                  description="class"),
        "blend": widgets.Dropdown(options=list(BLENDS), value=blend, description="blend"),
        "region": widgets.Dropdown(options=list(EDIT_REGIONS), value=region, description="region"),
        "top": widgets.IntSlider(value=S // 4, min=0, max=S - 1, description="box top", **slider),
        "left": widgets.IntSlider(value=S // 4, min=0, max=S - 1, description="box left", **slider),
        "height": widgets.IntSlider(value=S // 2, min=1, max=S, description="box height", **slider),
        "width": widgets.IntSlider(value=S // 2, min=1, max=S, description="box width", **slider),
        "cfg": widgets.FloatSlider(value=cfg, min=0.0, max=CFG_MAX, step=0.5, description="cfg (with a class)",
                                   **slider),
        "seed": widgets.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed", layout={"width": "160px"}),
    }

    def draw(index, **values):
        return editor_figure(model, tokenizer, images[index], class_names=class_names, **values)

    return Editor(draw, controls)


# -- the scaling-law fit (notebook 08) ------------------------------------------------------
class ScalingFit(widgets.VBox):
    """The UI that scaling_fit returns: a check box per VAR model, the plots below.

    boxes: {depth: Checkbox}; fit: the last fit of test loss against parameters (a dict of
    powerlaw.fit_power_law, or None when fewer than 3 models are ticked); message: the line
    printed above the plots.
    """

    def __init__(self, models: list[dict], kind: str):
        self.models, self.kind, self.fit = models, kind, None
        depths = sorted({m["depth"] for m in models if m["kind"] == kind})
        self.boxes = {d: widgets.Checkbox(value=True, description=f"d={d}", indent=False, layout={"width": "70px"})
                      for d in depths}
        self.output = widgets.Output()
        super().__init__([widgets.HBox(list(self.boxes.values())), self.output])
        for box in self.boxes.values():
            box.observe(lambda change: self.redraw(), names="value")
        self.redraw()

    def chosen(self) -> list[int]:
        return [d for d, box in self.boxes.items() if box.value]

    def redraw(self) -> None:
        depths = self.chosen()
        rows = sorted((m for m in self.models if m["kind"] == self.kind and m["depth"] in depths),
                      key=lambda m: m["parameters"])
        self.fit = (fit_power_law([m["parameters"] for m in rows], [m["test_loss"] for m in rows])
                    if len(rows) >= 3 else None)
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for ax, x in zip(axes, ("parameters", "train_flops")):
            scaling_figure(self.models, x=x, kinds=(self.kind,), fit_depths={self.kind: depths}, ax=ax)
        if self.fit is None:
            self.message = f"tick at least 3 models to fit a power law ({len(rows)} ticked)"
        else:
            self.message = (f"{len(rows)} models, {rows[0]['parameters'] / 1e6:.2f}-{rows[-1]['parameters'] / 1e6:.2f} M "
                            f"parameters: alpha = {self.fit['alpha']:.4f} ± {self.fit['alpha_se']:.4f}, "
                            f"Pearson r = {self.fit['pearson_r']:.4f}")
        self.output.clear_output(wait=True)
        with self.output:
            print(self.message)
            show(fig)


def scaling_fit(models: list[dict], kind: str = "var") -> ScalingFit:
    """Choose which model sizes enter the power-law fit: tick or untick a depth and the fit of
    test loss against parameters and against compute is redone and redrawn (no training).

    models: results/scaling_<dataset>.json's metrics["models"]. Returns the widget.
    """
    if not any(m["kind"] == kind for m in models):
        raise ValueError(f"kind={kind!r}: no such models in the sweep (it has {sorted({m['kind'] for m in models})})")
    return ScalingFit(models, kind)
