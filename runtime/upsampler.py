"""The background upsampler at run time: a Real-ESRGAN-class network (contract BG_UPSAMPLER) on
any session, run over the photo in tiles with overlap (Real-ESRGAN's `tile` / `tile_pad`): each
tile is cut with `overlap` extra pixels of context on every side, upsampled, and only its own
part kept, so seams vanish once the overlap covers the network's receptive field. The result
is resized to the requested scale when that is not the network's own (area filter down,
Lanczos up), as Real-ESRGAN's `outscale` does. A photo's samples in, the same dtype out (uint8
or uint16): each tile is float only while the network runs on it, never the whole frame."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from runtime.contracts.upsampler import BG_UPSAMPLER, DEFAULT_OVERLAP
from runtime.imageio import from_float, to_float

Net = Callable[..., tuple[np.ndarray, ...]]


class BackgroundUpsampler:
    """RGB HxWx3 samples (uint8 or uint16; or float32 in [0, 1]) in, the same dtype upsampled by
    `scale` out (`__call__`)."""

    def __init__(self, session: Net, scale: int, tile: int = 0, overlap: int = DEFAULT_OVERLAP, name: str = "") -> None:
        if tile < 0 or overlap < 0:
            raise ValueError(f"--tile and the overlap must be >= 0 (got {tile}, {overlap})")
        self.session, self.scale, self.tile, self.overlap, self.name = session, scale, tile, overlap, name

    def network(self, rgb: np.ndarray) -> np.ndarray:
        """The network's own output (`scale` times larger) of HxWx3 samples, tiled when `tile` > 0."""
        h, w = rgb.shape[:2]
        s = self.scale
        if not self.tile or (h <= self.tile and w <= self.tile):
            return self._run(rgb)
        out = np.empty((h * s, w * s, 3), rgb.dtype)
        t, p = self.tile, self.overlap
        for y in range(0, h, t):
            for x in range(0, w, t):
                y0, x0, y1, x1 = max(0, y - p), max(0, x - p), min(h, y + t + p), min(w, x + t + p)
                up = self._run(rgb[y0:y1, x0:x1])
                ty, tx = min(t, h - y), min(t, w - x)
                oy, ox = (y - y0) * s, (x - x0) * s
                out[y * s:(y + ty) * s, x * s:(x + tx) * s] = up[oy:oy + ty * s, ox:ox + tx * s]
        return out

    def _run(self, rgb: np.ndarray) -> np.ndarray:
        samples = rgb.dtype.kind != "f"
        x = np.ascontiguousarray((to_float(rgb) if samples else rgb).transpose(2, 0, 1)[None], np.float32)
        up = self.session(**{BG_UPSAMPLER.input_names[0]: x})[0][0].transpose(1, 2, 0)
        return from_float(up, rgb.dtype) if samples else np.clip(up, 0, 1)

    def __call__(self, rgb: np.ndarray, scale: float) -> np.ndarray:
        """`rgb` upsampled to round(size * scale) (the photo's output size with --upscale)."""
        h, w = rgb.shape[:2]
        size = (round(w * scale), round(h * scale))
        up = self.network(rgb)
        if up.shape[:2] == size[::-1]:
            return up
        inter = cv2.INTER_AREA if size[0] < up.shape[1] else cv2.INTER_LANCZOS4
        up = cv2.resize(up, size, interpolation=inter)   # samples: saturated to their range
        return np.clip(up, 0, 1) if up.dtype.kind == "f" else up


def torch_upsampler(weights: Path, device: str = "cpu", precision: str = "auto", tile: int = 0,
                    overlap: int = DEFAULT_OVERLAP) -> BackgroundUpsampler:
    """The upsampler in `weights` (RealESRGAN_x4plus / x2plus, realesr-general-x4v3, ours) on torch
    in `precision` as the restorers choose it (`torch_precision`: "auto" is fp16 on CUDA, as
    Real-ESRGAN's `half`, and fp32 on a CPU; fp16 asked on a CPU is refused, bf16 where the CPU
    computes it). The tiles go in and come out as float32 (TorchSession casts)."""
    from runtime.restorers.factory import torch_precision
    from runtime.sessions import DTYPES, TorchSession
    from training.published.upsamplers import load_upsampler

    dtype = DTYPES[torch_precision(device, precision)]
    module, config = load_upsampler(Path(weights))
    session = TorchSession(module, BG_UPSAMPLER, device, dtype)
    return BackgroundUpsampler(session, config.scale, tile, overlap, f"{config.arch} x{config.scale} ({Path(weights).name})")


def onnx_upsampler(onnx_dir: Path, weights: Path | None, device: str = "cpu", tile: int = 0,
                   overlap: int = DEFAULT_OVERLAP) -> BackgroundUpsampler:
    """The upsampler exported to `<onnx_dir>/bg_upsampler.onnx` from `weights` (checked when the
    session opens), on ONNX Runtime."""
    from runtime.sessions import onnx_session

    session = onnx_session(BG_UPSAMPLER, onnx_dir, weights, device)
    scale = network_scale(session)
    return BackgroundUpsampler(session, scale, tile, overlap, f"bg_upsampler x{scale} (ONNX Runtime, {Path(onnx_dir).name})")


def network_scale(session: Net) -> int:
    """The upsampling factor of a session of BG_UPSAMPLER, read off one call on an 8x8 input."""
    return session(np.zeros((1, 3, 8, 8), np.float32))[0].shape[-1] // 8
