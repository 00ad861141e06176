"""Training loops, checkpoints and resuming.

train_tokenizer() trains either tokenizer (multi-scale or single-scale) on images:

    loss = ||decode(f_hat) - x||^2  +  vq_loss        (vq_loss: see quantizer.py / vqvae.py)

Design choices a student can check:
- The whole training set sits on the device as uint8 (CIFAR-10: 150 MB), and batches
  are drawn by index: no DataLoader workers, nothing to wait for.
- Every random choice (epoch permutation, horizontal flips, restarts) comes from a
  generator seeded by (seed, step), so resuming from a checkpoint continues exactly
  the run that was interrupted.
- On a GPU: bf16 autocast and torch.compile; on the CPU: float32, no compile.
- ``minutes=`` turns a time budget into a step count after timing the first steps,
  and stores that count in the checkpoint, so a resumed run keeps the same schedule.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import TokenizerConfig, TokenizerTrainConfig
from .data import load_split, to_float, toy_dataset
from .metrics import psnr
from .vqvae import VQVAE


def pick_device(device=None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def lr_at(step: int, total: int, base_lr: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to base_lr * min_ratio."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def training_images(dataset: str, image_size: int, subset: int = 0) -> torch.Tensor:
    """uint8 training images (N, 3, S, S): a real data set, or 'toy' (generated, for tests)."""
    if dataset == "toy":
        images, _ = toy_dataset(n=subset or 256, image_size=image_size)
    else:
        images, _ = load_split(dataset, "train")
    if images.shape[-1] != image_size:
        raise ValueError(f"dataset={dataset!r} has {images.shape[-1]} px images: the tokenizer expects {image_size} px")
    return images[:subset] if subset else images


def batch_at(images_u8: torch.Tensor, step: int, batch_size: int, seed: int) -> torch.Tensor:
    """The batch of a given step: a slice of a seeded per-epoch permutation, randomly flipped."""
    n = len(images_u8)
    per_epoch = max(1, n // batch_size)
    epoch, i = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    idx = torch.randperm(n, generator=g)[i * batch_size : (i + 1) * batch_size]
    x = to_float(images_u8[idx.to(images_u8.device)])
    flip = torch.rand(len(idx), generator=torch.Generator().manual_seed(seed * 7_919 + step)) < 0.5
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)


def save_checkpoint(path: Path, **state) -> None:
    """torch.save to a temporary file, then rename: an interrupted save never leaves a broken file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_tokenizer(cfg: TokenizerConfig, tcfg: TokenizerTrainConfig, out_dir, device=None,
                    compile: bool | None = None, minutes: float | None = None, resume: bool = True,
                    progress: bool = True, images_u8: torch.Tensor | None = None,
                    stop_after: int | None = None):
    """Train a tokenizer; returns (model, history). Checkpoints go to out_dir/ckpt.pt.

    stop_after=N ends this call after N steps (with a checkpoint), so that a long run can
    be split over several sessions or 10-minute GPU commands; calling again resumes it.
    """
    device = pick_device(device)
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "ckpt.pt"
    torch.manual_seed(tcfg.seed)
    model = VQVAE(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, betas=(0.9, 0.99), weight_decay=tcfg.weight_decay)
    step, history = 0, []
    if tcfg.init_from:
        from .pretrained import read_weights  # (pretrained imports this module's neighbours)

        state, init_cfg, _ = read_weights(tcfg.init_from, "tokenizer")
        if TokenizerConfig.from_dict(init_cfg) != cfg:
            raise ValueError(f"init_from={tcfg.init_from!r} holds a tokenizer with config {init_cfg}, not {cfg.to_dict()}")
        model.load_state_dict(state)
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        if TokenizerConfig.from_dict(ck["config"]) != cfg:
            raise ValueError(
                f"checkpoint {ckpt_path} was trained with config {ck['config']}, not {cfg.to_dict()}: "
                "use another --out folder, or resume=False to start over"
            )
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        model.quantizer.codebook.hits.copy_(ck["codebook_hits"])
        step, history = ck["step"], ck["history"]
        tcfg = TokenizerTrainConfig(**ck["train_config"])
        minutes = None  # the step count was fixed when the run started
        print(f"resumed from {ckpt_path} at step {step}/{tcfg.steps}")

    if images_u8 is None:
        images_u8 = training_images(tcfg.dataset, cfg.image_size, tcfg.subset)
    images_u8 = images_u8.to(device)
    use_cuda = device.type == "cuda"
    compile = use_cuda if compile is None else compile
    if use_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        model = model.to(memory_format=torch.channels_last)
    if compile:
        # Compile the convolutional encoder and decoder, where the time goes. The quantizer
        # stays eager: its loop over scales resamples to a different size at every scale,
        # which torch.compile (2.11) turns into dynamic shapes it cannot lower.
        model.encoder.compile()
        model.decoder.compile()
    fwd = model

    def train_step(x, lr):
        for group in opt.param_groups:
            group["lr"] = lr
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
    t_start = time.time()
    t_mark = None
    bar = tqdm(total=tcfg.steps, initial=step, desc=f"tokenizer ({cfg.quantizer})", disable=not progress)
    last_step = tcfg.steps if stop_after is None else min(tcfg.steps, step + stop_after)
    while step < last_step:
        x = batch_at(images_u8, step, tcfg.batch_size, tcfg.seed)
        if use_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        lr = lr_at(step, tcfg.steps, tcfg.lr, tcfg.warmup_steps, tcfg.min_lr_ratio)
        loss, rec, vq, recon = train_step(x, lr)
        step += 1
        bar.update(1)

        if tcfg.restart_every and step % tcfg.restart_every == 0:
            with torch.no_grad():
                cands = model.quantizer.residuals(model.encode_latent(x))
            restarted = model.quantizer.codebook.restart_dead_codes(
                cands, generator=torch.Generator().manual_seed(tcfg.seed * 31 + step))
        else:
            restarted = None

        # --minutes: time steps 20..60 (after compilation) and fix the total step count
        if minutes is not None and step == 20:
            if use_cuda:
                torch.cuda.synchronize()
            t_mark = time.time()
        if minutes is not None and step == 60 and t_mark is not None:
            if use_cuda:
                torch.cuda.synchronize()
            per_step = (time.time() - t_mark) / 40
            remaining = minutes * 60 - (time.time() - t_start)
            tcfg.steps = max(step + 1, step + int(remaining / per_step))
            bar.total = tcfg.steps
            bar.refresh()
            print(f"\n{per_step * 1000:.1f} ms/step -> {tcfg.steps} steps fit in {minutes} min")
            minutes = None

        if minutes is not None and time.time() - t_start > minutes * 60:  # slower than step 60 allows
            tcfg.steps = last_step = step
        if step % tcfg.log_every == 0 or step == tcfg.steps or restarted:
            rec_item = {"step": step, "loss": loss.item(), "recon_mse": rec.item(), "vq_loss": vq.item(),
                        "psnr": psnr(recon.clamp(-1, 1), x).mean().item(), "lr": lr,
                        "seconds": round(time.time() - t_start, 2)}
            if restarted is not None:
                rec_item["codes_restarted"] = restarted
            history.append(rec_item)
            bar.set_postfix(loss=f"{rec_item['loss']:.4f}", psnr=f"{rec_item['psnr']:.2f}")
        if step % tcfg.ckpt_every == 0 or step == last_step:
            save_checkpoint(ckpt_path, model=model.state_dict(), optimizer=opt.state_dict(), step=step,
                            history=history, config=cfg.to_dict(), train_config=asdict(tcfg),
                            codebook_hits=model.quantizer.codebook.hits)
    bar.close()
    model.eval()
    return model, history
