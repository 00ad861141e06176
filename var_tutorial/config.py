"""Every configuration of the library, as dataclasses, and the named presets.

A config is a plain dataclass, so it prints, compares and travels inside every
checkpoint as a dict: ``TokenizerConfig(**ckpt["config"])`` rebuilds the model with
nothing else (the nanoGPT habit).

    TokenizerConfig, TokenizerTrainConfig       the VQ-VAE and how it is trained
    TransformerConfig, TransformerTrainConfig   VAR / the raster baseline and how they are trained
    SelfForcing                                 VAR fine-tuned on its own draws (exposure bias)
    transformer_config(kind, preset, tokenizer) a transformer fitted to its tokenizer
    check_fits(tokenizer, transformer)          whether a transformer can learn a tokenizer's tokens
    ClassifierConfig, ClassifierTrainConfig     the evaluation classifier (metrics.py's judge)

Presets
-------
``cifar10``       32 px images, downsampling 4 -> 8x8 latent, scales (1,2,3,4,6,8): 130 tokens
``imagenette64``  64 px images, downsampling 4 -> 16x16 latent, the paper's 10 scales: 680 tokens
``tiny``          16 px toy images for unit tests: 4x4 latent, scales (1,2,4), a small codebook
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


def check_at_least(config, **lowest) -> None:
    """Raise a ValueError naming the first field of config below its lowest allowed value.
    An int bound asks for an integer, a float bound for any number:
    ``check_at_least(tcfg, batch_size=1, lr=0.0)``. (lr is checked > 0 separately.)"""
    for name, low in lowest.items():
        value = getattr(config, name)
        want_int = isinstance(low, int)
        if isinstance(value, bool) or not isinstance(value, int if want_int else (int, float)) \
                or not low <= value < math.inf:  # NaN fails too: every comparison with NaN is False
            raise ValueError(f"{name}={value!r}: expected {'an integer' if want_int else 'a number'} >= {low}")


def check_training_numbers(config) -> None:
    """The checks every *TrainConfig shares: counts and periods, a positive learning rate."""
    fields = {f.name for f in dataclasses.fields(config)}
    check_at_least(config, **{k: v for k, v in dict(
        steps=1, epochs=1, batch_size=1, warmup_steps=0, ckpt_every=1, log_every=1, eval_every=0,
        restart_every=0, seed=0, subset=0, weight_decay=0.0, min_lr_ratio=0.0, grad_clip=0.0,
        label_smoothing=0.0, cutout=0, crop_pad=0, holdout=0).items() if k in fields})
    if not (isinstance(config.lr, (int, float)) and 0 < config.lr < math.inf):
        raise ValueError(f"lr={config.lr!r}: expected a learning rate > 0")


def _check_schedule(patch_nums, latent_size: int, argument: str = "patch_nums") -> tuple[int, ...]:
    """A scale schedule must be positive, strictly increasing, and end at the latent size."""
    pns = tuple(int(p) for p in patch_nums)
    if len(pns) == 0 or any(p < 1 for p in pns):
        raise ValueError(f"{argument}={pns!r}: expected a non-empty tuple of positive side lengths, e.g. (1, 2, 3, 4, 6, 8)")
    if any(b <= a for a, b in zip(pns, pns[1:])):
        raise ValueError(f"{argument}={pns!r}: the schedule must increase strictly (each token map larger than the last)")
    if pns[-1] != latent_size:
        raise ValueError(
            f"{argument}={pns!r}: the last scale must equal the latent size {latent_size}x{latent_size} "
            f"(image_size / downsampling factor), got {pns[-1]}x{pns[-1]}"
        )
    return pns


class ConfigDict:
    """to_dict / from_dict for the config dataclasses: a config travels in a checkpoint as a dict."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(
                f"config has keys {sorted(unknown)} that {cls.__name__} does not know: "
                "the checkpoint was written by a different version of var_tutorial"
            )
        return cls(**d)


