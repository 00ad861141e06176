"""Training loops, checkpoints and resuming.

Three loops, built from the same few pieces:

    train_tokenizer     images -> tokenizer             loss = ||decode(f_hat) - x||^2 + vq_loss
    train_transformer   cached tokens -> VAR or raster  loss = cross entropy of every token
    train_classifier    images -> evaluation classifier loss = label-smoothed cross entropy

The shared pieces, each defined once below, are things a student can check:
- The whole training set sits on the device (CIFAR-10: 150 MB of uint8 images, or 26 MB
  of int16 tokens), and batches are drawn by index: no DataLoader workers to wait for.
- Every random choice (the epoch permutation, flips, crops, class dropout, restarts)
  comes from a generator seeded by (seed, step), so resuming from a checkpoint
  continues exactly the run that was interrupted (batch_indices, Steps).
- ``minutes=`` turns a time budget into a step count after timing the first steps, and
  stores that count in the checkpoint, so a resumed run keeps the same schedule (Steps).
- lr_at: linear warm-up, then cosine decay. param_groups: weight decay on the weights of
  linear and convolutional layers only, none on biases, norms and embeddings.
- On a GPU: bf16 autocast and torch.compile; on the CPU: float32, no compile.

The transformers learn from a *token cache* (token_cache): the training set encoded once
by the tokenizer, every image and its mirror image, as int16 token sequences (N, L),
saved in data/cache/ under the tokenizer file's sha256, so that a retrained tokenizer
gets a new cache and an old cache is never used with the wrong tokenizer.
"""
from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import distributed
from .classifier import Classifier, augment, cutout, features_and_logits
from .config import (
    ClassifierConfig,
    ClassifierTrainConfig,
    TokenizerConfig,
    TokenizerTrainConfig,
    TransformerConfig,
    TransformerTrainConfig,
)
from .data import data_root, load_split, sha256_file, to_float, toy_dataset
from .metrics import class_agreement, psnr
from .pretrained import load_tokenizer, read_weights, resolve, transformer_record
from .transformer import build_transformer, flatten_tokens, scale_index, unflatten_tokens
from .vqvae import VQVAE


# -- shared by every loop -------------------------------------------------------------------
def pick_device(device=None) -> torch.device:
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


