# One-off profile for issue 6 (not part of the library): the CPU time of each part of a generation
# step, VAR against raster, eager with bf16 autocast, batch 64; run on the H200 at commit 564f5db as
#   PYTHONPATH=. python profile_steps.py > profile_steps.log
# (DEV=cpu runs it on the CPU). Its log is beside it.
# Issue 6: CPU cost of each piece of a VAR step and a raster step (eager, bf16 autocast), on the GPU
import time, statistics, torch, torch.nn.functional as F
from var_tutorial.bench import random_quantizer, SAMPLING, generation_settings
from var_tutorial.transformer import build_transformer
from var_tutorial.config import transformer_preset
from var_tutorial import sampling as S
from var_tutorial.fast import sample_tokens_fast, speed_up
import os
dev = torch.device(os.environ.get("DEV", "cuda"))
SYNC = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
def now(): return time.perf_counter()
def var_loop(model, quantizer, labels, cfg, top_k, top_p, temperature, generator, T):
    B, patch_nums, K = labels.shape[0], model.cfg.patch_nums, len(model.cfg.patch_nums)
    t = now(); null = torch.full_like(labels, model.cfg.num_classes)
    cond_BD = model.condition(torch.cat([labels, null])); x = model.start_token(cond_BD); start = 0
    T["setup"].append(now() - t)
    f_hat = None
    for k, pn in enumerate(patch_nums):
        t0 = now(); pos = model.position(start, pn * pn); t1 = now()
        h = x + pos
        for block in model.blocks: h = block(h, cond_BD, None)
        t2 = now(); logits = model.head(h, cond_BD); t3 = now()
        logits = S.cfg_logits(logits[:B], logits[B:], S.cfg_ramp(cfg, k, K)); t4 = now()
        r_k = sample_tokens_fast(logits, top_k, top_p, temperature, generator).view(B, pn, pn); t5 = now()
        z = quantizer.embed(r_k); t6 = now()
        hh = quantizer.up_phi(z, k) if k < K - 1 else None; t7 = now()
        if k < K - 1:
            f_hat = hh if f_hat is None else f_hat + hh
            nxt = quantizer.down(f_hat, patch_nums[k + 1]); t8 = now()
            x = model.embed(nxt.flatten(2).transpose(1, 2)).repeat(2, 1, 1); t9 = now()
        else:
            t8 = t9 = now()
        start += pn * pn
        for name, a, b in (("position", t0, t1), ("blocks", t1, t2), ("head", t2, t3), ("cfg", t3, t4), ("sample", t4, t5),
                           ("q.embed", t5, t6), ("up_phi", t6, t7), ("add+down", t7, t8), ("embed+repeat", t8, t9)):
            T[f"{k}:{name}"].append(b - a)
def raster_loop(model, labels, cfg, top_k, top_p, temperature, generator, T):
    B, L = labels.shape[0], model.cfg.num_tokens
    t = now(); null = torch.full_like(labels, model.cfg.num_classes)
    cond_BD = model.condition(torch.cat([labels, null])); x = model.start_token(cond_BD)
    T["setup"].append(now() - t)
    for i in range(L):
        t0 = now(); pos = model.position(i, 1); t1 = now()
        h = x + pos
        for block in model.blocks: h = block(h, cond_BD, None)
        t2 = now(); logits = model.head(h, cond_BD); t3 = now()
        logits = S.cfg_logits(logits[:B], logits[B:], S.cfg_ramp(cfg, i, L)); t4 = now()
        token = sample_tokens_fast(logits, top_k, top_p, temperature, generator); t5 = now()
        x = model.embed(token).repeat(2, 1, 1); t6 = now()
        for name, a, b in (("position", t0, t1), ("blocks", t1, t2), ("head", t2, t3), ("cfg", t3, t4), ("sample", t4, t5), ("embed+repeat", t5, t6)):
            T[f"{'first' if i == 0 else 'rest'}:{name}"].append(b - a)