@dataclass
class TokenizerConfig(ConfigDict):
    """The VQ-VAE tokenizer: a conv encoder/decoder around a vector quantizer.

    ``quantizer="multiscale"`` is VAR's residual quantizer over ``patch_nums``;
    ``quantizer="single"`` is the classic one-scale VQ-VAE over the last scale only
    (the tokenizer of the raster next-token baseline).
    """

    image_size: int = 32
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)  # one level per entry; len-1 downsamplings by 2
    num_res_blocks: int = 1  # per encoder level; the decoder gets one more (as in LDM / taming)
    latent_channels: int = 32  # Cvae in the paper
    vocab_size: int = 4096  # V, one codebook shared by every scale
    quantizer: str = "multiscale"  # "multiscale" | "single"
    patch_nums: tuple[int, ...] = (1, 2, 3, 4, 6, 8)
    beta: float = 0.25  # commitment weight
    phi_ratio: float = 0.5  # phi(h) = (1 - ratio) * h + ratio * conv3x3(h)
    phi_shared: int = 4  # number of phi convs shared across the K scales; 0: one per scale

    def __post_init__(self):
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.patch_nums = tuple(int(p) for p in self.patch_nums)
        if self.quantizer not in ("multiscale", "single"):
            raise ValueError(f"quantizer={self.quantizer!r}: expected 'multiscale' or 'single'")
        if self.image_size % self.downsample != 0:
            raise ValueError(
                f"image_size={self.image_size}: expected a multiple of the downsampling factor {self.downsample}"
            )
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size={self.vocab_size}: expected at least 2 codes")
        if isinstance(self.phi_shared, bool) or not isinstance(self.phi_shared, int) or self.phi_shared < 0:
            raise ValueError(f"phi_shared={self.phi_shared!r}: expected the number of phi convs the scales share "
                             "(4 in VAR), or 0 for one per scale")
        _check_schedule(self.patch_nums, self.latent_size)
        if self.quantizer == "single" and len(self.patch_nums) != 1:
            # the single-scale VQ-VAE has exactly one token map: the full latent grid
            self.patch_nums = (self.latent_size,)

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample

    @property
    def num_tokens(self) -> int:
        """Total tokens per image: sum of pn^2 over the schedule (130 for CIFAR's)."""
        return sum(p * p for p in self.patch_nums)



@dataclass
class TokenizerTrainConfig(ConfigDict):
    """How the tokenizer is trained (the model itself is described by TokenizerConfig)."""

    dataset: str = "cifar10"
    steps: int = 20_000
    batch_size: int = 256
    lr: float = 4e-4
    warmup_steps: int = 500
    min_lr_ratio: float = 0.05  # cosine decay down to lr * min_lr_ratio
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    restart_every: int = 200  # dead-code restart period (steps); 0 disables it
    ckpt_every: int = 2_000
    log_every: int = 100
    seed: int = 0
    subset: int = 0  # >0: train on `subset` images spread evenly over the split (CPU quick mode)
    init_from: str = ""  # weights file to start from (a second, lower-lr stage), "" = from scratch

    def __post_init__(self):
        check_training_numbers(self)


TOKENIZER_PRESETS: dict[str, TokenizerConfig] = {
    "cifar10": TokenizerConfig(image_size=32, patch_nums=(1, 2, 3, 4, 6, 8)),
    "imagenette64": TokenizerConfig(image_size=64, patch_nums=(1, 2, 3, 4, 5, 6, 8, 10, 13, 16)),
    "tiny": TokenizerConfig(
        image_size=16, base_channels=16, channel_mult=(1, 2, 2), latent_channels=8,
        vocab_size=64, patch_nums=(1, 2, 4),
    ),
}


