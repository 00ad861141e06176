"""Training on several GPUs with DistributedDataParallel, launched by torchrun.

    python -m var_tutorial train ...                                  # one process: the default
    torchrun --nproc_per_node 2 -m var_tutorial train ...             # two GPUs, the same command

Every process ("rank") runs the same training loop on its own GPU. All ranks draw the
same global batch of B images (the same seeded order as one GPU would) and each keeps its
slice of B / world_size of them; DDP averages the gradients over the ranks in backward, so
every rank takes the same optimizer step as one GPU with the whole batch would. Only rank
0 prints progress and writes checkpoints, weights and results. Should one rank fail,
torchrun stops the others and reports the first failure (main() is wrapped in @record).

Without torchrun (no WORLD_SIZE in the environment) nothing here does anything: world()
is 1 and every helper is the identity, so the single-process path needs no torchrun.
"""
from __future__ import annotations

import inspect
import os
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .records import read_results, write_results


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return world_size_requested() > 1


def world_size_requested() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init(device=None) -> torch.device:
    """Join the process group when launched by torchrun (NCCL on GPUs, gloo on CPUs) and
    return this rank's device; otherwise return the device unchanged."""
    if not launched():
        return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = (device is None or torch.device(device).type == "cuda") and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def rank() -> int:
    """This process's rank (0 without torchrun; torchrun's RANK before the group is joined)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0: the only process that prints, checkpoints and writes results."""
    return rank() == 0


def shard(batch: torch.Tensor, what: str = "batch_size") -> torch.Tensor:
    """This rank's contiguous slice of a global batch (rows), which must split evenly."""
    n, w = len(batch), world()
    if n % w:
        raise ValueError(f"{what}={n}: expected a multiple of the number of processes ({w}), so that every GPU "
                         "gets the same share of the global batch")
    per = n // w
    return batch[rank() * per : (rank() + 1) * per]


def wrap(model: torch.nn.Module, device: torch.device, broadcast_buffers: bool = True,
         find_unused_parameters: bool = False) -> torch.nn.Module:
    """model inside DistributedDataParallel when there are several ranks, else model.
    broadcast_buffers=False keeps every rank's buffers its own (DDP copies rank 0's by default);
    find_unused_parameters: some parameters get no gradient in a step (DDP would wait for them)."""
    if world() == 1:
        return model
    keep_own = {}
    if not broadcast_buffers:  # the keyword was renamed in newer PyTorch (which still syncs once, at the start)
        renamed = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
        keep_own = {"forward_sync_buffers" if renamed else "broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=find_unused_parameters, **keep_own)


def all_sum_(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over the ranks, in place (a no-op on one process)."""
    if world() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over the ranks (a copy; the tensor itself on one process)."""
    return all_sum_(t.detach().clone()) / world() if world() > 1 else t


def broadcast_(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's tensor on every rank, in place."""
    if world() > 1:
        dist.broadcast(t, src=0)
    return t


def agree_int(value: int, device) -> int:
    """Rank 0's integer on every rank (the step count that a time budget fixed, for example)."""
    if world() == 1:
        return value
    return int(broadcast_(torch.tensor([value], device=device)).item())


def any_rank(flag: bool, device) -> bool:
    """True on every rank if it is True on any rank (a deadline passed somewhere)."""
    if world() == 1:
        return flag
    return bool(all_sum_(torch.tensor([int(flag)], device=device)).item() > 0)


@contextmanager
def main_first():
    """Rank 0 runs the block first (unpacking a data set, writing a token cache), the other
    ranks wait, then run it too and find its files made. Nothing on one process."""
    if world() > 1 and not is_main():
        dist.barrier()
    yield
    if world() > 1 and is_main():
        dist.barrier()


def scaling_report(single_dir, multi_dir, experiment: str = "train_var_cifar10", skip: int = 100,
                   first: int = 3, results_name: str = "ddp_scaling") -> Path:
    """results/<results_name>.json (ddp_scaling.json) from two runs of the same `train` command,
    one process and torchrun: steps per second after `skip` steps (torch.compile's warm-up),
    their ratio, and the first `first` logged training losses of both with their largest
    relative difference."""
    runs = {name: read_results(experiment, folder) for name, folder in (("single", single_dir), ("multi", multi_dir))}
    out = {}
    for name, r in runs.items():
        logged = [h for h in r["metrics"]["history"] if "loss" in h]
        start = next((h for h in logged if h["step"] >= skip), None)
        if start is None or start is logged[-1]:
            raise ValueError(f"{name} run logged no steps after step {skip}: run more steps, or pass a smaller skip")
        end = logged[-1]
        out[name] = {"processes": r["metrics"].get("processes", 1), "command": r["command"], "device": r["device"],
                     "batch_size": r["config"]["train"]["batch_size"],
                     "steps_per_second": (end["step"] - start["step"]) / (end["seconds"] - start["seconds"]),
                     "first_losses": [h["loss"] for h in logged[:first]]}
    if out["single"]["batch_size"] != out["multi"]["batch_size"]:
        raise ValueError(f"batch sizes {out['single']['batch_size']} and {out['multi']['batch_size']}: "
                         "expected the same global batch in both runs")
    diffs = [abs(a - b) / abs(a) for a, b in zip(out["single"]["first_losses"], out["multi"]["first_losses"])]
    metrics = {**out, "speedup": out["multi"]["steps_per_second"] / out["single"]["steps_per_second"],
               "first_losses_max_relative_difference": max(diffs), "skipped_steps": skip}
    return write_results(results_name, metrics, config={"experiment": experiment})


def close(finished: bool = True) -> None:
    """End the process group. After a finished command every rank first waits for the others
    at a barrier (rank 0 may still be exporting weights), so no process tears its connections
    down while another still uses them: with gloo that can abort the other process. After a
    failure there is no waiting: the other ranks may be stuck in a collective, and torchrun
    ends them when this process exits."""
    if dist.is_initialized():
        if finished and world() > 1:
            dist.barrier()
        dist.destroy_process_group()
