"""Training the transformers: cached tokens -> VAR or the raster baseline, loss = cross entropy
of every token.

The transformers learn from a *token cache* (token_cache): the training set encoded once
by the tokenizer, every image and its mirror image, as int16 token sequences (N, L),
saved in data/cache/ under the tokenizer file's sha256, so that a retrained tokenizer
gets a new cache and an old cache is never used with the wrong tokenizer.

VAR is taught by teacher forcing (token_loss): its input for scale k+1 is the quantizer's
cumulative f_hat after scale k, downsampled to scale k+1. The loss, the accuracy and the
validation are reported per scale (per_scale_stats), so that one sees which scales are hard.

Teacher forcing has a blind spot, *exposure bias*: when VAR generates, its input is built from
its own draws, never from the true maps it learnt from. self_forced_loss fine-tunes it on its
own context, and exposure_gap measures, per scale, what that context costs.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import distributed
from ..config import SelfForcing, TransformerConfig, TransformerTrainConfig, check_fits
from ..data import data_root, sha256_file, to_float
from ..fast import use_bicubic_matrices
from ..pretrained import load_tokenizer, load_transformer, resolve, transformer_record
from ..sampling import sample_tokens
from ..transformer import build_transformer, flatten_tokens, scale_index, unflatten_tokens
from ..vqvae import VQVAE
from .loop import (
    Steps,
    batch_indices,
    compiled,
    load_checkpoint,
    lr_at,
    param_groups,
    pick_device,
    save_checkpoint,
    set_lr,
    setup_device,
    training_set,
)


@torch.no_grad()
def encode_tokens(tokenizer: VQVAE, images_u8: torch.Tensor, batch_size: int = 1000,
                  progress: bool = True) -> torch.Tensor:
    """Every image's token maps r_1..r_K flattened to one sequence, then the same for the
    mirror images: int16 (2N, L). Row i + N is row i's image flipped left-right."""
    device = next(tokenizer.parameters()).device
    rows = []
    for flip in (False, True):
        for i in tqdm(range(0, len(images_u8), batch_size), desc=f"encoding tokens (flip={flip})",
                      disable=not progress):
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
        raise ValueError(f"vocab_size={tokenizer.cfg.vocab_size}: the token cache stores int16, "
                         f"expected at most {2 ** 15}")
    images, labels = training_set(dataset, split, tokenizer.cfg.image_size, subset)
    tokens = encode_tokens(tokenizer, images, batch_size, progress)
    labels = labels.repeat(2)  # the mirror images keep their labels
    save_checkpoint(path, tokens=tokens, labels=labels, tokenizer_sha256=sha, dataset=dataset, split=split)
    return tokens, labels


def hold_out(tokens: tuple, images: int, seed: int = 0) -> tuple[tuple, tuple]:
    """Split a training token cache (rows N..2N-1 mirror rows 0..N-1) into (train, validation):
    a seeded random choice of `images` images leaves the training rows with its mirror images,
    and the validation rows are those images unflipped. Random, not the last rows: the cache
    follows the data set's order, which is sorted by class."""
    idx, labels = tokens
    n = len(idx) // 2
    if not 0 < images < n:
        raise ValueError(f"val_images={images}: expected between 1 and {n - 1} (the training set has {n} images)")
    chosen = torch.zeros(n, dtype=torch.bool)
    chosen[torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:images]] = True
    keep = (~chosen).repeat(2)  # an image and its mirror go together
    return (idx[keep], labels[keep]), (idx[:n][chosen], labels[:n][chosen])


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


def own_draws(logits_BLV: torch.Tensor, draw: str = "sample", generator: torch.Generator | None = None) -> torch.Tensor:
    """The model's own token at every position (B, L): drawn from its softmax as when it
    generates without guidance ("sample"), or its most likely token ("argmax")."""
    if draw == "argmax":
        return logits_BLV.argmax(-1)
    if draw == "sample":
        return sample_tokens(logits_BLV, generator=generator)
    raise ValueError(f"draw={draw!r}: expected 'sample' or 'argmax'")


