"""Configurations as dataclasses, and the named presets.

A config is a plain dataclass, so it prints, compares and travels inside every
checkpoint as a dict: ``TokenizerConfig(**ckpt["config"])`` rebuilds the model with
nothing else (the nanoGPT habit).

Presets
-------
``cifar10``       32 px images, downsampling 4 -> 8x8 latent, scales (1,2,3,4,6,8): 130 tokens
``imagenette64``  64 px images, downsampling 4 -> 16x16 latent, the paper's 10 scales: 680 tokens
``tiny``          16 px toy images for unit tests: 4x4 latent, scales (1,2,4), a small codebook
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


def check_at_least(config, **lowest) -> None:
    """Raise a ValueError naming the first field of config below its lowest allowed value.
    An int bound asks for an integer, a float bound for any number:
    ``check_at_least(tcfg, batch_size=1, lr=0.0)``. (lr is checked > 0 separately.)"""
    for name, low in lowest.items():
        value = getattr(config, name)
        want_int = isinstance(low, int)
        if isinstance(value, bool) or not isinstance(value, int if want_int else (int, float)) or value < low:
            raise ValueError(f"{name}={value!r}: expected {'an integer' if want_int else 'a number'} >= {low}")


def check_training_numbers(config) -> None:
    """The checks every *TrainConfig shares: counts and periods, a positive learning rate."""
    fields = {f.name for f in dataclasses.fields(config)}
    check_at_least(config, **{k: v for k, v in dict(
        steps=1, epochs=1, batch_size=1, warmup_steps=0, ckpt_every=1, log_every=1, eval_every=0,
        restart_every=0, seed=0, subset=0, weight_decay=0.0, min_lr_ratio=0.0, grad_clip=0.0,
        label_smoothing=0.0, cutout=0, crop_pad=0).items() if k in fields})
    if not (isinstance(config.lr, (int, float)) and config.lr > 0):
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
    phi_shared: int = 4  # number of phi convs shared across the K scales

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
