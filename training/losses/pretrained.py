"""Loading the user's pretrained loss networks (VGG-19, ArcFace) from safetensors: never downloaded."""
from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file
from torch import nn


class MissingWeights(ValueError):
    """A loss that needs pretrained weights was enabled without (usable) weights."""


def load_frozen(module: nn.Module, path: Path | None, what: str, flag: str) -> nn.Module:
    """Fill `module` from a safetensors file (strict), freeze it, eval mode."""
    if path is None:
        raise MissingWeights(f"the {what} loss needs pretrained weights: pass {flag} PATH.safetensors "
                             f"(or disable that loss); nothing is downloaded")
    path = Path(path)
    if not path.is_file():
        raise MissingWeights(f"{path}: not found ({what} weights for {flag})")
    state = load_file(str(path))
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise MissingWeights(f"{path}: not {what} weights of the expected layout: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()
