"""The CIFAR-10 evaluation classifier: the eyes that FID_cls and class agreement look through.

Why a classifier of our own: the usual FID compares Inception-v3 features, whose weights
are a download; a course machine may be offline, and 32 px CIFAR images are upsampled
to 299 px for Inception anyway. So the project trains its own small classifier (in
about two minutes on one GPU, ``python -m var_tutorial train-classifier``) and measures
generated images with it (metrics.py):

- *class agreement*: how often the classifier names the class a sample was generated for;
- *FID_cls*: the Frechet distance between the classifier's penultimate features of the
  samples and of the real test images. It is NOT Inception FID: its numbers cannot be
  compared with published FIDs, only with each other (same classifier, same data).

Architecture: a ResNet-9-style network after David Page's fast CIFAR-10 ResNet ("How to
train your ResNet", 2018), narrower so that it ships in under 5 MB. With width w = 64:

    prep     conv3x3(3 -> w)    BN ReLU                              (B,  64, 32, 32)
    layer1   conv3x3(w -> 2w)   BN ReLU maxpool2   + Res(2w)         (B, 128, 16, 16)
    layer2   conv3x3(2w -> 4w)  BN ReLU maxpool2                     (B, 256,  8,  8)
    layer3   conv3x3(4w -> 4w)  BN ReLU maxpool2   + Res(4w)         (B, 256,  4,  4)
    pool     global max pool                  -> features(x)         (B, 256)   penultimate
    head     Linear(4w -> 10) x 0.125         -> forward(x)          (B, 10)    logits

    Res(c): x + ConvBNReLU(ConvBNReLU(x)), both convs c -> c

The head's output is scaled by 0.125, as in Page's network: small logits at the start keep
the label-smoothed loss from saturating early. At test time (features_and_logits) the
logits are averaged over the image and its mirror image ("flip test-time augmentation").

2.44 M parameters at w = 64 (4.9 MB in float16).

The second judge (``arch="resnet18"``) is torchvision's ResNet-18 with a small-image stem:
deeper, with four stages, average instead of max pooling and 512 features; 11.2 M parameters,
trained by the same recipe with its own seed. Where both judges rank two generators alike,
the ranking is not a quirk of one network. Inputs are images in [-1, 1]
(data.to_float); the network is fully convolutional, so the 16 px toy images of the
tests go through it too.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from .config import ClassifierConfig
from .data import to_float


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """x + ConvBNReLU(ConvBNReLU(x))."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(c, c), conv_bn(c, c))

    def forward(self, x):
        return x + self.body(x)


def resnet18_trunk(num_classes: int) -> tuple[nn.Module, nn.Linear]:
    """torchvision's ResNet-18 with the usual stem for small images (a 3x3 stride-1 first
    conv and no max pool, so a 32 px image is not shrunk to 8 px at once), split into the
    trunk that ends in global average pooling (B, 512) and its linear head."""
    net = torchvision.models.resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
    net.maxpool = nn.Identity()
    head, net.fc = net.fc, nn.Identity()
    return net, head


class Classifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg, w = cfg, cfg.width
        if cfg.arch == "resnet18":  # the second judge
            self.net, self.head = resnet18_trunk(cfg.num_classes)
            return
        self.net = nn.Sequential(
            conv_bn(3, w),  # prep
            conv_bn(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w),  # layer1
            conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),  # layer2
            conv_bn(4 * w, 4 * w), nn.MaxPool2d(2), Residual(4 * w),  # layer3
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),  # (B, 4w)
        )
        self.head = nn.Linear(4 * w, cfg.num_classes)

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: images (B, 3, S, S) in [-1, 1] -> (B, 4w)."""
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes)."""
        return self.logits(self.features(x))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) from penultimate features (B, 4w)."""
        return self.head(features) * self.cfg.logit_scale


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """The fast-CIFAR augmentation: a random S x S crop of the image padded by `pad` pixels
    (reflection), flipped left-right with probability 1/2. x: (B, 3, S, S) -> (B, 3, S, S).

    The random numbers come from `generator` (on the CPU), so a seeded run is repeatable.
    """
    B, _, S, _ = x.shape
    dev = x.device
    offset = torch.randint(0, 2 * pad + 1, (2, B), generator=generator).to(dev)  # top, left of each crop
    flip = (torch.rand(B, generator=generator) < 0.5).to(dev)
    x_pad = F.pad(x, (pad, pad, pad, pad), mode="reflect")  # (B, 3, S + 2 pad, S + 2 pad)
    ar = torch.arange(S, device=dev)
    rows = offset[0][:, None] + ar  # (B, S)
    cols = offset[1][:, None] + ar  # (B, S)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flip reads the columns backwards
    out = x_pad[torch.arange(B, device=dev)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B, S, S, 3)
    return out.permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, generator: torch.Generator, size: int = 8) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017): a random size x size square of each image set to 0
    (mid-grey in [-1, 1]); squares are centred anywhere, so they may be clipped at the
    border. x: (B, 3, S, S) -> a new tensor of the same shape."""
    B, _, S, _ = x.shape
    dev = x.device
    centre = torch.randint(0, S, (2, B), generator=generator).to(dev)  # row, column of each square's centre
    start = centre - size // 2  # (2, B): first row and column of each square, perhaps < 0
    ar = torch.arange(S, device=dev)
    inside = (ar >= start[..., None]) & (ar < start[..., None] + size)  # (2, B, S): rows, columns
    inside_rows, inside_cols = inside
    hole = inside_rows[:, :, None] & inside_cols[:, None, :]  # (B, S, S)
    return x.masked_fill(hole[:, None], 0.0)


@torch.no_grad()
def features_and_logits(model: Classifier, images_u8: torch.Tensor, batch_size: int = 1000,
                        device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features (N, D) and logits (N, num_classes), float32 on the CPU.
    The logits are averaged over each image and its mirror image (flip test-time
    augmentation); the features are those of the image as it is.

    images_u8: uint8 (N, 3, S, S), the form real images are stored in; generated images
    are rounded to uint8 first (data.to_uint8), so that both are measured alike.
    """
    if images_u8.dtype != torch.uint8:
        raise ValueError(f"images_u8 has dtype {images_u8.dtype}: expected uint8 (use data.to_uint8 on generated images)")
    device = torch.device(device or next(model.parameters()).device)
    was_training = model.training
    model.eval()
    feats, logits = [], []
    for i in range(0, len(images_u8), batch_size):
        x = to_float(images_u8[i : i + batch_size].to(device))
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            f = model.features(x)
            mirrored = model.features(x.flip(-1))
            logits.append(((model.logits(f) + model.logits(mirrored)) / 2).float().cpu())
        feats.append(f.float().cpu())
    model.train(was_training)
    if not feats:
        return torch.zeros(0, model.feature_dim), torch.zeros(0, model.cfg.num_classes)
    return torch.cat(feats), torch.cat(logits)
