"""The classical baseline restorer itself."""
from __future__ import annotations

import cv2
import numpy as np

from runtime.face.pipeline import FaceBatch
from runtime.restorers.base import Settable
from training.provenance import Provenance

NLM_STRENGTH = 5           # h and hColor of fastNlMeansDenoisingColored (8-bit levels)
UNSHARP_SIGMA = 1.5 / 512  # Gaussian sigma of the unsharp mask, in crop sides
UNSHARP_AMOUNT = 0.7


def denoise_sharpen(crop: np.ndarray) -> np.ndarray:
    """NLM denoise (7x7 patches, 21x21 search) then crop + amount x (crop - Gaussian blur), uint8 RGB."""
    clean = cv2.fastNlMeansDenoisingColored(crop, None, NLM_STRENGTH, NLM_STRENGTH, 7, 21).astype(np.float32)
    blurred = cv2.GaussianBlur(clean, (0, 0), UNSHARP_SIGMA * crop.shape[0])
    return np.clip(np.round(clean + UNSHARP_AMOUNT * (clean - blurred)), 0, 255).astype(np.uint8)


class ClassicalRestorer(Settable):
    """NLM denoise + unsharp mask per aligned face: a baseline, not a restorer."""

    name = "classical"
    provenance = Provenance(f"classical baseline: OpenCV NLM denoise (h {NLM_STRENGTH}) + unsharp mask "
                            f"(sigma {UNSHARP_SIGMA * 512:g} px at 512, amount {UNSHARP_AMOUNT}), no weights", True)

    def __call__(self, batch: FaceBatch, **settings) -> np.ndarray:
        return np.stack([denoise_sharpen(c) for c in batch.crops])
