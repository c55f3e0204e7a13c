"""Data-parallel training under `torchrun` (torch.distributed): the process group (NCCL on CUDA,
gloo on CPU), gradient averaging at the optimizer step, and what rank 0 gathers for the train
state. Without torchrun's environment (WORLD_SIZE unset or 1) nothing is initialised and every
function here is the identity of a one-process run.

Gradients are averaged by one all-reduce per optimizer step over every trained parameter
(bucketed), after the last accumulation micro-step: what DistributedDataParallel's `no_sync`
on the micro-steps that do not step gives, without DDP's forward hooks, which the GAN losses
would defeat (the discriminators run several times per step, through methods, on the
generator's and on their own step) and which would all-reduce a discriminator's gradients on
the generator's backward. A parameter that got a gradient on some rank and none on another gets
zeros there, so every rank steps the same parameters (one that got none anywhere stays None, as
in a one-process run)."""
from __future__ import annotations

import argparse
import datetime
import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist
from torch import nn

BUCKET_ELEMENTS = 1 << 25   # 128 MB of fp32 gradients per all-reduce
PARALLEL_HELP = ("On several GPUs (or CPU processes): torchrun --nproc-per-node N -m {module} ... (NCCL on CUDA, "
                 "gloo on CPU; each rank reads its share of the face cache, gradients are averaged, rank 0 logs "
                 "and saves; --batch-size is per rank).")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job: rank, world size and the rank on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that logs, writes the CSV and saves."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def start(device: str, timeout_minutes: float = 30.0) -> tuple[Ranks, str]:
    """Join the job torchrun started (its RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR), or
    Ranks() without torchrun. Returns the ranks and the device this rank trains on: under
    torchrun `cuda` becomes `cuda:<local rank>` (one GPU a process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(), device
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    cuda = torch.device(device).type == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: this machine has no CUDA device (torch {torch.__version__}); "
                             "use --device cpu")
        if torch.device(device).index not in (None, ranks.local_rank):
            raise ValueError(f"--device {device}: under torchrun each rank takes cuda:<LOCAL_RANK>; pass --device cuda")
        device = f"cuda:{ranks.local_rank}"
        torch.cuda.set_device(ranks.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=timeout_minutes),
                                **({"device_id": torch.device(device)} if cuda else {}))
    return ranks, device


def stop() -> None:
    """Leave the process group (at the end of a run)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def add_parallel_options(parser: argparse.ArgumentParser, batch: int) -> None:
    """The trainers' --batch-size (per rank) and --ema-decay."""
    parser.add_argument("--batch-size", "--batch", dest="batch", type=int, default=batch,
                        help="samples per rank and micro-step (default: %(default)s); the global batch of an "
                             "optimizer step is this x ranks x --grad-accum (the log says it)")
    parser.add_argument("--ema-decay", type=float, default=0.0,
                        help="keep an exponential moving average of the trained weights with this decay (GFPGAN and "
                             "CodeFormer: 0.999) and save it as the checkpoint restore/export read, the trained "
                             "weights themselves beside it (*_raw); default 0: no EMA")


def broadcast_modules(modules: Iterable[nn.Module], ranks: Ranks) -> None:
    """Rank 0's parameters and buffers on every rank (as DDP does at construction)."""
    if not ranks.distributed:
        return
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, 0)


def average_gradients(params: Iterable[nn.Parameter], ranks: Ranks) -> None:
    """Every trained parameter's gradient becomes the mean over the ranks (SUM / world)."""
    if not ranks.distributed:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    dev = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.uint8, device=dev)
    dist.all_reduce(has, dist.ReduceOp.MAX)
    stepped = [p for p, h in zip(params, has.tolist()) if h]
    for p in stepped:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict[torch.dtype, list[nn.Parameter]] = {}
    for p in stepped:
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    for group in by_dtype.values():
        bucket, size = [], 0
        for p in group + [None]:
            if p is not None and (size + p.numel() <= BUCKET_ELEMENTS or not bucket):
                bucket.append(p)
                size += p.numel()
                continue
            flat = torch.cat([q.grad.reshape(-1) for q in bucket])
            dist.all_reduce(flat)
            flat /= ranks.world
            offset = 0
            for q in bucket:
                q.grad.copy_(flat[offset:offset + q.numel()].view_as(q.grad))
                offset += q.numel()
            bucket, size = ([p], p.numel()) if p is not None else ([], 0)


def _device() -> torch.device:
    """Where the process group's collectives take their tensors: this rank's GPU under NCCL."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def mean_over_ranks(values: dict[str, float], ranks: Ranks) -> dict[str, float]:
    """The logged loss terms averaged over the ranks (the global batch's mean)."""
    if not ranks.distributed or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return dict(zip(values, (t / ranks.world).tolist()))


def from_main(value: int, ranks: Ranks) -> int:
    """Rank 0's integer on every rank (e.g. the step count a --budget-minutes run fixed)."""
    if not ranks.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=_device())
    dist.broadcast(t, 0)
    return int(t.item())


def gather_rng(ranks: Ranks) -> list[dict[str, torch.Tensor]]:
    """Every rank's torch RNG state (CPU, and its CUDA device's when it has one), on rank 0
    (an empty list elsewhere)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    if not ranks.distributed:
        return [state]
    out: list = [None] * ranks.world if ranks.main else []
    dist.gather_object(state, out if ranks.main else None, dst=0)
    return out


def set_rng(states: list[dict[str, torch.Tensor]], ranks: Ranks, seed: int, step: int) -> str | None:
    """Restore this rank's saved RNG state; with no state saved for this rank (the run was saved
    by fewer ranks) seed it from (seed, step, rank) and say so (the returned note)."""
    if ranks.rank < len(states):
        torch.set_rng_state(states[ranks.rank]["torch"])
        if "cuda" in states[ranks.rank] and torch.cuda.is_available():
            torch.cuda.set_rng_state(states[ranks.rank]["cuda"])
        return None
    torch.manual_seed(hash((seed, step, ranks.rank)) & 0x7FFF_FFFF)
    return f"rank {ranks.rank}: the state holds the RNG of {len(states)} rank(s); seeded from (seed, step, rank)"
