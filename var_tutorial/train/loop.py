"""The pieces every training loop is built from (tokenizer.py, transformer.py, classifier.py).

    pick_device       the device asked for, else the GPU if there is one
    setup_device      the same, and on a GPU TF32 matmuls next to bf16 autocast
    compiled          torch.compile, falling back to eager code instead of failing a GPU run
    lr_at, set_lr     linear warm-up, then cosine decay
    param_groups      weight decay on weight matrices only
    batch_indices     a step's batch: a slice of a seeded permutation, the same after a resume
    batch_at          the same for images, as floats in [-1, 1], randomly mirrored
    training_set      a data set's uint8 images and labels (or toy images for the tests)
    Steps             the step counter: progress bar, time budget, stop_after
    save_checkpoint   atomic torch.save
    load_checkpoint   torch.load(weights_only=True), refusing a checkpoint of another run
"""
from __future__ import annotations

import functools
import math
import os
import time
from pathlib import Path

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .. import distributed
from ..data import load_split, to_float, toy_dataset


def pick_device(device=None) -> torch.device:
    """The device asked for (a name such as "cpu" or "cuda:1"), else the GPU if there is one."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def setup_device(device=None) -> tuple[torch.device, bool]:
    """The device, and whether it is a GPU (where TF32 matmuls are allowed next to bf16 autocast)."""
    device = pick_device(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device, device.type == "cuda"


def compiled(model: nn.Module, compile: bool | str) -> nn.Module:
    """model wrapped by torch.compile (compile=True: inductor; a string: that backend), or
    model itself (compile=False). Should compilation fail on some PyTorch version, the
    failing code runs eagerly with a warning instead of ending a paid-for GPU run."""
    if not compile:
        return model
    torch._dynamo.config.suppress_errors = True
    return torch.compile(model, backend=compile if isinstance(compile, str) else "inductor")


def lr_at(step: int, total: int, base_lr: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to base_lr * min_ratio."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Optimizer parameter groups: weight decay on the weight matrices of Linear and Conv2d
    layers only; none on biases, norm layers, embeddings (nn.Embedding, learned positions)
    and per-head attention scales, whose size should not be pulled towards zero."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            is_weight_matrix = isinstance(module, (nn.Linear, nn.Conv2d)) and name == "weight"
            (decay if is_weight_matrix else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@functools.lru_cache(maxsize=2)
def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def batch_indices(n: int, step: int, batch_size: int, seed: int) -> torch.Tensor:
    """The rows of a step's batch: a slice of a seeded per-epoch permutation of range(n)."""
    per_epoch = max(1, n // batch_size)
    epoch, i = divmod(step, per_epoch)
    return _epoch_order(n, seed, epoch)[i * batch_size : (i + 1) * batch_size]


def batch_at(images_u8: torch.Tensor, step: int, batch_size: int, seed: int) -> torch.Tensor:
    """The batch of a given step, as floats in [-1, 1], randomly flipped left-right."""
    idx = batch_indices(len(images_u8), step, batch_size, seed)
    x = to_float(images_u8[idx.to(images_u8.device)])
    flip = torch.rand(len(idx), generator=torch.Generator().manual_seed(seed * 7_919 + step)) < 0.5
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)


def training_set(dataset: str, split: str, image_size: int | None = None, subset: int = 0):
    """uint8 images (N, 3, S, S) and labels (N,): a real data set, or 'toy' (generated, for
    tests; its test split is drawn with another seed). subset > 0 keeps `subset` images
    spread evenly over the split, which is sorted by class, so that every class is in it."""
    if dataset == "toy":
        images, labels = toy_dataset(n=subset or 256, image_size=image_size or 32, seed=0 if split == "train" else 1)
    else:
        images, labels = load_split(dataset, split)
    if image_size is not None and images.shape[-1] != image_size:
        raise ValueError(f"dataset={dataset!r} has {images.shape[-1]} px images: the model expects {image_size} px")
    if 0 < subset < len(images):
        keep = torch.linspace(0, len(images) - 1, subset).round().long()
        images, labels = images[keep], labels[keep]
    return images, labels