# -- the tokenizer ----------------------------------------------------------------------------
def train_tokenizer(cfg: TokenizerConfig, tcfg: TokenizerTrainConfig, out_dir, device=None,
                    compile: bool | None = None, minutes: float | None = None, resume: bool = True,
                    progress: bool = True, images_u8: torch.Tensor | None = None,
                    stop_after: int | None = None):
    """Train a tokenizer; returns (model, history). Checkpoints go to out_dir/ckpt.pt.

    stop_after=N ends this call after N steps (with a checkpoint), so that a long run can
    be split over several sessions or 10-minute GPU commands; calling again resumes it.
    """
    device, use_cuda = setup_device(distributed.init(device))
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "ckpt.pt"
    torch.manual_seed(tcfg.seed)
    model = VQVAE(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, betas=(0.9, 0.99), weight_decay=tcfg.weight_decay)
    step, history = 0, []
    if tcfg.init_from:
        state, init_cfg, _ = read_weights(tcfg.init_from, "tokenizer")
        if TokenizerConfig.from_dict(init_cfg) != cfg:
            raise ValueError(f"init_from={tcfg.init_from!r} holds a tokenizer with config {init_cfg}, not {cfg.to_dict()}")
        model.load_state_dict(state)
    ck = load_checkpoint(ckpt_path, device, config=cfg.to_dict()) if resume else None
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        model.quantizer.codebook.hits.copy_(ck["codebook_hits"])
        step, history = ck["step"], ck["history"]
        tcfg = TokenizerTrainConfig(**ck["train_config"])
        minutes = None  # the step count was fixed when the run started

    if images_u8 is None:
        with distributed.main_first():  # one process unpacks and caches the data set
            images_u8 = training_set(tcfg.dataset, "train", cfg.image_size, tcfg.subset)[0]
    images_u8 = images_u8.to(device)
    compile = use_cuda if compile is None else compile
    if use_cuda:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        # Compile the convolutional encoder and decoder, where the time goes. The quantizer
        # stays eager: its loop over scales resamples to a different size at every scale,
        # which torch.compile (2.11) turns into dynamic shapes it cannot lower.
        torch._dynamo.config.suppress_errors = True  # as in compiled(): fall back to eager, never crash
        model.encoder.compile()  # in place, so that the state_dict keys stay the same
        model.decoder.compile()
    # Several GPUs: each rank's codebook hits stay its own (summed before a restart), not rank 0's.
    # With fewer scales than shared phi convs, some convs get no gradient, which DDP must be told.
    q = model.quantizer
    phis_used = {q.phi.index_for(k, q.K) for k in range(q.K)} if hasattr(q, "phi") else set()
    fwd = distributed.wrap(model, device, broadcast_buffers=False,
                           find_unused_parameters=hasattr(q, "phi") and len(phis_used) < len(q.phi.phis))

    def train_step(x, lr):
        set_lr(opt, lr)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_cuda):
            recon, _, vq_loss = fwd(x)
            rec_loss = F.mse_loss(recon.float(), x)
            loss = rec_loss + vq_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        return loss.detach(), rec_loss.detach(), vq_loss.detach(), recon.detach()

    model.train()
    loop = Steps(step, tcfg.steps, minutes, stop_after, use_cuda, f"tokenizer ({cfg.quantizer})", progress)
    while loop.running:
        x = distributed.shard(batch_at(images_u8, loop.step, tcfg.batch_size, tcfg.seed))  # this rank's share
        if use_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        lr = lr_at(loop.step, loop.total, tcfg.lr, tcfg.warmup_steps, tcfg.min_lr_ratio)
        loss, rec, vq, recon = train_step(x, lr)
        step = loop.advance()

        if tcfg.restart_every and step % tcfg.restart_every == 0:
            codebook = model.quantizer.codebook
            with torch.no_grad():
                cands = model.quantizer.residuals(model.encode_latent(x))
                distributed.all_sum_(codebook.hits)  # dead on every rank = dead
            restarted = codebook.restart_dead_codes(cands, generator=torch.Generator().manual_seed(tcfg.seed * 31 + step))
            distributed.broadcast_(codebook.embedding.weight.data)  # rank 0's new codes everywhere
        else:
            restarted = None

        if step % tcfg.log_every == 0 or loop.finished or restarted:
            loss, rec, vq, p = (distributed.all_mean(v) for v in (loss, rec, vq, psnr(recon.clamp(-1, 1), x).mean()))
            rec_item = {"step": step, "loss": loss.item(), "recon_mse": rec.item(), "vq_loss": vq.item(),
                        "psnr": p.item(), "lr": lr, "seconds": loop.seconds}
            if restarted is not None:
                rec_item["codes_restarted"] = restarted
            history.append(rec_item)
            loop.bar.set_postfix(loss=f"{rec_item['loss']:.4f}", psnr=f"{rec_item['psnr']:.2f}")
        if (step % tcfg.ckpt_every == 0 or loop.stopping) and distributed.is_main():
            tcfg.steps = loop.total
            save_checkpoint(ckpt_path, model=model.state_dict(), optimizer=opt.state_dict(), step=step,
                            history=history, config=cfg.to_dict(), train_config=asdict(tcfg),
                            codebook_hits=model.quantizer.codebook.hits)
    loop.close()
    model.eval()
    return model, history


# -- the token cache --------------------------------------------------------------------------
@torch.no_grad()
def encode_tokens(tokenizer: VQVAE, images_u8: torch.Tensor, batch_size: int = 1000,
                  progress: bool = True) -> torch.Tensor:
    """Every image's token maps r_1..r_K flattened to one sequence, then the same for the
    mirror images: int16 (2N, L). Row i + N is row i's image flipped left-right."""
    device = next(tokenizer.parameters()).device
    rows = []
    for flip in (False, True):
        for i in tqdm(range(0, len(images_u8), batch_size), desc=f"encoding tokens (flip={flip})", disable=not progress):
            x = to_float(images_u8[i : i + batch_size].to(device))  # (B, 3, S, S)
            rows.append(flatten_tokens(tokenizer.img_to_tokens(x.flip(-1) if flip else x)).to(torch.int16).cpu())
    return torch.cat(rows)


