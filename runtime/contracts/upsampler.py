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

DEFAULT_TILE = 400     # tile side in input pixels (`restore --tile`, the engine profile of `build-engines`)
DEFAULT_OVERLAP = 16   # context added on every side of a tile (runtime/upsampler.py)


def tile_axes(tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP) -> dict[str, tuple[int, int, int]]:
    """(min, opt, max) of the height and width a tiled upsampler feeds its network: a tile with
    its context is at most `tile + 2 * overlap` on a side (most tiles are that size: opt), an
    edge tile or a photo smaller than a tile anything down to 1 pixel. ValueError for tile 0
    (whole photos have no bound for an engine profile)."""
    if tile < 1 or overlap < 0:
        raise ValueError(f"the upsampler's engine profile needs a tile side >= 1 and an overlap >= 0 "
                         f"(got --tile {tile}, overlap {overlap}): whole photos have no size bound")
    side = tile + 2 * overlap
    return {axis: (1, side, side) for axis in BG_UPSAMPLER.open_axes()}
