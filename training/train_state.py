"""Resumable training state in safetensors + JSON: model weights, optimizer moments, step, RNG."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn


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
    for target, write in ((folder / "train_state.safetensors", lambda p: save_file(tensors, p)),
                          (folder / "train_state.json", lambda p: Path(p).write_text(json.dumps(meta, indent=1)))):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.")
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


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
