"""Benchmarks (not tests): how fast the models generate and train.

    python -m var_tutorial bench                  # on a GPU: every part, within --budget-minutes
    python -m var_tutorial bench --quick          # tiny configs on the CPU, seconds: checks that it runs

Three parts, run in this order (the most important figures first); each writes its results
file after every measurement, so a run stopped by the time guard keeps what it measured:

    generation  results/bench_generation.json   next-scale (VAR) against next-token (raster):
                images/s of two models of the same width, depth and vocabulary, KV cache and
                CFG in both, timed in turns in one process, three ways on a GPU (the loop as one
                CUDA graph, eager with the fast draw, eager with the plain draw). 32 px: scales
                1,2,3,4,6,8 (6 steps) against an 8x8 map (64 steps); 64 px: the paper's 10 scales
                against 16x16 (256).
    reference   results/bench_reference.json    our model configured like FoundationVision/VAR
                (width 64*depth, depth heads, V=4096, Cvae=32, 1000 classes): training tokens/s
                and sampling images/s beside the reference implementation's own figures
                (sampling through fast.GraphedSampler with compiled blocks, the other paths beside it).
    training    results/bench_training.json     training throughput of the next-scale model:
                eager against torch.compile, SDPA with the dense bool mask against FlexAttention.

Speed only: every model has random weights (trained weights run at the same speed), and
generation means token generation: the image decoder is excluded, as in the reference
figures. Times are medians over repeats after a warm-up, with the device synchronised
around each. A training step is the real one: token_loss on the teacher-forcing input,
bf16 autocast on a GPU, backward, gradient clipping, AdamW, on random tokens. Achieved
TFLOP/s = scaling.training_flops_per_sequence (counted by FlopCounterMode) x sequences/s,
compared with the peak of a large bf16 matmul measured in the same run.

Every sampling path runs the speed layer's model and quantizer (fast.speed_up: the static KV
cache, the bicubic matrices), as the figures always did; they differ in the draw and in how the
loop is launched. Every fast path is checked against the plain one on the device it is timed on:
the speed layer against the core (speed_layer_agrees), the fast draw against the plain one
(samplers_agree), the CUDA graph against the eager loop (graph_agrees), compiled blocks against
eager ones (compiled_logit_diff), FlexAttention and torch.compile against eager SDPA in training
(max_abs_logit_diff_vs_plain).
"""
from __future__ import annotations

import copy
import signal
import statistics
import threading
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .config import TransformerConfig, transformer_preset
from .fast import (
    BicubicMatrices,
    FastSelfAttention,
    GraphedSampler,
    compiled_blocks,
    sample_tokens_fast,
    sampled_probs,
    speed_up,
    use_flex_attention,
)
from .quantizer import MultiScaleQuantizer
from .records import write_results
from .sampling import generate_raster, generate_var, sample_tokens, sampling_mode
from .scaling import training_flops_per_sequence
from .train import compiled, param_groups, setup_device, token_loss
from .transformer import VAR, build_transformer, count_params, unflatten_tokens

PARTS = ("generation", "reference", "training")
SAMPLING = {"cfg": 1.5, "top_k": 900, "top_p": 0.96}  # the settings of the reference's sampling figures

# FoundationVision/VAR measured on one H200 with torch 2.11 on its SDPA path, random weights, bf16
# training; sampling with the settings above, the image decoder excluded (figures given in issue 6).
REFERENCE = {
    "cifar32-d8": {"patch_nums": (1, 2, 3, 4, 6, 8), "depth": 8, "train_batch": 256,
                   "train_tokens_per_s": 583_000, "sample_batch": 256, "sample_images_per_s": 2_810},
    "cifar32-d12": {"patch_nums": (1, 2, 3, 4, 6, 8), "depth": 12, "train_batch": 256,
                    "train_tokens_per_s": 265_000, "sample_batch": 256, "sample_images_per_s": 1_830},
    "paper256-d16": {"patch_nums": (1, 2, 3, 4, 5, 6, 8, 10, 13, 16), "depth": 16, "train_batch": 64,
                     "train_tokens_per_s": 143_500, "sample_batch": 64, "sample_images_per_s": 228},
}
TARGETS = {"generation_speedup_batch64": {32: 10.0, 64: 20.0}, "train_vs_reference": 1.5,
           "sample_vs_reference": 2.0, "paper256-d16_fraction_of_peak": 0.40}


# -- the time guard -----------------------------------------------------------------------
class OutOfTime(Exception):
    """The budget is spent: raised by the alarm, in the middle of whatever runs."""