def token_cache(tokenizer_file="tokenizer_cifar10", dataset: str = "cifar10", split: str = "train", subset: int = 0,
                device=None, batch_size: int = 1000, cache_dir=None, progress: bool = True):
    """A data set's tokens, made once by the tokenizer: (tokens int16 (2N, L), labels (2N,)).

    Rows N..2N-1 are the mirror images of rows 0..N-1 (the horizontal-flip augmentation,
    done once here instead of at every step). The cache file,
    data/cache/tokens_<dataset>_<split>_<sha256 of the tokenizer file>.pt, is written
    atomically and read back with weights_only=True.
    """
    sha = sha256_file(resolve(tokenizer_file))
    name = f"tokens_{dataset}_{split}{f'_subset{subset}' if subset else ''}_{sha[:16]}.pt"
    path = Path(cache_dir or data_root() / "cache") / name
    if path.is_file():
        cached = torch.load(path, weights_only=True)
        if cached.get("tokenizer_sha256") == sha:
            return cached["tokens"], cached["labels"]
    tokenizer = load_tokenizer(tokenizer_file, device=pick_device(device))
    if tokenizer.cfg.vocab_size > 2 ** 15:
        raise ValueError(f"vocab_size={tokenizer.cfg.vocab_size}: the token cache stores int16, expected at most {2 ** 15}")
    images, labels = training_set(dataset, split, tokenizer.cfg.image_size, subset)
    tokens = encode_tokens(tokenizer, images, batch_size, progress)
    labels = labels.repeat(2)  # the mirror images keep their labels
    save_checkpoint(path, tokens=tokens, labels=labels, tokenizer_sha256=sha, dataset=dataset, split=split)
    return tokens, labels


