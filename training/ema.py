"""The exponential moving average of a trained network's weights (what GFPGAN's and CodeFormer's
released `params_ema` are; BasicSR's decay 0.999): after every optimizer step
ema <- decay * ema + (1 - decay) * weights, starting from the weights the run starts with; the
buffers (e.g. spectral-norm vectors) are copied."""
from __future__ import annotations

import copy

import torch
from torch import nn


def ema_copy(model: nn.Module) -> nn.Module:
    """The EMA network: a frozen copy of `model` in eval mode (same device and dtype)."""
    return copy.deepcopy(model).eval().requires_grad_(False)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """One EMA step of `ema` towards `model` (parameters by name, buffers copied)."""
    params = dict(model.named_parameters())
    for name, p in ema.named_parameters():
        p.lerp_(params[name].detach().to(p.dtype), 1.0 - decay)
    buffers = dict(model.named_buffers())
    for name, b in ema.named_buffers():
        b.copy_(buffers[name])