class Clock:
    """Elapsed time, time left, and a progress line per measurement."""

    def __init__(self, minutes: float, estimate_scale: float = 1.0):
        self.t0, self.seconds = time.monotonic(), 60.0 * minutes
        self.estimate_scale = estimate_scale  # the estimates are for a GPU run; tiny configs take a fraction

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.t0)

    def allows(self, estimate_s: float, what: str) -> bool:
        """Whether a measurement that may take estimate_s (on a GPU, full size) still fits; if not, say so."""
        estimate_s *= self.estimate_scale
        if self.left() > estimate_s:
            return True
        self.log(f"skip {what}: {self.left():.0f} s left, it needs about {estimate_s:.0f} s")
        return False

    def log(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:4.0f}s] {msg}", flush=True)


@contextmanager
def alarm(seconds: float):
    """Raise OutOfTime after `seconds` (a hard stop, on top of Clock.allows's estimates)."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def ring(signum, frame):
        raise OutOfTime(f"the time budget ran out after {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0), 5.0)  # and again every 5 s, should code swallow it
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- timing ---------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_of(fn, device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def timed_in_turns(fns: dict, device: torch.device, repeats: int, min_seconds: float = 0.0) -> dict[str, float]:
    """Median seconds per call of each function, timed in turns (a, b, a, b, ...) after one
    warm-up call each, at least `repeats` rounds and at least `min_seconds` (at most 50 rounds)."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    t0 = time.perf_counter()
    while len(times[next(iter(fns))]) < repeats or (time.perf_counter() - t0 < min_seconds
                                                     and len(times[next(iter(fns))]) < 50):
        for name, fn in fns.items():
            times[name].append(seconds_of(fn, device))
    return {name: statistics.median(t) for name, t in times.items()} | {"repeats": len(times[next(iter(fns))])}


def matmul_peak(device: torch.device, quick: bool) -> dict:
    """Achieved TFLOP/s of one large square matmul: bf16 8192^3 on a GPU (float32 on a CPU)."""
    cuda = device.type == "cuda" and not quick
    n, dtype = (8192, torch.bfloat16) if cuda else (256 if quick else 2048, torch.float32)
    a, b, c = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(3))
    reps = 20 if cuda else 2

    def run():
        for _ in range(reps):
            torch.matmul(a, b, out=c)

    t = timed_in_turns({"mm": run}, device, repeats=5)
    return {"tflops": float(f"{2 * n ** 3 * reps / t['mm'] / 1e12:.4g}"), "matmul": f"{n}x{n} @ {n}x{n}",
            "dtype": str(dtype).replace("torch.", ""), "repeats": t["repeats"]}


# -- models with random weights ----------------------------------------------------------------
def random_quantizer(cfg: TransformerConfig, device) -> MultiScaleQuantizer:
    """The multi-scale quantizer that VAR's sampling steps through (its phi convs run at every scale)."""
    return MultiScaleQuantizer(cfg.vocab_size, cfg.latent_channels, cfg.patch_nums).to(device).requires_grad_(False)


def sampler(model, quantizer, batch: int, device: torch.device, sampling: dict, fast: bool = False,
            graph: bool = False, compile: bool = False):
    """A function that generates the token maps of `batch` images (bf16 autocast on a GPU), with
    the model and quantizer sped up in place (fast.speed_up: static KV cache, bicubic matrices);
    fast=True draws with fast.sample_tokens_fast, fast=False with sampling.sample_tokens;
    graph=True replays the whole fast loop as one CUDA graph (fast.GraphedSampler, recorded
    here), compile=True with the blocks of a copy of the model compiled (fast.compiled_blocks)."""
    var = isinstance(model, VAR)
    speed_up(model, quantizer if var else None)
    labels = torch.arange(batch, device=device) % model.cfg.num_classes
    if graph:
        replay = GraphedSampler(model, quantizer if var else None, batch, compile=compile, **sampling)
        return lambda: replay(labels)
    gen = torch.Generator(device=device).manual_seed(0)
    draw = sample_tokens_fast if fast else sample_tokens

    def run():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if var:
                generate_var(model, quantizer, labels, generator=gen, draw=draw, **sampling)
            else:
                generate_raster(model, labels, generator=gen, draw=draw, **sampling)

    return run


def graph_agrees(model, quantizer, batch: int, device: torch.device, sampling: dict, compile: bool = False) -> float:
    """The share of tokens that the CUDA-graph sampler draws equal to the eager fast sampler's,
    both from torch.manual_seed(0) on the device's default generator (1.0: the same images;
    with compiled blocks, fused kernels round differently, and one token drawn otherwise
    changes what follows)."""
    replay = sampler(model, quantizer, batch, device, sampling, fast=True, graph=True, compile=compile)
    labels = torch.arange(batch, device=device) % model.cfg.num_classes  # sampler's labels
    torch.manual_seed(0)
    graphed = replay()
    torch.manual_seed(0)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        eager = (generate_var(model, quantizer, labels, draw=sample_tokens_fast, **sampling) if isinstance(model, VAR)
                 else generate_raster(model, labels, draw=sample_tokens_fast, **sampling))
    same = sum(int(a.eq(b).sum()) for a, b in zip(graphed, eager))
    return round(same / sum(a.numel() for a in eager), 6)


