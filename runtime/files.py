"""File helpers: atomic writes and content hashes."""
from __future__ import annotations

import hashlib
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to `path` atomically (temp file in the same folder, then a rename)."""
    from training.files import atomic_write  # here: the Triton python models, which never write files, load no `training`

    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
