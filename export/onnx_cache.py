"""ONNX files made once, on first use, for the in-process ONNX Runtime path: one folder per
network and weights under the user's cache, so `restore` runs ONNX Runtime without an export
step and, once the files exist, without importing torch."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from runtime.contracts.base import SOURCE_KEY, NetworkContract
from runtime.files import cache_root
from runtime.onnx_metadata import OnnxMetadataError, onnx_metadata
from runtime.weights import default_weights, source_id

__all__ = ["cache_root", "onnx_dir", "onnx_up_to_date", "weights_file"]


def weights_file(contract: NetworkContract, checkpoint: Path | None) -> Path:
    """The weights file (or checkpoint folder) `contract`'s network is built from."""
    if checkpoint is not None:
        return Path(checkpoint)
    if (default := default_weights(contract.name)) is None:
        raise ValueError(f"{contract.name}: no default weights file to cache an ONNX export of; pass --checkpoint")
    return default


def onnx_up_to_date(contract: NetworkContract, path: Path, checkpoint: Path | None) -> bool:
    """True when `path` exists and was exported from the same weights (a file that is no ONNX: False)."""
    if not path.is_file():
        return False
    try:
        return onnx_metadata(path).get(SOURCE_KEY) == source_id(checkpoint)
    except OnnxMetadataError:
        return False


def onnx_dir(contract: NetworkContract, checkpoint: Path | None = None, search: Path | None = None) -> Path:
    """A folder holding <contract name>.onnx for these weights: `search` when it has the file
    (the user's own exports, checked against the weights when the session opens), else the
    cache folder <cache>/onnx/<name>-<weights sha256[:16]>, exported there first if missing."""
    if search is not None and (Path(search) / f"{contract.name}.onnx").is_file():
        return Path(search)
    weights = weights_file(contract, checkpoint)
    if not weights.exists():
        raise FileNotFoundError(f"{weights}: not found")
    key = hashlib.sha256(source_id(weights).encode()).hexdigest()[:16]
    folder = cache_root() / "onnx" / f"{contract.name}-{key}"
    if not (folder / f"{contract.name}.onnx").is_file():
        from export.onnx_export import export_onnx  # torch, onnx, onnxslim: only for the first run

        print(f"note: exporting {contract.name} to ONNX once, into {folder}", file=sys.stderr)
        export_onnx(contract, folder, weights)
    return folder
