"""The identity restorer itself."""
from __future__ import annotations

import numpy as np

from runtime.face.pipeline import FaceBatch
from runtime.restorers.base import Settable
from training.provenance import Provenance


class IdentityRestorer(Settable):
    """Gives the aligned crops back unchanged: a check of the face pipeline (detect, align,
    paste back), not a restorer."""

    name = "identity"
    provenance = Provenance("identity: no network, the aligned crops unchanged", True)

    def __call__(self, batch: FaceBatch, **settings) -> np.ndarray:
        return batch.crops