def samplers_agree(model, device: torch.device, sampling: dict) -> dict:
    """The fast draw against the plain one, on this device: the max abs difference of the two
    distributions (vocabulary order) on the first step's logits of 64 labels, and on logits
    3 x N(0, 1) (a peaked distribution, where top-k and top-p both cut)."""
    gen = torch.Generator(device=device).manual_seed(0)
    labels = torch.arange(64, device=device) % model.cfg.num_classes
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        cond = model.condition(labels)
        model_logits = model.forward_step(cond, model.start_token(cond), 0)[:, 0]  # (64, V)
    out = {}
    for name, logits in (("model", model_logits), ("peaked", 3 * torch.randn(4096, model.cfg.vocab_size, device=device,
                                                                              generator=gen))):
        kw = {k: sampling[k] for k in ("top_k", "top_p")}
        diff = (sampled_probs(logits, **kw) - sampled_probs(logits, **kw, fast=True)).abs().max().item()
        out[f"max_abs_prob_diff_{name}_logits"] = float(f"{diff:.3g}")
    return out


def speed_layer_agrees(model, quantizer, device: torch.device, batch: int = 8) -> dict:
    """The speed layer against the core, on this device: the max abs difference of the logits of
    one pass through the KV cache, every step, random inputs (fast.speed_up's static cache against
    the core's torch.cat cache, bf16 autocast on a GPU as in sampling), and, given VAR's quantizer,
    of every scale's upsampling (the bicubic matrices against F.interpolate, float32). The model
    and the quantizer are left as they are; the model must not be sped up yet."""
    if isinstance(model.blocks[0].attn, FastSelfAttention):
        raise ValueError("the model is sped up already: pass the plain model, before fast.speed_up")
    cfg, gen = model.cfg, torch.Generator(device=device).manual_seed(0)
    labels = torch.arange(batch, device=device) % cfg.num_classes
    if isinstance(model, VAR):
        sizes = [pn * pn for pn in cfg.patch_nums]
        inputs = torch.randn(batch, cfg.num_tokens - 1, cfg.latent_channels, device=device, generator=gen)
    else:
        sizes = [1] * cfg.num_tokens
        inputs = torch.randint(cfg.vocab_size, (batch, cfg.num_tokens - 1), device=device, generator=gen)
    logits = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for m in (model, speed_up(copy.deepcopy(model))[0]):
            with sampling_mode(m):
                cond, start, steps = m.condition(labels), 0, []
                for i, l in enumerate(sizes):  # row start - 1 of inputs is the input of token start
                    x = m.start_token(cond) if i == 0 else m.embed(inputs[:, start - 1 : start - 1 + l])
                    steps.append(m.forward_step(cond, x, start))
                    start += l
            logits.append(torch.cat(steps, dim=1))
    out = {"static_kv_cache_max_abs_logit_diff": float(f"{(logits[0] - logits[1]).abs().max().item():.3g}")}
    if quantizer is not None:
        H, diff, matrices = quantizer.patch_nums[-1], 0.0, BicubicMatrices(quantizer.patch_nums).to(device)
        for pn in quantizer.patch_nums[:-1]:
            z = torch.randn(batch, quantizer.dim, pn, pn, device=device, generator=gen)
            diff = max(diff, (matrices(z) - F.interpolate(z, size=(H, H), mode="bicubic")).abs().max().item())
        out["bicubic_matrices_max_abs_diff"] = float(f"{diff:.3g}")
    return out


def compiled_logit_diff(model, batch: int, device: torch.device, backend: str = "inductor") -> float:
    """Max |logit difference| between the model and its compiled_blocks copy over the first
    two sampling steps (the start tokens, then random inputs for the second scale), bf16
    autocast, the batch and KV cache of sampling: what the compiled path changes, in numbers."""
    copy_ = compiled_blocks(model, backend)
    labels = torch.arange(batch, device=device) % model.cfg.num_classes
    null = torch.full_like(labels, model.cfg.num_classes)
    pn = model.cfg.patch_nums[1]
    x2 = torch.randn(2 * batch, pn * pn, model.cfg.latent_channels, device=device,
                     generator=torch.Generator(device=device).manual_seed(0))
    logits = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for m in (model, copy_):
            m.enable_kv_cache(True)
            cond = m.condition(torch.cat([labels, null]))
            logits.append(torch.cat([m.forward_step(cond, m.start_token(cond), 0),
                                     m.forward_step(cond, m.embed(x2), 1)], dim=1))
            m.enable_kv_cache(False)
    return float(f"{(logits[0] - logits[1]).abs().max().item():.3g}")


