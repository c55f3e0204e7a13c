"""File helpers: atomic writes, the user's cache folder and content hashes (cached by path,
size and modification time)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

DIGEST_CACHE_BYTES = 1 << 20   # files at least this large have their sha256 cached (a 24.7 MB file: 42 ms a hash)


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to `path` atomically (temp file in the same folder, then a rename)."""
    from training.files import atomic_write  # here: the Triton python models, which never write files, load no `training`

    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def cache_root() -> Path:
    """$FACERESTORE_CACHE, else $XDG_CACHE_HOME/facerestore, else ~/.cache/facerestore."""
    if os.environ.get("FACERESTORE_CACHE"):
        return Path(os.environ["FACERESTORE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facerestore"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes. For files of DIGEST_CACHE_BYTES or more the digest is kept
    in <cache>/sha256/, keyed by the absolute path and used again only while the file's size and
    modification time (ns) are the same; a cache that cannot be read or written is passed by."""
    path = Path(path)
    stat = path.stat()
    if stat.st_size < DIGEST_CACHE_BYTES:
        return _sha256(path)
    stamp = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    entry = cache_root() / "sha256" / f"{hashlib.sha256(stamp['path'].encode()).hexdigest()[:32]}.json"
    try:
        cached = json.loads(entry.read_text())
        if {k: cached.get(k) for k in stamp} == stamp and isinstance(cached.get("sha256"), str):
            return cached["sha256"]
    except (OSError, ValueError):
        pass
    digest = _sha256(path)
    try:   # atomic: a temp file renamed over the entry (no `training` import: Triton's models use this)
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        staging.write_text(json.dumps({**stamp, "sha256": digest}))
        staging.replace(entry)
    except OSError:
        pass
    return digest


def _sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
