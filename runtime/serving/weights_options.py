"""The weights of the commands that carry several restorers (`facerestore serve`, `facerestore
ui`, `python -m export triton-repo`): one mapping by restorer name, `--weights NAME=PATH ...`,
declared once here. SaFM's `--checkpoint` and AuthFace's `--authface-checkpoint` stay as the
older spellings of `--weights safm=...` and `--weights authface=...`."""
from __future__ import annotations

import argparse
from pathlib import Path

from runtime.restorers import RESTORERS


def add_weights_option(p: argparse.ArgumentParser) -> None:
    """--weights RESTORER=PATH ... on `p`."""
    p.add_argument("--weights", nargs="+", default=[], metavar="RESTORER=PATH",
                   help="weights by restorer name, e.g. gfpgan=GFPGANv1.4.pth codeformer=codeformer.pth "
                        "(the restorers that ship none are offered only with theirs)")


def weights_from(args: argparse.Namespace, **older: Path | None) -> dict[str, Path | None]:
    """Restorer name -> weights: the older per-restorer flags' values (`older`, by restorer name)
    and --weights NAME=PATH over them; ValueError for an unknown name or a missing '='."""
    weights: dict[str, Path | None] = dict(older)
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not sep or not path or name not in RESTORERS:
            raise ValueError(f"--weights {item}: expected RESTORER=PATH with RESTORER one of {sorted(RESTORERS)}")
        weights[name] = Path(path)
    return weights
