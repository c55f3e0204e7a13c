"""The identity restorer itself."""
from __future__ import annotations

import numpy as np

from runtime.face.pipeline import FaceBatch
from training.provenance import Provenance


class IdentityRestorer:
    """Gives the aligned crops back unchanged: a check of the face pipeline (detect, align,
    paste back), not a restorer."""

    name = "identity"
    provenance = Provenance("identity: no network, the aligned crops unchanged", True)

    def __call__(self, batch: FaceBatch) -> np.ndarray:
        return batch.crops