class Steps:
    """The step counter of a training loop, with its progress bar, stop_after and time budget.

        loop = Steps(step, total, minutes, stop_after)
        while loop.running:
            ... train step number loop.step ...
            step = loop.advance()                                # steps done so far
            if step % log_every == 0 or loop.finished: ...       # finished: the run's last step
            if step % ckpt_every == 0 or loop.stopping: ...      # stopping: this call's last step

    minutes: steps 20..60 are timed (after torch.compile's slow first steps), and the total
    becomes the number of steps that fit in the budget. The budget is also a deadline: a run
    that slows down later still ends in time. stop_after=N ends this call after N steps, so
    that a long run can be split over several 10-minute GPU commands (the caller saves a
    checkpoint at loop.stopping; calling again resumes).
    """

    def __init__(self, step: int, total: int, minutes: float | None = None, stop_after: int | None = None,
                 cuda: bool = False, desc: str = "", progress: bool = True, clock=time.time):
        self.step, self.total, self.minutes, self.cuda, self.clock = step, total, minutes, cuda, clock
        self.stop = math.inf if stop_after is None else step + stop_after
        self.t_start, self.t_mark = clock(), None
        self.bar = tqdm(total=total, initial=step, desc=desc, disable=not progress or not distributed.is_main())

    @property
    def running(self) -> bool:
        return self.step < min(self.total, self.stop)

    @property
    def finished(self) -> bool:
        return self.step == self.total

    @property
    def stopping(self) -> bool:
        return self.step == min(self.total, self.stop)

    @property
    def seconds(self) -> float:
        return round(self.clock() - self.t_start, 2)

    def advance(self) -> int:
        self.step += 1
        self.bar.update(1)
        if self.minutes is not None:
            self._keep_to_budget()
        return self.step

    def _keep_to_budget(self) -> None:
        if self.cuda and self.step in (20, 60):
            torch.cuda.synchronize()  # time finished work, not queued work
        now = self.clock()
        if self.step == 20:
            self.t_mark = now
        elif self.step == 60 and self.t_mark is not None:
            per_step = (now - self.t_mark) / 40
            # 2% is kept back for what the timed steps did not include (validation, checkpoints)
            fit = int((0.98 * self.minutes * 60 - (now - self.t_start)) / per_step)
            self._set_total(distributed.agree_int(self.step + max(1, fit), self._device))  # rank 0's count
            if distributed.is_main():
                print(f"\n{per_step * 1000:.1f} ms/step -> {self.total} steps fit in {self.minutes} min")
        if distributed.any_rank(now - self.t_start > self.minutes * 60, self._device):
            self._set_total(self.step)  # the deadline has passed (on some rank): this was the last step

    @property
    def _device(self) -> str:
        return "cuda" if self.cuda else "cpu"

    def _set_total(self, total: int) -> None:
        self.total = total
        self.bar.total = total
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def save_checkpoint(path: Path, **state) -> None:
    """torch.save to a temporary file, then rename: an interrupted save never leaves a broken file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, device, **expected) -> dict | None:
    """The checkpoint at path (None if there is none), read with weights_only=True. Refuses
    one whose recorded entries differ from `expected` (its config, its tokenizer...):
    resuming it would silently train another model."""
    if not path.exists():
        return None
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # truncated, corrupted, or holding pickled objects other than tensors
        raise ValueError(
            f"checkpoint {path} cannot be read safely ({type(e).__name__}): it is truncated, corrupted, or "
            "holds pickled code, which weights_only=True refuses to run. Delete it (or use --fresh) to start over"
        ) from e
    for key, want in expected.items():
        if ck.get(key) != want:
            raise ValueError(
                f"checkpoint {path} was trained with {key} {ck.get(key)}, not {want}: "
                "use another --out folder, or resume=False (--fresh) to start over"
            )
    print(f"resumed from {path} at step {ck['step']}/{ck['train_config']['steps']}")
    return ck

