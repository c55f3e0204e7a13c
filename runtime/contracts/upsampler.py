"""Contract of the background upsampler (Real-ESRGAN-class, training/published/upsamplers.py):
RGB in [0, 1], any tile size (height and width are dynamic axes), `scale` times larger out."""
from __future__ import annotations

from runtime.contracts.base import BATCH, NetworkContract, TensorSpec

BG_UPSAMPLER = NetworkContract(
    name="bg_upsampler",
    inputs=(TensorSpec("image", (BATCH, 3, "height", "width")),),
    outputs=(TensorSpec("upsampled", (BATCH, 3, "out_height", "out_width")),),
    opt_batch=1, max_batch=4, precision="fp16",
    parity_tolerance=1e-4,
)