@torch.no_grad()
def own_context(model, cfg: TransformerConfig, quantizer, idx_BL: torch.Tensor, label_B: torch.Tensor, bf16: bool,
                draw: str = "sample", generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """VAR's input built from its own tokens instead of the true ones: (x (B, L - 1, Cv), teacher logits (B, L, V)).

    One teacher-forced pass gives the logits of every scale at once; the model draws its own
    token map at every scale from them (own_draws): its guess at this image's r_k, made from
    the true r_1..r_{k-1}. The input of scale k+1 is then the cumulative f_hat of *its own*
    r_1..r_k, downsampled, exactly as teacher_forcing_input builds it from the true maps: a
    one-step rollout at every scale at once (the stagger-scale rollout of Self-Autoregressive
    Refinement, Zhou et al. 2025). A full rollout from scale 1 would draw another image,
    whose true tokens nobody knows.
    """
    x_true = quantizer.teacher_forcing_input(unflatten_tokens(idx_BL, cfg.patch_nums))  # (B, L - 1, Cv)
    with torch.autocast(idx_BL.device.type, dtype=torch.bfloat16, enabled=bf16):
        teacher = model(label_B, x_true).float()  # (B, L, V)
    own = own_draws(teacher, draw, generator)  # (B, L): the model's r_1..r_K
    return quantizer.teacher_forcing_input(unflatten_tokens(own, cfg.patch_nums)), teacher


def self_forced_loss(model, cfg: TransformerConfig, quantizer, idx_BL: torch.Tensor, label_B: torch.Tensor,
                     bf16: bool, fraction: float, draw: str = "sample", target: str = "truth",
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """token_loss, except that the first round(fraction * B) rows learn from their own context.

    Those rows' input is own_context's (pass 1, without gradient); pass 2 learns from it, with
    gradient, to predict
      target="truth":   the image's true tokens, as in scheduled sampling (Bengio et al. 2015);
      target="teacher": pass 1's distribution, the student-forcing loss of SAR: predict from
                        your own context what you predicted from the true one.
    The other rows are teacher-forced as in token_loss; fraction=0 *is* token_loss.
    """
    if cfg.kind != "var":
        raise ValueError(f"cfg.kind={cfg.kind!r}: self-forcing builds VAR's next-scale input; it needs kind='var'")
    if target not in ("truth", "teacher"):
        raise ValueError(f"target={target!r}: expected 'truth' or 'teacher'")
    n = round(fraction * len(idx_BL))
    if n == 0:
        return token_loss(model, cfg, quantizer, idx_BL, label_B, bf16)
    x_own, teacher = own_context(model, cfg, quantizer, idx_BL[:n], label_B[:n], bf16, draw, generator)
    with torch.no_grad():
        x_rest = quantizer.teacher_forcing_input(unflatten_tokens(idx_BL[n:], cfg.patch_nums))
    with torch.autocast(idx_BL.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(label_B, torch.cat([x_own, x_rest]))  # pass 2: (B, L, V)
    B, L, V = logits.shape
    loss_BL = F.cross_entropy(logits.reshape(B * L, V), idx_BL.reshape(B * L), reduction="none").view(B, L)
    if target == "teacher":  # a soft target: cross entropy against pass 1's probabilities
        soft = F.cross_entropy(logits[:n].reshape(n * L, V), teacher.softmax(-1).reshape(n * L, V),
                               reduction="none").view(n, L)
        loss_BL = torch.cat([soft, loss_BL[n:]])
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


@torch.no_grad()
def exposure_gap(model, cfg: TransformerConfig, quantizer, tokens: tuple, batch_size: int = 500,
                 draw: str = "sample", seed: int = 0) -> dict:
    """Per scale, VAR's loss and accuracy on `tokens` (int (N, L), labels (N,)), in eval mode,
    with two contexts: the true maps (teacher forcing, "true_context") and the model's own
    draws at the coarser scales (self_forced_loss with fraction 1, "own_context"). The loss
    is against the image's true tokens in both; the difference is what the model's own
    mistakes at the coarser scales cost it at each scale."""
    idx_all, labels_all = tokens
    device, bf16 = idx_all.device, idx_all.device.type == "cuda"
    generator = torch.Generator(device).manual_seed(seed)
    windows = {"true_context": empty_window(cfg.num_tokens, device), "own_context": empty_window(cfg.num_tokens, device)}
    was_training = model.training
    model.eval()
    for i in range(0, len(idx_all), batch_size):
        idx_BL, label_B = idx_all[i : i + batch_size].long(), labels_all[i : i + batch_size]
        for context, fraction in (("true_context", 0.0), ("own_context", 1.0)):
            loss_BL, correct_BL = self_forced_loss(model, cfg, quantizer, idx_BL, label_B, bf16, fraction, draw,
                                                   generator=generator)
            window = windows[context]
            window["loss_L"] += loss_BL.sum(0)
            window["correct_L"] += correct_BL.sum(0)
            window["n"] += len(idx_BL)
    model.train(was_training)
    scale_L, K = scale_index(cfg.patch_nums).to(device), len(cfg.patch_nums)
    return {context: per_scale_stats(window, scale_L, K) for context, window in windows.items()}


def train_transformer(cfg: TransformerConfig, tcfg: TransformerTrainConfig, tokenizer: VQVAE, out_dir, device=None,
                      compile=None, minutes: float | None = None, resume: bool = True, progress: bool = True,
                      stop_after: int | None = None, tokens=None, val_tokens=None,
                      self_forcing: SelfForcing | None = None):
    """Train VAR or the raster baseline on the tokenizer's tokens; returns (model, history).

    tokenizer: the tokenizer loaded from tcfg.tokenizer (load_tokenizer(tcfg.tokenizer)),
    which must fit cfg (config.check_fits); it is moved to the training device, and VAR's
    teacher-forcing inputs are made by its quantizer. tcfg.tokenizer, the file's name, is
    the record of which tokenizer it was: the checkpoints and the token caches go by its sha256.
    tokens, val_tokens: (int tokens (N, L), labels (N,)) to learn and to validate on;
    by default the token caches of tcfg.dataset's train and test splits (only the first
    half of the test cache, the unflipped images, is used); with tcfg.holdout = n, n training
    images (hold_out) validate instead, and the model never learns from them. compile: None = on a GPU,
    True / False, or the name of a torch.compile backend ("aot_eager" traces the model
    without generating code: the CPU test of the compiled path uses it).
    Checkpoints go to out_dir/ckpt.pt and record the tokenizer's config and sha256;
    tcfg is updated in place (the step count fixed by minutes, or the resumed run's config).
    History: every log_every steps, the loss and accuracy per scale averaged since the last
    log; every eval_every steps the same on the validation tokens (keys val_*). With
    tcfg.keep_best, the weights of the lowest validation loss so far travel in the checkpoint,
    and the finished run returns them (a last history entry says from which step).
    self_forcing: fine-tune VAR from the weights self_forcing.init_from with self_forced_loss
    instead of token_loss (the checkpoint records it, and a resumed run must match).
    """
    check_fits(tokenizer.cfg, cfg)
    device, use_cuda = setup_device(distributed.init(device))
    ckpt_path = Path(out_dir) / "ckpt.pt"
    record = transformer_record(cfg, tokenizer, tcfg.tokenizer)
    quantizer = tokenizer.to(device).quantizer  # frozen: token_loss runs it under torch.no_grad()
    if cfg.kind == "var":  # the speed layer's bicubic upsampling for the teacher-forcing input (same function)
        use_bicubic_matrices(quantizer)
    torch.manual_seed(tcfg.seed)
    model = build_transformer(cfg).to(device)
    if self_forcing is not None:  # fine-tuning: start from trained weights (a checkpoint, if any, replaces them)
        start, _ = load_transformer(self_forcing.init_from, tokenizer=tokenizer)
        if start.cfg != cfg:
            raise ValueError(f"init_from={self_forcing.init_from!r} holds {start.cfg}: expected {cfg}")
        model.load_state_dict(start.state_dict())
    loss_fn = token_loss if self_forcing is None else partial(
        self_forced_loss, fraction=self_forcing.fraction, draw=self_forcing.draw, target=self_forcing.target)
    forcing = None if self_forcing is None else self_forcing.to_dict()
    opt = torch.optim.AdamW(param_groups(model, tcfg.weight_decay), lr=tcfg.lr, betas=(0.9, 0.95))
    L, K = cfg.num_tokens, len(cfg.patch_nums)
    step, history, window, best = 0, [], empty_window(L, device), None
    ck = load_checkpoint(ckpt_path, device, config=cfg.to_dict(), tokenizer=record["tokenizer"],
                         tokenizer_sha256=record["tokenizer_sha256"], self_forcing=forcing) if resume else None
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
            if tcfg.holdout:  # early stopping on training images the model never learns from
                tokens, val_tokens = hold_out(tokens, tcfg.holdout)
            elif tcfg.eval_every:
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
        loss_BL, correct_BL = loss_fn(fwd, cfg, quantizer, idx_BL, label_B, bf16=use_cuda)
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
                            history=history, window=window, best=best, config=cfg.to_dict(),
                            train_config=tcfg.to_dict(), tokenizer=record["tokenizer"],
                            tokenizer_sha256=record["tokenizer_sha256"], self_forcing=forcing)
    loop.close()
    if tcfg.keep_best and best is not None and loop.finished:
        model.load_state_dict(best["model"])  # early stopping: the weights of the lowest validation loss
        history.append({"step": step, "restored_best_step": best["step"], "restored_best_val_loss": best["val_loss"]})
    model.eval()
    return model, history
