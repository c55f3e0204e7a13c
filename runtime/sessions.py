"""Backends behind one session interface: numpy arrays in, a tuple of numpy arrays out."""
from __future__ import annotations

import numpy as np
import torch


class TorchSession:
    """Runs an eval-mode torch module under inference_mode on a device/dtype; numpy in and out."""

    def __init__(self, module: torch.nn.Module, device: str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.device, self.dtype = torch.device(device), dtype
        self.module = module.eval().to(self.device, dtype)

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(x)).to(self.device, self.dtype) for x in inputs]
            out = self.module(*args)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return tuple(o.float().cpu().numpy() for o in out)
