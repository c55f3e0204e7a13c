"""PyTorch ports of MediaPipe's face detector and face mesh, with loaders for converted weights.

Weights live in ``training/weights/mediapipe/<stem>.safetensors`` with a ``<stem>.json`` config
next to them; ``python -m training.convert_mediapipe`` writes both from the TFLite originals.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import load_file
from torch import nn

from .blazeface import BlazeFaceFullRange
from .face_mesh import FaceMesh
from training.shipped import MEDIAPIPE

__all__ = ["BlazeFaceFullRange", "FaceMesh", "WEIGHTS_DIR", "load_face_detector", "load_face_mesh"]

WEIGHTS_DIR = MEDIAPIPE

M = TypeVar("M", bound=nn.Module)


class WeightsError(RuntimeError):
    """Converted weights that are missing or do not fit the module; the message names the file."""


def _load(module: M, path: Path) -> M:
    """Fill ``module`` from ``<stem>.safetensors`` + ``<stem>.json``; eval mode, float32."""
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    weights, config_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    for f in (weights, config_path):
        if not f.is_file():
            raise WeightsError(f"{f}: not found; run `python -m training.convert_mediapipe`")
    config = json.loads(config_path.read_text())
    arch = type(module).__name__
    if config.get("architecture") != arch:
        raise WeightsError(f"{config_path}: architecture {config.get('architecture')!r}, expected {arch!r}")
    state = load_file(str(weights))
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise WeightsError(f"{weights}: does not fit {arch}: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}, wrong shape {wrong[:5]}")
    module.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    return module.float().eval()


def load_face_detector(path: Path | None = None) -> BlazeFaceFullRange:
    """BlazeFace full-range with converted weights (default ``weights/mediapipe/face_detector``)."""
    return _load(BlazeFaceFullRange(), Path(path) if path is not None else WEIGHTS_DIR / "face_detector")


def load_face_mesh(path: Path | None = None) -> FaceMesh:
    """Face mesh with converted weights (default ``weights/mediapipe/face_mesh``)."""
    return _load(FaceMesh(), Path(path) if path is not None else WEIGHTS_DIR / "face_mesh")