def compile_for_speed(model, backend: str | None, scope: str):
    """torch.compile the whole model (scope "model": train.py's compiled()), or each block in
    place (scope "blocks": the blocks share one compiled graph, so it compiles once, fast)."""
    if not backend:
        return model
    if scope == "model":
        return compiled(model, backend)
    for block in model.blocks:
        block.compile(backend=backend, dynamic=False)
    return model


# -- 1. next-scale against next-token ----------------------------------------------------------
def generation_settings(quick: bool) -> dict:
    """resolution -> (next-scale schedule, the preset whose width, depth and heads both models get)."""
    if quick:
        return {32: ((1, 2, 4), "tiny"), 64: ((1, 2, 3, 4, 6), "tiny")}
    return {32: ((1, 2, 3, 4, 6, 8), "cifar10"), 64: ((1, 2, 3, 4, 5, 6, 8, 10, 13, 16), "imagenette64")}


# the three ways both models are timed: the key prefix in timed_in_turns, and the name in the results
GENERATION_PATHS = {"graph_": "CUDA graph, fast draw", "": "eager, fast draw", "plain_": "eager, plain draw"}


def bench_generation(device, quick: bool, clock: Clock) -> None:
    cuda = device.type == "cuda"
    rows = ([(device, 64), (device, 256), (device, 1)] if cuda else []) + [(torch.device("cpu"), 1)]
    if quick:
        rows = [(device, 4), (device, 1)]
    record = {"note": "random weights (speed only); token generation only, the image decoder excluded; "
                      "both models have the same width, depth, heads and vocabulary; KV cache and CFG in both "
                      "(conditional and unconditional halves in one batch); timed in turns in one process",
              "path": "the library's samplers with the fast draw (fast.sample_tokens_fast, the top-k candidates only) "
                      "in both models, sped up by fast.speed_up (static KV cache, bicubic matrices): on the GPU the "
                      "whole loop recorded as one CUDA graph and replayed (fast.GraphedSampler, bf16 autocast), on the "
                      "CPU eager (float32); timed beside them in the same turns: eager with the fast draw (eager_*) "
                      "and eager with the plain draw (sample_tokens, plain_*)",
              "step_cost": "next_scale_step_in_next_token_steps: the time of one next-scale step counted in "
                           "next-token steps; the speed-up is steps_ratio divided by it, so steps_ratio is its ceiling",
              "sampling": SAMPLING, "targets": {f"{r} px, batch 64": f"next-scale >= {t}x faster" for r, t in
                                                TARGETS["generation_speedup_batch64"].items()},
              "targets_met": {}, "targets_met_by_path": {}, "cpu_threads": torch.get_num_threads(), "models": {},
              "rows": [], "skipped": [], "complete": False, "quick": quick}
    save = lambda: write_results("bench_generation", record, config={"what": "generation"}, device=device)
    save()  # at once: a run stopped by the time guard leaves every file it began
    for res, (patch_nums, preset) in generation_settings(quick).items():
        common = dict(vocab_size=64 if quick else 4096, latent_channels=8 if quick else 32, num_classes=10,
                      patch_nums=patch_nums, dropout=0.0)
        torch.manual_seed(0)
        models = {kind: build_transformer(transformer_preset(preset, kind, **common)).eval()
                  for kind in ("var", "raster")}
        quantizer = random_quantizer(models["var"].cfg, "cpu")
        steps = {kind: len(m.cfg.patch_nums) if kind == "var" else m.cfg.num_tokens for kind, m in models.items()}
        agree = {kind: speed_layer_agrees(m.to(device), quantizer.to(device) if kind == "var" else None, device)
                 for kind, m in models.items()}  # before the samplers speed the models up
        record["models"][f"{res}px"] = {kind: {"config": m.cfg.to_dict(), "parameters": count_params(m),
                                               "steps": steps[kind], "tokens": m.cfg.num_tokens,
                                               "speed_layer_vs_plain": agree[kind]} for kind, m in models.items()}
        for dev, batch in rows:
            if not clock.allows(80 if res == 64 else 40, f"generation {res}px {dev.type} batch {batch}"):
                record["skipped"].append({"resolution": res, "device": dev.type, "batch": batch, "why": "time budget"})
                continue
            graphs = dev.type == "cuda"
            run = {f"{path}{kind}": sampler(m.to(dev), quantizer.to(dev), batch, dev, SAMPLING, fast=path != "plain_",
                                            graph=path == "graph_")
                   for kind, m in models.items() for path in (("graph_",) if graphs else ()) + ("", "plain_")}
            t = timed_in_turns(run, dev, repeats=1 if quick else 3, min_seconds=0.0 if quick else 1.0)
            best = "graph_" if graphs else ""  # the figures: the fastest path, the same in both models
            speedup = t[f"{best}raster"] / t[f"{best}var"]
            # what one next-scale step costs, counted in next-token steps: the lead is steps ratio / this
            step_cost = lambda key: round(t[f"{key}var"] / steps["var"] / (t[f"{key}raster"] / steps["raster"]), 3)
            if dev.type == "cuda" and batch == 64:
                goal = TARGETS["generation_speedup_batch64"][res]
                record["targets_met"][f"{res} px, batch 64"] = speedup >= goal
                for key, name in GENERATION_PATHS.items():
                    record["targets_met_by_path"].setdefault(name, {})[f"{res} px, batch 64"] = (
                        t[f"{key}raster"] / t[f"{key}var"] >= goal)
            row = {"resolution": res, "device": dev.type, "batch": batch, "repeats": t["repeats"],
                   "steps_ratio": round(steps["raster"] / steps["var"], 3),
                   "next_scale_step_in_next_token_steps": step_cost(best),
                   "path": GENERATION_PATHS[best],
                   "next_scale_images_per_s": round(batch / t[f"{best}var"], 2),
                   "next_token_images_per_s": round(batch / t[f"{best}raster"], 2),
                   "next_scale_seconds_per_batch": round(t[f"{best}var"], 5),
                   "next_token_seconds_per_batch": round(t[f"{best}raster"], 5),
                   "speedup_next_scale_over_next_token": round(speedup, 2)}
            for path in ("eager_", "plain_") if graphs else ("plain_",):
                key = "" if path == "eager_" else path
                row |= {f"{path}next_scale_seconds_per_batch": round(t[f"{key}var"], 5),
                        f"{path}next_token_seconds_per_batch": round(t[f"{key}raster"], 5),
                        f"{path}speedup_next_scale_over_next_token": round(t[f"{key}raster"] / t[f"{key}var"], 2),
                        f"{path}next_scale_step_in_next_token_steps": step_cost(key)}
            row |= {f"{kind}_{k}": v for kind, m in models.items() for k, v in samplers_agree(m, dev, SAMPLING).items()}
            if graphs:
                row |= {f"{kind}_graph_tokens_equal_to_eager": graph_agrees(m, quantizer, batch, dev, SAMPLING)
                        for kind, m in models.items()}
            record["rows"].append(row)
            del run
            clock.log(f"generation {res}px {dev.type} b{batch}: next-scale {batch / t[f'{best}var']:.1f} img/s, "
                      f"next-token {batch / t[f'{best}raster']:.1f} img/s, x{speedup:.1f} "
                      f"(eager: x{t['raster'] / t['var']:.1f}, plain draw: x{t['plain_raster'] / t['plain_var']:.1f})")
            save()
        del models, quantizer
        if cuda:
            torch.cuda.empty_cache()
    record["complete"] = not record["skipped"]
    save()


