"""Held-out evaluation: PSNR/SSIM of restored vs clean faces on freshly degraded copies (seeds
the training never drew), against the degraded input itself."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.data.degradations import DegradationConfig, degrade
from training.data.faces import AlignedFaces, to_tensor
from training.metrics import psnr, ssim
from training.safm.model import SaFMRestorer

HELD_OUT_SEED = 1_000_003


def evaluate(model: SaFMRestorer, cache: Path, copies: int = 4, fidelity: float = 0.5,
             cfg: DegradationConfig = DegradationConfig(clean_fraction=0.0), dtype: torch.dtype = torch.float32) -> dict:
    """Mean PSNR/SSIM over `copies` degraded versions of every cached face (no clean pairs).
    The region maps are the cached ones (from the clean photo). `dtype`: the network's weights
    and inputs (bfloat16: what `restore --precision bf16` runs), outputs back in fp32."""
    faces = AlignedFaces(cache, cfg, flip=False)
    rows = []
    model = model.eval().to(dtype)
    for i in range(len(faces)):
        stem = faces.items[i]
        item = faces[i]
        hq = ((item["hq"].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        for k in range(copies):
            lq, _ = degrade(hq, HELD_OUT_SEED + 1000 * i + k, cfg)
            with torch.inference_mode():
                out = model(to_tensor(lq)[None].to(dtype), item["label_map"][None].to(dtype),
                            torch.full((1, 1), fidelity, dtype=dtype))[0].float()
            restored = ((out.clamp(-1, 1).permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
            rows.append({"face": stem.name, "copy": k, "psnr_input": psnr(lq, hq), "ssim_input": ssim(lq, hq),
                         "psnr_restored": psnr(restored, hq), "ssim_restored": ssim(restored, hq)})
    mean = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0] if k not in ("face", "copy")}
    return {"faces": len(faces), "copies": copies, "fidelity": fidelity, "dtype": str(dtype).removeprefix("torch."),
            "mean": mean, "rows": rows}
