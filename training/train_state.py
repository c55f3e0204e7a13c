"""Resumable training state in safetensors + JSON (model weights, optimizer moments, step, RNG),
and the bookkeeping every trainer does at the end of a step (CSV log, progress, checkpoints)."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable, Iterator

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from training.distributed import Ranks, set_rng
from training.files import atomic_write

STATE_FILE = "train_state.safetensors"


def training_device(name: str) -> torch.device:
    """The device a trainer runs on; a CUDA device on a machine without one is a ValueError
    that says so (the trainer commands print it as one line), not a traceback from torch."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this machine has no CUDA device (torch {torch.__version__}); "
                         "use --device cpu")
    return device


def has_train_state(folder: Path) -> bool:
    """True when `folder` holds a train state to resume from."""
    return (folder / STATE_FILE).is_file()


def save_train_state(folder: Path, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                     step: int, extra: dict | None = None, rng: list[dict[str, torch.Tensor]] | None = None) -> None:
    """Write folder/train_state.safetensors: weights, optimizer moments, every rank's RNG state
    (`rng`, one dict a rank; default this process's) and the metadata (step, extra) in the
    file's header, so that one atomic rename replaces all of it; train_state.json beside it is
    a readable copy of the metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for rank, states in enumerate(rng if rng is not None else [{"torch": torch.get_rng_state()}]):
        tensors.update({f"rng.{rank}.{kind}": state for kind, state in states.items()})
    meta: dict = {"step": step, "extra": extra or {}, "optimizers": {}}
    for name, model in models.items():
        tensors.update({f"model.{name}.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()})
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        scalars = {}
        for pid, state in sd["state"].items():
            for k, v in state.items():
                if torch.is_tensor(v) and v.ndim > 0:
                    tensors[f"optim.{name}.{pid}.{k}"] = v.detach().contiguous().cpu()
                else:
                    scalars[f"{pid}.{k}"] = float(v)
        meta["optimizers"][name] = {"param_groups": sd["param_groups"], "scalars": scalars}
    text = json.dumps(meta, indent=1)
    atomic_write(folder / STATE_FILE, lambda p: save_file(tensors, p, metadata={"train_state": text}))
    atomic_write(folder / "train_state.json", lambda p: Path(p).write_text(text))


def load_train_state(folder: Path, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                     ranks: Ranks = Ranks(), seed: int = 0) -> dict:
    """Restore what save_train_state wrote (this rank's RNG state included; see
    training.distributed.set_rng for a rank the state has none for); returns the metadata
    (step, extra, and `note` when the RNG was seeded instead)."""
    path = folder / STATE_FILE
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as fh:
        header = (fh.metadata() or {}).get("train_state")
    meta = json.loads(header if header is not None else (folder / "train_state.json").read_text())
    for name, model in models.items():
        prefix = f"model.{name}."
        part = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not part:
            raise ValueError(f"{path}: holds no {name!r} weights (saved by a run with other options)")
        model.load_state_dict(part)
    for name, opt in optimizers.items():
        info = meta["optimizers"][name]
        state: dict[int, dict] = {}
        prefix = f"optim.{name}."
        for key, value in tensors.items():
            if key.startswith(prefix):
                pid, k = key[len(prefix):].split(".", 1)
                state.setdefault(int(pid), {})[k] = value
        for key, value in info["scalars"].items():
            pid, k = key.split(".", 1)
            state.setdefault(int(pid), {})[k] = torch.tensor(value)
        opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    rng: list[dict[str, torch.Tensor]] = []
    if "rng.torch" in tensors:   # a state written before the per-rank RNG
        rng.append({"torch": tensors["rng.torch"]})
    while f"rng.{len(rng)}.torch" in tensors:
        rng.append({k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"rng.{len(rng)}.")})
    note = set_rng(rng, ranks, seed, meta["step"])
    return {**meta, **({"note": note} if note else {})}


def resume(folder: Path, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer], ranks: Ranks,
           seed: int, samples_per_step: int) -> dict | None:
    """A trainer's resume: None without a train state in `folder`, else its metadata with
    `samples` (the stream position; a state from before it: step x samples_per_step) after
    loading it (rank 0 prints the note of a rank whose RNG the state lacks)."""
    if not has_train_state(folder):
        return None
    meta = load_train_state(folder, models, optimizers, ranks, seed)
    meta["samples"] = meta["extra"].get("samples", meta["step"] * samples_per_step)
    if ranks.main and meta.get("note"):
        print(f"resume: {meta['note']}")
    return meta


def append_csv(path: Path, row: dict) -> None:
    """Append a row to a CSV log (header on the first row)."""
    new = not path.is_file()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def jsonable(d: dict) -> dict:
    """A config dict with paths as strings, for the JSON beside a checkpoint."""
    return {k: (str(v) if isinstance(v, Path) else jsonable(v) if isinstance(v, dict) else v) for k, v in d.items()}


def end_step(step: int, target: int, logged: dict[str, float], log: Path | None, bar, log_every: int, save_every: int,
             save: Callable[[], object], extra: dict | None = None) -> dict:
    """The row of a finished step (total = every logged term but the discriminators' "d"):
    appended to the CSV log every `log_every` steps (not with `log` None: a rank other than
    0), a checkpoint every `save_every` steps and at the last step (`save` runs on every rank:
    it gathers their RNG states), the progress bar advanced."""
    row = {"step": step, "total": sum(v for k, v in logged.items() if k != "d"), **logged, **(extra or {})}
    if log is not None and (step % log_every == 0 or step == target):
        append_csv(log, row)
        bar.set_postfix(loss=f"{row['total']:.4f}")
    if step % save_every == 0 or step == target:
        save()
    bar.update(1)
    return row


def sample_loader(dataset, batch: int, ranks: Ranks, seed: int, start: int, workers: int,
                  pin_memory: bool = False) -> Iterator[dict]:
    """Endless batches of this rank's share of the run's sample stream (training/data/stream.py)
    from `start` (samples the run has consumed); items carry their `epoch` and `index`."""
    from torch.utils.data import DataLoader

    from training.data.stream import EpochItems, SampleStream

    import torch

    stream = SampleStream(len(dataset), seed, batch, ranks.rank, ranks.world)
    # its own generator: the loader's worker seed is not drawn from the global RNG, so a resumed run
    # (one more loader than an uninterrupted one) keeps the global RNG of the uninterrupted run
    yield from DataLoader(EpochItems(dataset), batch_sampler=stream.batches(start), num_workers=workers,
                          pin_memory=pin_memory, persistent_workers=False,
                          generator=torch.Generator().manual_seed(seed))


def run_trainer(build: Callable[[], object], errors: tuple[type[BaseException], ...], checkpoint: Path) -> int:
    """A trainer command's body: build the trainer (a configuration error in `errors` becomes a
    one-line message and exit status 2), train to its step count, say where the checkpoint is
    (rank 0). Under torchrun, a rank that loses another (it died: its collective fails) says
    so and where the last saved state is, and exits 1; torchrun then ends the job non-zero."""
    import sys

    import torch.distributed as dist

    from training.distributed import stop

    try:
        trainer = build()
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        stop()
        return 2
    ranks = trainer.ranks
    try:
        rows = trainer.train()
    except (RuntimeError, dist.DistError) as exc:   # (no stop(): leaving a broken group can block)
        if not ranks.distributed:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: rank {ranks.rank} of {ranks.world}: a collective failed at step {trainer.step} ({first}); "
              f"another rank has most likely died. The last saved state, {trainer.state_dir}, resumes with the "
              f"same command.", file=sys.stderr)
        return 1
    stop()
    if ranks.main:
        done = f"step {trainer.step}: loss {rows[-1]['total']:.4f}" if rows else f"already at step {trainer.step}"
        print(f"{done}; checkpoint {checkpoint}")
    return 0
