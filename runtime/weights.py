"""Which weights an artifact (ONNX file, TensorRT engine) was made from. Export stamps the id
into the artifact; sessions and the repository renderer refuse an artifact of other weights."""
from __future__ import annotations

from pathlib import Path

from runtime.files import sha256_file


def source_id(checkpoint: Path | None) -> str:
    """The checkpoint file's sha256 (a folder: its .safetensors files' short hashes), or
    'default' for a network's default weights."""
    if checkpoint is None:
        return "default"
    path = Path(checkpoint)
    if path.is_dir():
        return "dir:" + ",".join(f"{p.name}={sha256_file(p)[:16]}" for p in sorted(path.glob("*.safetensors")))
    return sha256_file(path.with_suffix(".safetensors") if path.suffix == ".json" else path)


def default_weights(network: str) -> Path | None:
    """The shipped weights file `network` is built from without a checkpoint (None: none shipped)."""
    from training.shipped import DEFAULT_WEIGHTS   # here: the served BLS models, which load no weights, load no `training`

    return DEFAULT_WEIGHTS.get(network)


def source_ids(network: str, checkpoint: Path | None) -> set[str]:
    """The source ids an artifact of `checkpoint` may carry: without one, 'default' or the
    default weights file's sha256 (an export of that file by path is the same network)."""
    ids = {source_id(checkpoint)}
    if checkpoint is None and (default := default_weights(network)) is not None:
        ids.add(source_id(default))
    return ids