# -- training throughput -------------------------------------------------------------------------
def measure_training(cfg: TransformerConfig, batch: int, device, peak: dict, *, backend: str | None = None,
                     scope: str = "blocks", flex: bool = False, fused_adam: bool = False, quick: bool = False,
                     flops_per_sequence: int | None = None, keep_plain: bool = False):
    """Tokens/s, achieved TFLOP/s and its fraction of the matmul peak of the real training step,
    and the max abs difference between this path's logits and the plain path's (eager SDPA) on one
    batch, with the same weights. Returns (result, the plain model or None)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    plain = build_transformer(cfg).to(device).train()
    model = copy.deepcopy(plain)
    if flex:
        use_flex_attention(model)
    fwd = compile_for_speed(model, backend, scope)
    quantizer = random_quantizer(cfg, device)
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95),
                            **({"fused": True} if fused_adam else {}))
    gen = torch.Generator(device=device).manual_seed(0)
    idx_BL = torch.randint(cfg.vocab_size, (batch, cfg.num_tokens), device=device, generator=gen)
    label_B = torch.randint(cfg.num_classes, (batch,), device=device, generator=gen)
    bf16 = device.type == "cuda"

    # the check, which is also the first (compiling) forward pass of the fast path
    t0 = time.perf_counter()
    with torch.no_grad():
        x = quantizer.teacher_forcing_input(unflatten_tokens(idx_BL, cfg.patch_nums)) if cfg.kind == "var" else idx_BL
    logits, null_B = {}, torch.full_like(label_B, cfg.num_classes)  # class dropout leaves the null class as it is,
    for name, m in (("fast", fwd), ("plain", plain)):  # so compiled random numbers do not enter the comparison
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits[name] = m(null_B, x).detach()
    err = (logits["fast"] - logits["plain"]).abs().max().item()
    scale = logits["plain"].abs().max().item()
    del logits
    if not keep_plain:
        plain = None

    def step():
        loss_BL, _ = token_loss(fwd, cfg, quantizer, idx_BL, label_B, bf16)
        opt.zero_grad(set_to_none=True)
        loss_BL.mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()

    for _ in range(1 if quick else 3):  # warm-up; the first backward compiles
        step()
    sync(device)
    warm_s = time.perf_counter() - t0
    steps = 1 if quick else 5
    windows = [seconds_of(lambda: [step() for _ in range(steps)], device) / steps for _ in range(1 if quick else 3)]
    t = statistics.median(windows)
    flops = flops_per_sequence or training_flops_per_sequence(cfg)
    tflops = flops * batch / t / 1e12
    result = {"path": path_name(backend, scope, flex, fused_adam, bf16), "batch": batch,
              "tokens_per_sequence": cfg.num_tokens,
              "tokens_per_s": round(batch * cfg.num_tokens / t), "sequences_per_s": round(batch / t, 2),
              "step_ms_median": round(1000 * t, 3), "achieved_tflops": round(tflops, 2),
              "fraction_of_matmul_peak": round(tflops / peak["tflops"], 4),
              "flops_per_sequence": flops, "warmup_seconds_incl_compile": round(warm_s, 1),
              "max_abs_logit_diff_vs_plain": err, "max_abs_logit_plain": scale, "timed_steps": steps * len(windows)}
    del model, fwd, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result, plain


def path_name(backend, scope, flex, fused_adam, bf16) -> str:
    parts = [f"torch.compile({backend}, {'whole model' if scope == 'model' else 'per block'})" if backend else "eager",
             "FlexAttention + block mask" if flex else "SDPA + dense bool mask",
             "fused AdamW" if fused_adam else "AdamW", "bf16 autocast" if bf16 else "float32"]
    return ", ".join(parts)


def bench_training(device, quick: bool, clock: Clock, peak: dict) -> None:
    cuda = device.type == "cuda"
    backend = "inductor" if cuda else "aot_eager"
    preset, batch = ("tiny", 8) if quick else ("cifar10", 256)
    cfg = transformer_preset(preset, "var", dropout=0.0,
                             **({} if quick else {"vocab_size": 4096, "latent_channels": 32, "num_classes": 10}))
    flops = training_flops_per_sequence(cfg)
    variants = [("eager, SDPA", dict()),
                ("compiled per block, SDPA", dict(backend=backend)),
                ("compiled per block, FlexAttention", dict(backend=backend, flex=True)),
                ("compiled whole model (train.py's compiled()), SDPA", dict(backend=backend, scope="model"))]
    record = {"note": "random weights and random tokens; the real training step (token_loss on the teacher-forcing "
                      "input, backward, clip_grad_norm_, AdamW); FLOPs counted by scaling.training_flops_per_sequence "
                      "(the mask not exploited); dropout 0 (FlexAttention has no attention dropout). FlexAttention "
                      "is measured compiled only: uncompiled it materialises the scores (a debugging path)",
              "model": f"the {preset} preset's next-scale model", "batch": batch, "matmul_peak": peak,
              "variants": [], "skipped": [], "complete": False, "quick": quick}
    save = lambda: write_results("bench_training", record, config={"what": "training", "model": cfg.to_dict()},
                                 device=device)
    save()  # at once: a run stopped by the time guard leaves every file it began
    for name, kw in variants:
        if kw.get("flex") and not cuda:
            record["skipped"].append({"variant": name, "why": "FlexAttention has no backward pass on the CPU "
                                                              "(its forward is tested in tests/test_bench.py)"})
            continue
        if not clock.allows(70 if kw.get("backend") and cuda else 15, f"training {name}"):
            record["skipped"].append({"variant": name, "why": "time budget"})
            continue
        result, _ = measure_training(cfg, batch, device, peak, quick=quick, flops_per_sequence=flops, **kw)
        record["variants"].append({"variant": name, **result})
        clock.log(f"training {name}: {result['tokens_per_s']:,} tok/s, {result['achieved_tflops']:.1f} TFLOP/s "
                  f"({result['fraction_of_matmul_peak']:.0%} of peak), "
                  f"|dlogit| {result['max_abs_logit_diff_vs_plain']:.2g}")
        save()
    record["complete"] = True
    save()


# -- 3. against the reference implementation --------------------------------------------------------
def reference_config(patch_nums, depth: int, quick: bool) -> TransformerConfig:
    """FoundationVision/VAR's family: width 64*depth, depth heads, MLP x4, per-block AdaLN, qk l2-norm."""
    if quick:
        return TransformerConfig(vocab_size=64, latent_channels=8, num_classes=10, patch_nums=patch_nums,
                                 depth=depth, width=16 * depth, heads=depth, dropout=0.0)
    return TransformerConfig(vocab_size=4096, latent_channels=32, num_classes=1000, patch_nums=patch_nums,
                             depth=depth, width=64 * depth, heads=depth, mlp_ratio=4.0, class_dropout=0.1,
                             qk_norm=True, dropout=0.0)


