"""Resumable training state in safetensors + JSON (model weights, optimizer moments, step, RNG),
and the bookkeeping every trainer does at the end of a step (CSV log, progress, checkpoints)."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from training.files import atomic_write


def training_device(name: str) -> torch.device:
    """The device a trainer runs on; a CUDA device on a machine without one is a ValueError
    that says so (the trainer commands print it as one line), not a traceback from torch."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this machine has no CUDA device (torch {torch.__version__}); "
                         "use --device cpu")
    return device


def save_train_state(folder: Path, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                     step: int, extra: dict | None = None) -> None:
    """Write folder/train_state.safetensors + train_state.json (atomically, tensors first)."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
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
    atomic_write(folder / "train_state.safetensors", lambda p: save_file(tensors, p))
    atomic_write(folder / "train_state.json", lambda p: Path(p).write_text(json.dumps(meta, indent=1)))


def load_train_state(folder: Path, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    """Restore what save_train_state wrote; returns the JSON metadata (step, extra)."""
    tensors = load_file(str(folder / "train_state.safetensors"))
    meta = json.loads((folder / "train_state.json").read_text())
    for name, model in models.items():
        prefix = f"model.{name}."
        model.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
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
    torch.set_rng_state(tensors["rng.torch"])
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


def end_step(step: int, target: int, logged: dict[str, float], log: Path, bar, log_every: int, save_every: int,
             save: Callable[[], object], extra: dict | None = None) -> dict:
    """The row of a finished step (total = every logged term but the discriminators' "d"):
    appended to the CSV log every `log_every` steps, a checkpoint every `save_every` steps and
    at the last step, the progress bar advanced."""
    row = {"step": step, "total": sum(v for k, v in logged.items() if k != "d"), **logged, **(extra or {})}
    if step % log_every == 0 or step == target:
        append_csv(log, row)
        bar.set_postfix(loss=f"{row['total']:.4f}")
    if step % save_every == 0 or step == target:
        save()
    bar.update(1)
    return row


def run_trainer(build: Callable[[], object], errors: tuple[type[BaseException], ...], checkpoint: Path) -> int:
    """A trainer command's body: build the trainer (a configuration error in `errors` becomes a
    one-line message and exit status 2), train to its step count, say where the checkpoint is."""
    import sys

    try:
        trainer = build()
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = trainer.train()
    done = f"step {trainer.step}: loss {rows[-1]['total']:.4f}" if rows else f"already at step {trainer.step}"
    print(f"{done}; checkpoint {checkpoint}")
    return 0
