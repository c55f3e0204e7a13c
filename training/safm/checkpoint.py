"""SaFM checkpoints: `<stem>.safetensors` + `<stem>.json` (config), random init, and a loader
for CodeFormer's published VQGAN / CodeFormer weights."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from training.files import atomic_write
from training.published import weights as published
from training.shipped import DEMO_SAFM
from training.safm.config import CONFIGS, SaFMConfig
from training.safm.model import SaFMRestorer


# The default weights of `restore --model safm`: a demonstration (see weights/safm/README.md).
DEMO_CHECKPOINT = DEMO_SAFM


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def random_init(config: str | SaFMConfig, seed: int = 0) -> SaFMRestorer:
    """A SaFM restorer with seeded random weights (codebook N(0, 1/emb_dim)). A residual
    configuration starts as the identity: its last convolution is zero."""
    cfg = CONFIGS[config] if isinstance(config, str) else config
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SaFMRestorer(cfg)
        torch.nn.init.normal_(model.quantize.embedding.weight, std=cfg.emb_dim ** -0.5)
    if cfg.residual:
        last = model.generator.blocks[-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
    return model.eval()


def save_checkpoint(model: SaFMRestorer, path: Path, meta: dict | None = None) -> Path:
    """Write `<stem>.safetensors` + `<stem>.json` atomically; returns the safetensors path."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"architecture": "SaFMRestorer", "config": model.config.to_dict(), **(meta or {})}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda p: save_file(state, p))
    atomic_write(path.with_suffix(".json"), lambda p: Path(p).write_text(json.dumps(config, indent=2)))
    return path


def _files(path: Path) -> tuple[Path, Path]:
    """The .safetensors and .json of a checkpoint; CheckpointError naming the one missing."""
    weights = Path(path).with_suffix(".safetensors")
    for f in (weights, weights.with_suffix(".json")):
        if not f.is_file():
            raise CheckpointError(f"{f}: not found (a SaFM checkpoint is <stem>.safetensors + <stem>.json)")
    return weights, weights.with_suffix(".json")


def load_checkpoint(path: Path | None) -> SaFMRestorer:
    """Load a SaFM checkpoint (`.safetensors` with its `.json` beside it; None: the shipped demo
    weights), eval mode, fp32."""
    weights, config_path = _files(DEMO_CHECKPOINT if path is None else path)
    try:
        meta = json.loads(config_path.read_text())
        cfg = SaFMConfig.from_dict(meta["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{config_path}: not a SaFM config ({exc})") from None
    model = SaFMRestorer(cfg)
    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise CheckpointError(f"{weights}: unreadable safetensors ({exc})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{weights}: does not fit {cfg.name}: missing {missing[:4]}, unexpected {unexpected[:4]}")
    return model.eval()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a PyTorch .pth/.ckpt (training/published/weights.py:
    weights-only unpickler, `params_ema` / `params` wrappers unwrapped)."""
    try:
        return published.read_state_dict(Path(path))[0]
    except published.PublishedWeightsError as exc:
        raise CheckpointError(str(exc)) from None


def load_codeformer_weights(model: SaFMRestorer, state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Copy CodeFormer / VQGAN tensors onto `model` where the name and shape match
    (`encoder.*`, `quantize.embedding.weight`, `generator.*`). Returns what was loaded, what
    had another shape, and what our model has that the checkpoint lacks."""
    ours = model.state_dict()
    prefixes = ("encoder.", "quantize.", "generator.")
    loaded, shape_mismatch = [], []
    for key, value in state.items():
        if not key.startswith(prefixes) or key not in ours:
            continue
        if ours[key].shape != value.shape:
            shape_mismatch.append(key)
            continue
        ours[key] = value.to(ours[key].dtype)
        loaded.append(key)
    model.load_state_dict(ours)
    not_in_checkpoint = [k for k in ours if k.startswith(prefixes) and k not in state]
    return {"loaded": loaded, "shape_mismatch": shape_mismatch, "not_in_checkpoint": not_in_checkpoint}