def copy_preset(presets: dict, name: str, **fields):
    """A fresh copy of presets[name] with some fields replaced; the preset table stays untouched."""
    if name not in presets:
        raise ValueError(f"preset={name!r}: unknown preset; expected one of {sorted(presets)}")
    d = presets[name].to_dict()
    d.update(fields)
    return type(presets[name]).from_dict(d)


def tokenizer_preset(name: str, quantizer: str = "multiscale", **overrides) -> TokenizerConfig:
    """A fresh copy of a named preset, optionally single-scale, with fields overridden."""
    return copy_preset(TOKENIZER_PRESETS, name, quantizer=quantizer, **overrides)


# -- the transformers: VAR (next-scale) and the raster baseline (next-token) -----------------
@dataclass
class TransformerConfig(ConfigDict):
    """The transformer; ``kind="var"`` (next-scale) or ``kind="raster"`` (next-token).
    key_bias=False and drop_path > 0 (with dropout=0) are the reference implementation's choices;
    docs/reference_differences.md names every difference from it and what it changes."""

    kind: str = "var"  # "var" | "raster"
    vocab_size: int = 4096  # V: must equal the tokenizer's
    latent_channels: int = 32  # Cvae: width of the teacher-forcing inputs (VAR only)
    num_classes: int = 10  # class label num_classes is the null class of CFG
    patch_nums: tuple[int, ...] = (1, 2, 3, 4, 6, 8)  # raster: only the last one is used
    depth: int = 6
    width: int = 256
    heads: int = 4
    mlp_ratio: float = 4.0
    class_dropout: float = 0.1  # probability of replacing a label by the null class in training
    qk_norm: bool = True  # VAR's attn_l2_norm: cosine attention with a learned per-head scale
    dropout: float = 0.0  # on the attention probabilities and the MLP's output
    key_bias: bool = True  # a learned bias on the keys; the reference fixes it at 0 (False)
    drop_path: float = 0.0  # stochastic depth of the last block (the reference's drop_path_rate), 0 at the first

    def __post_init__(self):
        self.patch_nums = tuple(int(p) for p in self.patch_nums)
        if self.kind not in ("var", "raster"):
            raise ValueError(f"kind={self.kind!r}: expected 'var' (next-scale) or 'raster' (next-token)")
        _check_schedule(self.patch_nums, self.patch_nums[-1] if self.patch_nums else 0)
        if self.kind == "var" and self.patch_nums[0] != 1:
            # the reference starts a larger first scale from pn_1^2 start tokens; we keep the one class token
            raise ValueError(f"patch_nums={self.patch_nums!r}: VAR's first scale must be 1 (a 1x1 map predicted from "
                             f"the class token alone), got {self.patch_nums[0]}x{self.patch_nums[0]}")
        if self.kind == "raster":
            self.patch_nums = (self.patch_nums[-1],)  # one token map: the full latent grid
        for name in ("vocab_size", "latent_channels", "num_classes", "depth", "width", "heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected a positive integer")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size={self.vocab_size}: expected at least 2 codes")
        if self.width % self.heads != 0:
            raise ValueError(f"width={self.width}, heads={self.heads}: width must be a multiple of heads")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio={self.mlp_ratio}: expected a positive number (4 in GPT-2 and VAR)")
        for name in ("qk_norm", "key_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r}: expected True or False")
        for name in ("class_dropout", "dropout", "drop_path"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}={getattr(self, name)}: expected a probability in [0, 1)")

    @property
    def num_tokens(self) -> int:
        """L: sum of pn^2 (130 for CIFAR's next-scale schedule, 64 for its raster baseline)."""
        return sum(p * p for p in self.patch_nums)