from collections import defaultdict
for res, (pn, preset) in generation_settings(False).items():
    common = dict(vocab_size=4096, latent_channels=32, num_classes=10, patch_nums=pn, dropout=0.0)
    torch.manual_seed(0)
    models = {k: speed_up(build_transformer(transformer_preset(preset, k, **common)).eval().to(dev))[0] for k in ("var", "raster")}
    q = speed_up(quantizer=random_quantizer(models["var"].cfg, "cpu").to(dev))[1]
    gen = torch.Generator(device=dev).manual_seed(0)
    batch = 64
    labels = torch.arange(batch, device=dev) % 10
    for kind, m in models.items():
        for variant in ("plain", "one_autocast"):
            T = defaultdict(list); walls = []
            ctx = torch.autocast(dev.type, dtype=torch.bfloat16)
            if variant == "one_autocast": ctx.__enter__()
            for rep in range(6 if kind == "var" else 3):
                SYNC(); t = now()
                with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16), S.sampling_mode(m):
                    if kind == "var": var_loop(m, q, labels, 1.5, 900, 0.96, 1.0, gen, T)
                    else: raster_loop(m, labels, 1.5, 900, 0.96, 1.0, gen, T)
                c = now(); SYNC(); walls.append((now() - t, c - t))
            if variant == "one_autocast": ctx.__exit__(None, None, None)
            w = sorted(walls)[len(walls) // 2]
            print(f"== {res}px b{batch} {kind} {variant}: wall {w[0]*1e3:.2f} ms (CPU {w[1]*1e3:.2f})", flush=True)
            agg = defaultdict(float)
            for key, v in T.items():
                med = statistics.median(v[len(v)//3:]) * 1e3  # skip the first reps
                agg[key] = med
            if kind == "var":
                for k in range(len(pn)):
                    print(f"  scale {k}: " + ", ".join(f"{n} {agg[f'{k}:{n}']:.3f}" for n in ("position", "blocks", "head", "cfg", "sample", "q.embed", "up_phi", "add+down", "embed+repeat")), flush=True)
            else:
                for s in ("first", "rest"):
                    print(f"  {s}: " + ", ".join(f"{n} {agg[f'{s}:{n}']:.3f}" for n in ("position", "blocks", "head", "cfg", "sample", "embed+repeat")), flush=True)
            print(f"  setup {agg['setup']:.3f}", flush=True)
    # pieces of the quantizer step alone, CPU microseconds per call (no sync inside)
    z = torch.randn(batch, 32, pn[2], pn[2], device=dev)
    big = torch.randn(batch, 32, pn[-1], pn[-1], device=dev)
    A = getattr(q.upsample, f"from_{pn[2]}")
    phi = q.phi.phis[0]
    def nocudnn():
        with torch.backends.cudnn.flags(enabled=False):
            return phi(big)
    def acoff():
        with torch.autocast(dev.type, enabled=False):
            pass
    def cpu_us(fn, n=200):
        for _ in range(5): fn()
        SYNC(); t = now()
        for _ in range(n): fn()
        c = now(); SYNC()
        return (c - t) / n * 1e6, (now() - t) / n * 1e6
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16):
        for name, fn in (("A@z@A.T", lambda: A @ z @ A.T), ("einsum", lambda: torch.einsum("hp,bcpq,wq->bchw", A, z, A)),
                         ("up_phi", lambda: q.up_phi(z, 2)), ("phi conv", lambda: phi(big)),
                         ("F.conv2d", lambda: F.conv2d(big, phi.weight, phi.bias, padding=1)),
                         ("phi conv no cudnn", nocudnn),
                         ("down", lambda: q.down(big, pn[-2])), ("embedding", lambda: q.embed(torch.zeros(batch, pn[2], pn[2], dtype=torch.long, device=dev))),
                         ("add", lambda: big + big), ("autocast off ctx", lambda: torch.autocast(dev.type, enabled=False).__enter__()),
                         ("index_for", lambda: q.phi.index_for(2, len(pn)))):
            c, w = cpu_us(fn)
            print(f"  {res}px piece {name}: CPU {c:.1f} us, wall {w:.1f} us", flush=True)
    torch.backends.cudnn.enabled = True
    del models, q; SYNC()
