"""bench: the speed of generation and training (bench.py); benchmarks, not tests."""
from __future__ import annotations

from ..bench import run_bench
from .common import add_device, at_least


def add_bench(sub) -> None:
    bn = sub.add_parser("bench", help="generation and training speed -> results/bench_*.json (benchmarks, not tests)",
                        description="Benchmarks with random weights (var_tutorial/bench.py): next-scale against "
                        "next-token generation, our model against the reference implementation's figures, training "
                        "throughput (eager / torch.compile, SDPA / FlexAttention). Parts run in the order generation, "
                        "reference, training; each results file is written after every measurement, and measurements "
                        "that no longer fit in --budget-minutes are skipped.")
    bn.add_argument("--what", nargs="+", choices=["generation", "reference", "training"],
                    default=["generation", "reference", "training"])
    bn.add_argument("--quick", action="store_true", help="tiny configs on the CPU, seconds (for tests)")
    add_device(bn)
    bn.add_argument("--budget-minutes", type=at_least(0.1, float, "a number of minutes"), default=7.0,
                    help="hard time limit of the whole run")
    bn.set_defaults(func=cmd_bench)


def cmd_bench(args):
    run_bench(what=args.what, quick=args.quick, device=args.device, budget_minutes=args.budget_minutes)


def register(sub) -> None:
    add_bench(sub)
