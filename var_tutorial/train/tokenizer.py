"""Training the tokenizer: images -> VQ-VAE, loss = ||decode(f_hat) - x||^2 + vq_loss.

The same loop trains VAR's multi-scale tokenizer and the single-scale VQ-VAE of the raster
baseline (TokenizerConfig.quantizer). Every `restart_every` steps the codes that no image
used since the last restart are moved onto residuals of the current batch (dead-code
restarts, Codebook.restart_dead_codes), so that the whole vocabulary stays in use.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .. import distributed
from ..config import TokenizerConfig, TokenizerTrainConfig
from ..fast import use_bicubic_matrices
from ..metrics import psnr
from ..pretrained import read_weights
from ..vqvae import VQVAE
from .loop import Steps, batch_at, load_checkpoint, lr_at, save_checkpoint, set_lr, setup_device, training_set


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
    if cfg.quantizer == "multiscale":  # the speed layer's bicubic upsampling: the same function, faster on a GPU
        use_bicubic_matrices(model.quantizer)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, betas=(0.9, 0.99), weight_decay=tcfg.weight_decay)
    step, history = 0, []
    if tcfg.init_from:
        state, init_cfg, _ = read_weights(tcfg.init_from, "tokenizer")
        start = TokenizerConfig.from_dict(init_cfg)
        # only the schedule may change: the encoder, decoder, codebook and phi do not depend on it
        # (phi_k is chosen by the scale's position k / K), so a tokenizer is fine-tuned to a new one
        differ = {k: (v, getattr(cfg, k)) for k, v in start.to_dict().items()
                  if k != "patch_nums" and v != getattr(cfg, k)}
        if not differ and cfg.phi_shared == 0 and len(start.patch_nums) != len(cfg.patch_nums):
            differ = {"the number of phi convs (phi_shared=0: one per scale)": (len(start.patch_nums),
                                                                                len(cfg.patch_nums))}
        if differ:
            raise ValueError(f"init_from={tcfg.init_from!r} holds a tokenizer that differs in "
                             + ", ".join(f"{k} ({a!r}, not {b!r})" for k, (a, b) in differ.items())
                             + ": only the scale schedule (patch_nums) may change when starting from it")
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
            generator = torch.Generator().manual_seed(tcfg.seed * 31 + step)
            restarted = codebook.restart_dead_codes(cands, generator=generator)
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
                            history=history, config=cfg.to_dict(), train_config=tcfg.to_dict(),
                            codebook_hits=model.quantizer.codebook.hits)
    loop.close()
    model.eval()
    return model, history
