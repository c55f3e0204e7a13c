"""The admin key of tritonserver's restricted APIs: the model-repository (it accepts a python
model's files inside a load request: code execution), shared-memory (system and CUDA), logging
and trace APIs of HTTP and gRPC answer only requests carrying ADMIN_HEADER with the key
(tritonserver's --http-restricted-api / --grpc-restricted-protocol, format
``<apis>:<header>=<key>``; v2.51.0 and v2.53.0 src/command_line_parser.cc). Over gRPC the header
is expected as ``triton-grpc-protocol-<header>`` (src/grpc/grpc_server.h).

`facerestore serve` makes a new key per start (only its supervisor uses it); the GPU image's
entry point (deploy/docker/tritonserver.sh) asks this module for the flags:

    python -m runtime.serving.admin_key [--key-file /run/secrets/facerestore/admin-key]

prints the two flags, one per line, with the key of the file when it exists (a Kubernetes
secret), else a new random one that is never shown anywhere else.
"""
from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

RESTRICTED_APIS = ("model-repository", "shared-memory", "logging", "trace")
ADMIN_HEADER = "facerestore-admin-key"


class AdminKeyError(ValueError):
    """An unusable admin key; the message names the file."""


def new_admin_key() -> str:
    return secrets.token_urlsafe(32)


def restricted_api_args(key: str) -> list[str]:
    """tritonserver's flags that close RESTRICTED_APIS on HTTP and gRPC to requests without the
    ADMIN_HEADER holding `key` (letters, digits, '-' and '_' only: the flag's own syntax)."""
    if not key or not all(c.isalnum() or c in "-_" for c in key):
        raise AdminKeyError("the admin key must be letters, digits, '-' or '_' (and not empty)")
    rule = f"{','.join(RESTRICTED_APIS)}:{ADMIN_HEADER}={key}"
    return [f"--http-restricted-api={rule}", f"--grpc-restricted-protocol={rule}"]


def read_admin_key(path: Path) -> str:
    """The admin key stored in `path` (e.g. a mounted Kubernetes secret), stripped."""
    try:
        key = Path(path).read_text().strip()
    except OSError as exc:
        raise AdminKeyError(f"{path}: cannot read the admin key ({exc.strerror})") from None
    try:
        restricted_api_args(key)
    except AdminKeyError as exc:
        raise AdminKeyError(f"{path}: {exc}") from None
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.serving.admin_key",
                                     description="Print tritonserver's restricted-API flags (one per line).")
    parser.add_argument("--key-file", type=Path, default=None,
                        help="the key, when this file exists (default: a new random key)")
    args = parser.parse_args(argv)
    try:
        key = read_admin_key(args.key_file) if args.key_file and args.key_file.exists() else new_admin_key()
    except AdminKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(restricted_api_args(key)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