def token_loss(model, cfg: TransformerConfig, quantizer, idx_BL: torch.Tensor, label_B: torch.Tensor,
               bf16: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross entropy of every token (B, L), and whether the most likely token was right (B, L).

    VAR is taught by teacher forcing: its inputs are the quantizer's cumulative f_hat after
    each scale, downsampled to the next scale (quantizer.teacher_forcing_input). The raster
    model's inputs are the tokens themselves (it shifts them right by one inside).
    """
    with torch.no_grad():
        x = quantizer.teacher_forcing_input(unflatten_tokens(idx_BL, cfg.patch_nums)) if cfg.kind == "var" else idx_BL
    with torch.autocast(idx_BL.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(label_B, x)  # (B, L, V), float32
    B, L, V = logits.shape
    loss_BL = F.cross_entropy(logits.reshape(B * L, V), idx_BL.reshape(B * L), reduction="none").view(B, L)
    return loss_BL, logits.detach().argmax(-1) == idx_BL


def per_scale_stats(window: dict, scale_L: torch.Tensor, K: int, prefix: str = "") -> dict:
    """Mean loss and accuracy over the tokens summed in window (loss_L, correct_L over n
    sequences): overall and per scale (per scale k: over its pn_k^2 positions)."""
    n, L = window["n"], len(scale_L)
    tokens_k = torch.bincount(scale_L, minlength=K).double() * n
    per_k = {key: torch.zeros(K, dtype=torch.float64, device=scale_L.device).index_add_(
        0, scale_L, window[key].double()) / tokens_k for key in ("loss_L", "correct_L")}
    return {f"{prefix}loss": window["loss_L"].sum().item() / (n * L),
            f"{prefix}accuracy": window["correct_L"].sum().item() / (n * L),
            f"{prefix}loss_per_scale": [round(v, 5) for v in per_k["loss_L"].tolist()],
            f"{prefix}accuracy_per_scale": [round(v, 5) for v in per_k["correct_L"].tolist()]}


def empty_window(L: int, device) -> dict:
    """Sums over the steps since the last log: loss and correct predictions per position."""
    return {"loss_L": torch.zeros(L, dtype=torch.float64, device=device),
            "correct_L": torch.zeros(L, dtype=torch.int64, device=device), "n": 0}


def summed_window(window: dict) -> dict:
    """A window summed over the ranks (the window itself on one process)."""
    if distributed.world() == 1:
        return window
    n = torch.tensor([window["n"]], device=window["loss_L"].device)
    return {"loss_L": distributed.all_sum_(window["loss_L"].clone()),
            "correct_L": distributed.all_sum_(window["correct_L"].clone()), "n": int(distributed.all_sum_(n).item())}


@torch.no_grad()
def validate(model, cfg, quantizer, tokens, scale_L, batch_size: int) -> dict:
    """Loss and accuracy (overall and per scale) on held-out tokens, in eval mode (no class dropout)."""
    idx_all, labels_all = (t[distributed.rank() :: distributed.world()] for t in tokens)  # this rank's share
    window = empty_window(cfg.num_tokens, idx_all.device)
    was_training = model.training
    model.eval()
    for i in range(0, len(idx_all), batch_size):
        idx_BL = idx_all[i : i + batch_size].long()
        loss_BL, correct_BL = token_loss(model, cfg, quantizer, idx_BL, labels_all[i : i + batch_size],
                                         bf16=idx_BL.device.type == "cuda")
        window["loss_L"] += loss_BL.sum(0)
        window["correct_L"] += correct_BL.sum(0)
        window["n"] += len(idx_BL)
    model.train(was_training)
    return per_scale_stats(summed_window(window), scale_L, len(cfg.patch_nums), prefix="val_")


def train_transformer(cfg: TransformerConfig, tcfg: TransformerTrainConfig, out_dir, device=None, compile=None,
                      minutes: float | None = None, resume: bool = True, progress: bool = True,
                      stop_after: int | None = None, tokens=None, val_tokens=None):
    """Train VAR or the raster baseline on the tokenizer's tokens; returns (model, history).

    tokens, val_tokens: (int tokens (N, L), labels (N,)) to learn and to validate on;
    by default the token caches of tcfg.dataset's train and test splits (only the first
    half of the test cache, the unflipped images, is used). compile: None = on a GPU,
    True / False, or the name of a torch.compile backend ("aot_eager" traces the model
    without generating code: the CPU test of the compiled path uses it).
    Checkpoints go to out_dir/ckpt.pt and record the tokenizer's config and sha256;
    tcfg is updated in place (the step count fixed by minutes, or the resumed run's config).
    History: every log_every steps, the loss and accuracy per scale averaged since the last
    log; every eval_every steps the same on the validation tokens (keys val_*). With
    tcfg.keep_best, the weights of the lowest validation loss so far travel in the checkpoint,
    and the finished run returns them (a last history entry says from which step).
    """
    device, use_cuda = setup_device(distributed.init(device))
    ckpt_path = Path(out_dir) / "ckpt.pt"
    tokenizer = load_tokenizer(tcfg.tokenizer, device=device)
    record = transformer_record(cfg, tokenizer, tcfg.tokenizer)
    quantizer = tokenizer.quantizer.requires_grad_(False)
    fields = ("vocab_size", "patch_nums") + (("latent_channels",) if cfg.kind == "var" else ())
    got, want = ({k: getattr(c, k) for k in fields} for c in (cfg, tokenizer.cfg))
    if got != want:
        raise ValueError(f"cfg has {got}: expected the values of the tokenizer {tcfg.tokenizer}, {want} "
                         "(transformer_config fits a preset to a tokenizer)")
    torch.manual_seed(tcfg.seed)
    model = build_transformer(cfg).to(device)
    opt = torch.optim.AdamW(param_groups(model, tcfg.weight_decay), lr=tcfg.lr, betas=(0.9, 0.95))
    L, K = cfg.num_tokens, len(cfg.patch_nums)
    step, history, window, best = 0, [], empty_window(L, device), None
    ck = load_checkpoint(ckpt_path, device, config=cfg.to_dict(), tokenizer=record["tokenizer"],
                         tokenizer_sha256=record["tokenizer_sha256"]) if resume else None
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, history, window, best = ck["step"], ck["history"], ck["window"], ck.get("best")
        for key, value in ck["train_config"].items():
            setattr(tcfg, key, value)
        minutes = None  # the step count was fixed when the run started

    if tokens is None:
        with distributed.main_first():  # one process makes the cache files, the others read them
            tokens = token_cache(tcfg.tokenizer, tcfg.dataset, "train", tcfg.subset, device, progress=progress)
            if tcfg.eval_every:
                val = token_cache(tcfg.tokenizer, tcfg.dataset, "test", tcfg.subset, device, progress=progress)
                val_tokens = tuple(t[: len(t) // 2] for t in val)  # the unflipped test images
    idx_all, labels_all = (t.to(device) for t in tokens)
    if idx_all.shape[1] != L:
        raise ValueError(f"tokens have shape {tuple(idx_all.shape)}: expected (N, {L}) for patch_nums={cfg.patch_nums}")
    if val_tokens is not None:
        val_tokens = tuple(t.to(device) for t in val_tokens)
    scale_L = scale_index(cfg.patch_nums).to(device)
    compile = use_cuda if compile is None else compile
    fwd = compiled(distributed.wrap(model, device), compile)  # DDP when torchrun started several ranks

    def train_step(idx_BL, label_B, lr):
        set_lr(opt, lr)
        loss_BL, correct_BL = token_loss(fwd, cfg, quantizer, idx_BL, label_B, bf16=use_cuda)
        opt.zero_grad(set_to_none=True)
        loss_BL.mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        return loss_BL.detach(), correct_BL

    model.train()
    loop = Steps(step, tcfg.steps, minutes, stop_after, use_cuda, f"{cfg.kind} transformer", progress)
    while loop.running:
        # this step's class dropout (and dropout), drawn differently on every rank
        torch.manual_seed(tcfg.seed * 1_000_003 + loop.step * distributed.world() + distributed.rank())
        b = distributed.shard(batch_indices(len(idx_all), loop.step, tcfg.batch_size, tcfg.seed)).to(device)
        lr = lr_at(loop.step, loop.total, tcfg.lr, tcfg.warmup_steps, tcfg.min_lr_ratio)
        loss_BL, correct_BL = train_step(idx_all[b].long(), labels_all[b], lr)
        window["loss_L"] += loss_BL.sum(0)
        window["correct_L"] += correct_BL.sum(0)
        window["n"] += len(b)
        step = loop.advance()

        entry = {"step": step}
        if step % tcfg.log_every == 0 or loop.finished:
            entry.update(per_scale_stats(summed_window(window), scale_L, K), lr=lr, seconds=loop.seconds)
            window = empty_window(L, device)
            loop.bar.set_postfix(loss=f"{entry['loss']:.3f}", acc=f"{entry['accuracy']:.3f}")
        if val_tokens is not None and tcfg.eval_every and (step % tcfg.eval_every == 0 or loop.finished):
            entry.update(validate(model, cfg, quantizer, val_tokens, scale_L, tcfg.batch_size))
            if tcfg.keep_best and (best is None or entry["val_loss"] < best["val_loss"]):
                best = {"step": step, "val_loss": entry["val_loss"],
                        "model": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}}
        if len(entry) > 1:
            history.append(entry)
        if (step % tcfg.ckpt_every == 0 or loop.stopping) and distributed.is_main():
            tcfg.steps = loop.total
            save_checkpoint(ckpt_path, model=model.state_dict(), optimizer=opt.state_dict(), step=step,
                            history=history, window=window, best=best, config=cfg.to_dict(), train_config=tcfg.to_dict(),
                            tokenizer=record["tokenizer"], tokenizer_sha256=record["tokenizer_sha256"])
    loop.close()
    if tcfg.keep_best and best is not None and loop.finished:
        model.load_state_dict(best["model"])  # early stopping: the weights of the lowest validation loss
        history.append({"step": step, "restored_best_step": best["step"], "restored_best_val_loss": best["val_loss"]})
    model.eval()
    return model, history


def train_classifier(ccfg: ClassifierConfig, tcfg: ClassifierTrainConfig, device=None, compile=None,
                     minutes: float | None = None, progress: bool = True, data=None):
    """Train the evaluation classifier; returns (model, history, test metrics).

    data: ((train images uint8, labels), (test images uint8, labels)); by default tcfg.dataset.
    No checkpoints: the whole run takes about two minutes on one GPU.
    """
    device, use_cuda = setup_device(device)
    if data is None:
        data = tuple(training_set(tcfg.dataset, split, subset=tcfg.subset) for split in ("train", "test"))
    (images, labels), (test_images, test_labels) = data
    images, labels = images.to(device), labels.to(device)
    torch.manual_seed(tcfg.seed)
    model = Classifier(ccfg).to(device)
    if use_cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(param_groups(model, tcfg.weight_decay), lr=tcfg.lr, momentum=0.9, nesterov=True)
    per_epoch = max(1, len(images) // tcfg.batch_size)
    compile = use_cuda if compile is None else compile
    fwd = compiled(model, compile)
    history = []
    model.train()
    loop = Steps(0, tcfg.epochs * per_epoch, minutes, None, use_cuda, "classifier", progress)
    while loop.running:
        b = batch_indices(len(images), loop.step, tcfg.batch_size, tcfg.seed).to(device)
        gen = torch.Generator().manual_seed(tcfg.seed * 7_919 + loop.step)
        x = augment(to_float(images[b]), gen, tcfg.crop_pad)
        if tcfg.cutout:
            x = cutout(x, gen, tcfg.cutout)
        if use_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        lr = lr_at(loop.step, loop.total, tcfg.lr, round(tcfg.warmup_fraction * loop.total), 0.0)
        set_lr(opt, lr)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_cuda):
            logits = fwd(x).float()
        loss = F.cross_entropy(logits, labels[b], label_smoothing=tcfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step = loop.advance()
        if step % tcfg.log_every == 0 or loop.finished:
            history.append({"step": step, "epoch": round(step / per_epoch, 2), "loss": loss.item(),
                            "batch_accuracy": (logits.argmax(1) == labels[b]).float().mean().item(),
                            "lr": lr, "seconds": loop.seconds})
            loop.bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
    loop.close()
    model.eval()
    test = class_agreement(features_and_logits(model, test_images)[1].argmax(1), test_labels, ccfg.num_classes)
    return model, history, {"images": len(test_labels), "accuracy": test["overall"],
                            "accuracy_per_class": test["per_class"]}
