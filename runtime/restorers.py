"""Restorers: aligned face batch in, restored crops out (float32 [N, S, S, 3] in [0, 1])."""
from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from runtime.face.pipeline import FaceBatch


class Restorer(Protocol):
    """What the restore job calls: all faces of one photo as one batch."""

    name: str

    def __call__(self, batch: FaceBatch) -> np.ndarray: ...


class IdentityRestorer:
    """Gives the aligned crops back unchanged: a check of the face pipeline (detect, align,
    paste back), not a restorer."""

    name = "identity"

    def __call__(self, batch: FaceBatch) -> np.ndarray:
        return batch.crops


RESTORERS: dict[str, Callable[..., Restorer]] = {"identity": IdentityRestorer}


def make_restorer(name: str) -> Restorer:
    """A restorer by name; ValueError listing the known names otherwise."""
    if name not in RESTORERS:
        raise ValueError(f"unknown restorer '{name}'; choose one of {sorted(RESTORERS)}")
    return RESTORERS[name]()