def bench_reference(device, quick: bool, clock: Clock, peak: dict) -> None:
    cuda = device.type == "cuda"
    record = {"note": "our VAR configured like FoundationVision/VAR, random weights and random tokens; the reference "
                      "figures were measured on one H200 with torch 2.11 on the reference's SDPA path (bf16 training; "
                      "sampling with CFG 1.5, top-k 900, top-p 0.96, image decoder excluded); tokens/s counts every "
                      "token of every sequence (batch x L)",
              "sampling": SAMPLING, "matmul_peak": peak, "targets": {k: v for k, v in TARGETS.items()
                                                                     if k != "generation_speedup_batch64"},
              "configs": {}, "complete": False, "quick": quick}
    if quick:
        record["note"] += "; QUICK MODE: tiny models on the CPU, the ratios mean nothing"
    save = lambda: write_results("bench_reference", record, config={"what": "reference"}, device=device)
    save()  # at once: a run stopped by the time guard leaves every file it began
    for name, ref in REFERENCE.items():
        if not clock.allows(240 if name.startswith("paper") else 120, f"reference {name}"):
            record["configs"][name] = {"skipped": "time budget"}
            save()
            continue
        patch_nums = ref["patch_nums"] if not quick else ((1, 2, 4) if name.startswith("cifar") else (1, 2, 3, 4))
        depth = ref["depth"] if not quick else 2 + ref["depth"] // 8
        cfg = reference_config(patch_nums, depth, quick)
        train_batch, sample_batch = (4, 2) if quick else (ref["train_batch"], ref["sample_batch"])
        entry = {"config": cfg.to_dict(), "parameters": None, "reference": ref}
        record["configs"][name] = entry
        # training: the fastest fair path we have (a failing fast path falls back to the next one). The
        # whole model compiled first: on the CIFAR model it trained 1.55x faster than per-block compilation
        # (bench_training.json), which the first run of this benchmark used for these configurations
        fast = [dict(backend="inductor", scope="model", fused_adam=True),
                dict(backend="inductor", flex=True, fused_adam=True), dict(backend="inductor", fused_adam=True)] \
            if cuda else [dict(backend="aot_eager", scope="model")]
        plain = None
        for kw in fast:
            try:
                train, plain = measure_training(cfg, train_batch, device, peak, quick=quick, keep_plain=True, **kw)
                break
            except OutOfTime:
                raise
            except Exception as e:  # noqa: BLE001 - recorded, and the next path is tried
                if clock.left() < 10:  # torch.compile may have wrapped the alarm's OutOfTime in its own error
                    raise OutOfTime("the time budget ran out") from e
                entry.setdefault("failed_paths", []).append({"path": path_name(**_path_kw(kw, cuda)),
                                                             "error": f"{type(e).__name__}: {e}"[:500]})
                clock.log(f"reference {name}: {type(e).__name__} on {kw}, trying the next path")
        else:
            save()
            continue
        entry["parameters"] = count_params(plain)
        entry["train"] = train
        entry["train_vs_reference"] = float(f"{train['tokens_per_s'] / ref['train_tokens_per_s']:.4g}")
        clock.log(f"reference {name} train: {train['tokens_per_s']:,} tok/s = x{entry['train_vs_reference']:.2f} "
                  f"the reference, {train['fraction_of_matmul_peak']:.0%} of peak, "
                  f"|dlogit| {train['max_abs_logit_diff_vs_plain']:.2g}")
        save()
        # sampling: the library's sampler, KV cache, bf16 autocast. On a GPU the fast loop as a CUDA graph with the
        # blocks compiled (the figure), and beside it the graph alone, eager with the fast draw, eager with the plain
        model, quantizer = plain.eval(), random_quantizer(cfg, device)
        agree = speed_layer_agrees(model, quantizer, device)  # before the samplers speed them up
        paths = {"graph_compiled": dict(fast=True, graph=True, compile=True), "graph": dict(fast=True, graph=True)} \
            if cuda else {}
        paths |= {"fast": dict(fast=True), "plain": {}}
        t0 = time.perf_counter()
        runs = {k: sampler(model, quantizer, sample_batch, device, SAMPLING, **kw) for k, kw in paths.items()}
        setup_s = time.perf_counter() - t0
        t = timed_in_turns(runs, device, repeats=1 if quick else 3, min_seconds=0.0 if quick else 1.0)
        del runs
        best = "graph_compiled" if cuda else "fast"
        entry["sample"] = {"path": ("fast.GraphedSampler(compile=True): generate_var's fast loop recorded as one "
                                    "CUDA graph, the blocks compiled by torch.compile, static KV cache, bf16 autocast"
                                    if cuda else "sampling.generate_var(draw=fast.sample_tokens_fast) after "
                                                 "fast.speed_up, eager, static KV cache, float32"),
                           "batch": sample_batch, "images_per_s": round(sample_batch / t[best], 2),
                           "seconds_per_batch": round(t[best], 5), "repeats": t["repeats"],
                           "eager_images_per_s": round(sample_batch / t["fast"], 2),
                           "plain_images_per_s": round(sample_batch / t["plain"], 2)}
        entry["sample"] |= samplers_agree(model, device, SAMPLING) | {"speed_layer_vs_plain": agree}
        if cuda:
            entry["sample"] |= {
                "graph_images_per_s": round(sample_batch / t["graph"], 2),
                "graph_setup_seconds_incl_compile": round(setup_s, 1),
                "graph_tokens_equal_to_eager": graph_agrees(model, quantizer, sample_batch, device, SAMPLING),
                "graph_compiled_tokens_equal_to_eager": graph_agrees(model, quantizer, sample_batch, device, SAMPLING,
                                                                     compile=True),
                "compiled_max_abs_logit_diff_vs_eager": compiled_logit_diff(model, sample_batch, device)}
        entry["sample_vs_reference"] = float(f"{entry['sample']['images_per_s'] / ref['sample_images_per_s']:.4g}")
        entry["targets_met"] = {"train": entry["train_vs_reference"] >= TARGETS["train_vs_reference"],
                                "sample": entry["sample_vs_reference"] >= TARGETS["sample_vs_reference"]}
        if name == "paper256-d16":
            entry["targets_met"]["fraction_of_peak"] = (train["fraction_of_matmul_peak"]
                                                        >= TARGETS["paper256-d16_fraction_of_peak"])
        clock.log(f"reference {name} sample: {entry['sample']['images_per_s']:,} img/s = "
                  f"x{entry['sample_vs_reference']:.2f} the reference")
        save()
        del model, plain
        if cuda:
            torch.cuda.empty_cache()
    record["complete"] = True
    save()