TRANSFORMER_PRESETS: dict[str, TransformerConfig] = {
    # depth 8, width 192: 6.2 M parameters, 12.5 MB in fp16, so that tokenizers + classifier + VAR
    # stay within the 32 MB budget for shipped weights. Dropout 0.1, as the shipped models were
    # trained: 50k images are few (even so, the raster baseline's validation loss rises after 2k steps)
    "cifar10": TransformerConfig(patch_nums=(1, 2, 3, 4, 6, 8), depth=8, width=192, heads=6, dropout=0.1),
    # 64 px, the paper's 10 scales (680 tokens): depth 8, width 256, 10.8 M parameters. Dropout 0.1:
    # Imagenette has only 9,469 training images, five times fewer than CIFAR-10
    "imagenette64": TransformerConfig(patch_nums=(1, 2, 3, 4, 5, 6, 8, 10, 13, 16), depth=8, width=256, heads=4,
                                      dropout=0.1),
    "tiny": TransformerConfig(vocab_size=64, latent_channels=8, patch_nums=(1, 2, 4), depth=2, width=64, heads=2),
}


def transformer_preset(name: str, kind: str = "var", **overrides) -> TransformerConfig:
    """A fresh copy of a named preset (matching the tokenizer preset of the same name)."""
    return copy_preset(TRANSFORMER_PRESETS, name, kind=kind, **overrides)


@dataclass
class TransformerTrainConfig(ConfigDict):
    """How a transformer is trained (the model itself is described by TransformerConfig)."""

    dataset: str = "cifar10"
    tokenizer: str = "tokenizer_cifar10"  # the file the tokenizer came from (registry name or path), for the record
    steps: int = 20_000
    batch_size: int = 256
    lr: float = 1e-3
    warmup_steps: int = 500
    min_lr_ratio: float = 0.01  # cosine decay down to lr * min_lr_ratio
    weight_decay: float = 0.05  # AdamW betas (0.9, 0.95), as in VAR
    grad_clip: float = 2.0
    ckpt_every: int = 2_000
    log_every: int = 100
    eval_every: int = 1_000  # validation loss (held-out training images, else the test split); 0 = never
    holdout: int = 0  # >0: this many training images (with their mirrors) are never learnt from, only validated on
    seed: int = 0
    subset: int = 0  # >0: `subset` images of each split only, spread over the classes (CPU quick mode)
    keep_best: bool = False  # return (and export) the weights of the lowest validation loss: early stopping

    def __post_init__(self):
        check_training_numbers(self)


@dataclass
class SelfForcing(ConfigDict):
    """Fine-tuning VAR on its own context (train/transformer.self_forced_loss), against exposure bias.

    ``fraction`` of every batch learns with the input of scale k+1 built from the model's own
    draws at scales 1..k instead of the true token maps; the rest is plain teacher forcing,
    so fraction=0 is ordinary training. ``draw``: how the model's tokens are drawn ("sample",
    as when generating, or "argmax"). ``target``: what those rows learn, the image's true
    tokens ("truth") or the teacher-forced pass's distribution ("teacher", the student-forcing
    loss of Self-Autoregressive Refinement). ``init_from``: the weights the fine-tuning starts from.
    """

    init_from: str = "var_cifar10"
    fraction: float = 0.5
    draw: str = "sample"
    target: str = "truth"

    def __post_init__(self):
        if not (isinstance(self.fraction, (int, float)) and 0 <= self.fraction <= 1):
            raise ValueError(f"fraction={self.fraction!r}: expected a fraction of the batch in [0, 1]")
        if self.draw not in ("sample", "argmax"):
            raise ValueError(f"draw={self.draw!r}: expected 'sample' or 'argmax'")
        if self.target not in ("truth", "teacher"):
            raise ValueError(f"target={self.target!r}: expected 'truth' (the true tokens) or 'teacher' "
                             "(the teacher-forced pass's distribution)")


