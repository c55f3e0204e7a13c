"""Contract of the SaFM restorer: aligned faces + region maps + fidelity -> restored faces."""
from __future__ import annotations

from runtime.contracts.base import BATCH, NetworkContract, TensorSpec
from runtime.restorers.options import FIDELITY_OPTION

FACE = 512
DEFAULT_FIDELITY = FIDELITY_OPTION.default

IMAGE = TensorSpec("image", (BATCH, 3, FACE, FACE))              # aligned faces in [-1, 1]
LABEL_MAP = TensorSpec("label_map", (BATCH, 1, FACE, FACE))      # region labels (runtime/face/regions.py)
FIDELITY = TensorSpec("fidelity", (BATCH, 1))                    # weight of the local detail enhancement

SAFM = NetworkContract(
    name="safm",
    inputs=(IMAGE, LABEL_MAP, FIDELITY),
    outputs=(TensorSpec("restored", (BATCH, 3, FACE, FACE)),),
    opt_batch=4, max_batch=16,
    # Measured 5e-5..2.2e-4 with random weights, whose activations grow to outputs of +-8 through
    # 70 layers; a nearest-code lookup can also flip on a near-tie. Trained scale: ~1e-4 absolute.
    parity_tolerance=5e-4,
)