def _path_kw(kw: dict, cuda: bool) -> dict:
    return {"backend": kw.get("backend"), "scope": kw.get("scope", "blocks"), "flex": kw.get("flex", False),
            "fused_adam": kw.get("fused_adam", False), "bf16": cuda}


# -- all of it ---------------------------------------------------------------------------------
def run_bench(what=PARTS, quick: bool = False, device=None, budget_minutes: float = 7.0) -> None:
    """Run the chosen parts in the order of PARTS within the time budget, writing results/bench_*.json."""
    unknown = set(what) - set(PARTS)
    if unknown:
        raise ValueError(f"what={sorted(unknown)}: expected some of {PARTS}")
    device, _ = setup_device(device or ("cpu" if quick else None))
    clock = Clock(budget_minutes, estimate_scale=0.05 if quick else 1.0)
    clock.log(f"bench {' '.join(p for p in PARTS if p in what)} on {device} (torch {torch.__version__}), "
              f"budget {budget_minutes:g} min{', quick' if quick else ''}")
    try:
        with alarm(clock.seconds - 10):  # a hard stop, 10 s before the budget, for the files and the exit
            peak = matmul_peak(device, quick)
            clock.log(f"matmul peak: {peak['tflops']} TFLOP/s ({peak['dtype']} {peak['matmul']})")
            for part in PARTS:
                if part == "generation" and part in what:
                    bench_generation(device, quick, clock)
                elif part == "reference" and part in what:
                    bench_reference(device, quick, clock, peak)
                elif part == "training" and part in what:
                    bench_training(device, quick, clock, peak)
    except OutOfTime as e:
        clock.log(f"stopped: {e}; the results files hold what was measured (complete: false)")
    clock.log("done")