def transformer_config(kind: str, preset: str, tokenizer_cfg: TokenizerConfig, **overrides) -> TransformerConfig:
    """The preset's transformer, fitted to the tokenizer whose tokens it will learn: the same
    vocabulary, latent width (Cvae) and scale schedule. VAR needs the multi-scale tokenizer,
    the raster baseline the single-scale one. This is the one place where a transformer's
    config is derived from a tokenizer's; check_fits says whether a given pair fits."""
    if kind not in ("var", "raster"):
        raise ValueError(f"model={kind!r}: expected 'var' (next-scale) or 'raster' (next-token)")
    fitted = {"vocab_size": tokenizer_cfg.vocab_size, "patch_nums": tokenizer_cfg.patch_nums,
              "latent_channels": tokenizer_cfg.latent_channels}
    cfg = transformer_preset(preset, kind, **{**fitted, **overrides})
    check_fits(tokenizer_cfg, cfg)  # an override (of vocab_size, say) may have undone the fit
    return cfg


def check_fits(tokenizer_cfg: TokenizerConfig, transformer_cfg: TransformerConfig) -> None:
    """Raise a ValueError unless the transformer can learn the tokenizer's tokens.

    They fit when the tokenizer has the quantizer the model needs (VAR: multi-scale, raster:
    single-scale), and both agree on the vocabulary V, the scale schedule patch_nums (the
    raster model's is the one full-size token map) and, for VAR, the width Cvae of the
    teacher-forcing inputs. transformer_config, train_transformer (and so the scaling sweep)
    and pretrained.load_transformer call it."""
    kind = transformer_cfg.kind
    needs = "multiscale" if kind == "var" else "single"
    if tokenizer_cfg.quantizer != needs:
        raise ValueError(
            f"tokenizer has quantizer={tokenizer_cfg.quantizer!r}: the {kind} model needs a {needs!r} tokenizer "
            f"({'tokenizer' if kind == 'var' else 'vqvae'}_cifar10 for CIFAR-10)"
        )
    fields = ("vocab_size", "patch_nums") + (("latent_channels",) if kind == "var" else ())
    got, want = ({k: getattr(c, k) for k in fields} for c in (transformer_cfg, tokenizer_cfg))
    if got != want:
        raise ValueError(f"the {kind} transformer has {got}: expected its tokenizer's {want} "
                         "(transformer_config fits a preset to a tokenizer)")


# -- the evaluation classifier ----------------------------------------------------------------
@dataclass
class ClassifierConfig(ConfigDict):
    """The judge. ``arch="resnet9"`` is the project's own network (classifier.py);
    ``arch="resnet18"`` is torchvision's ResNet-18, the second judge: built differently, so
    that a ranking of generators that both judges agree on is not an artifact of one network."""

    width: int = 64  # w: channels of the first conv; the widest layer has 4w (resnet9 only)
    num_classes: int = 10
    logit_scale: float = 0.125  # the head's output is multiplied by this
    arch: str = "resnet9"  # "resnet9" | "resnet18"

    def __post_init__(self):
        if self.arch not in ("resnet9", "resnet18"):
            raise ValueError(f"arch={self.arch!r}: expected 'resnet9' (the project's judge) or 'resnet18' (the second)")
        if self.arch == "resnet18" and self.width != 64:
            raise ValueError(f"width={self.width} with arch='resnet18': torchvision's ResNet-18 has a fixed width, 64")
        for name in ("width", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected a positive integer")
        if not self.logit_scale > 0:
            raise ValueError(f"logit_scale={self.logit_scale}: expected a positive number")


@dataclass
class ClassifierTrainConfig(ConfigDict):
    """The fast-CIFAR recipe (Page 2018): SGD with Nesterov momentum, warm-up and decay,
    label smoothing, random crops, flips and cutout, batch 512."""

    dataset: str = "cifar10"
    epochs: int = 40
    batch_size: int = 512
    lr: float = 0.4
    warmup_fraction: float = 0.15
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    cutout: int = 8  # side of the square cut out of every training image (0: none); 16 at 64 px
    crop_pad: int = 4  # random crops of the image padded by this many pixels; 8 at 64 px
    log_every: int = 100
    seed: int = 0
    subset: int = 0

    def __post_init__(self):
        check_training_numbers(self)
