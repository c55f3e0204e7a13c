"""The upsampler against bicubic and Lanczos on the held-out photographs (split_photos): each HR
photo (at most 1600 px, cropped to a multiple of 4) reduced by bicubic x2 and x4, brought back
by each method, PSNR and SSIM (RGB, training/metrics.py) against the HR photo with a border of
`scale` pixels left out. At a scale other than the network's own (x2 for an x4 network) the
network's output is resized to it with an area filter, as `--upscale` does."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from training.files import atomic_write
from training.metrics import psnr, ssim
from training.published.upsamplers import load_upsampler
from training.upsampler.train import bicubic_down, read_rgb, split_photos

SCALES = (2, 4)
METHODS = ("bicubic", "lanczos", "upsampler")


def network_upscale(model: torch.nn.Module, native: int, lr: np.ndarray, scale: int) -> np.ndarray:
    """uint8 RGB `lr` upsampled by the network, resized to `scale` when that is not its own."""
    with torch.no_grad():
        x = torch.from_numpy(lr.copy()).permute(2, 0, 1)[None].float() / 255
        y = model(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    out = np.rint(y * 255).astype(np.uint8)
    if scale != native:
        h, w = lr.shape[:2]
        out = cv2.resize(out, (w * scale, h * scale), interpolation=cv2.INTER_AREA)
    return out


def evaluate(photos: Path, checkpoint: Path, out: Path) -> str:
    """Write evaluation.json (per photo) and evaluation.md (means); returns the Markdown."""
    model, config = load_upsampler(checkpoint)
    _, held = split_photos(photos)
    rows = []
    for f in held:
        hr = read_rgb(f)
        hr = hr[:hr.shape[0] // 4 * 4, :hr.shape[1] // 4 * 4]
        for scale in SCALES:
            lr = bicubic_down(hr, scale)
            size = (hr.shape[1], hr.shape[0])
            outs = {"bicubic": np.asarray(Image.fromarray(lr).resize(size, Image.BICUBIC)),
                    "lanczos": np.asarray(Image.fromarray(lr).resize(size, Image.LANCZOS)),
                    "upsampler": network_upscale(model, config.scale, lr, scale)}
            b = scale
            for method, img in outs.items():
                rows.append({"photo": f.name, "scale": scale, "method": method,
                             "psnr": psnr(img[b:-b, b:-b], hr[b:-b, b:-b]), "ssim": ssim(img[b:-b, b:-b], hr[b:-b, b:-b])})
    lines = [f"Held-out photographs: {len(held)} ({', '.join(f.name for f in held)}); checkpoint {checkpoint.name}.", "",
             "| scale | method | PSNR (dB) | SSIM |", "|---|---|---|---|"]
    for scale in SCALES:
        for method in METHODS:
            sel = [r for r in rows if r["scale"] == scale and r["method"] == method]
            lines.append(f"| x{scale} | {method} | {np.mean([r['psnr'] for r in sel]):.2f} | "
                         f"{np.mean([r['ssim'] for r in sel]):.4f} |")
    md = "\n".join(lines) + "\n"
    atomic_write(out / "evaluation.json", lambda p: Path(p).write_text(json.dumps(rows, indent=1)))
    atomic_write(out / "evaluation.md", lambda p: Path(p).write_text(md))
    return md
