"""`python -m export` / `facerestore export`: ONNX export and parity verification per network."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from runtime.contracts import CONTRACTS, MODEL_GROUPS


def _networks(model: str) -> list[str]:
    return MODEL_GROUPS.get(model, [model])


def _add_common(p: argparse.ArgumentParser) -> None:
    choices = sorted(set(MODEL_GROUPS) | set(CONTRACTS))
    p.add_argument("--model", default="face", choices=choices,
                   help="a group of networks or one network (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("engines"), help="folder of the ONNX files (default: %(default)s)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="weights of the network (default: the committed/demo weights of each network)")


def build_parser() -> argparse.ArgumentParser:
    """The `export` argument parser."""
    parser = argparse.ArgumentParser(prog="python -m export", description=(
        "Turn networks into deployable artifacts from their contracts (runtime/contracts.py): "
        "ONNX with a dynamic batch axis, checked and shape-inferred, then verified against PyTorch."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    onnx_p = sub.add_parser("onnx", help="export networks to ONNX (and verify them)")
    _add_common(onnx_p)
    onnx_p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch parity check")
    verify_p = sub.add_parser("verify", help="ONNX Runtime vs PyTorch parity table for exported networks")
    _add_common(verify_p)
    return parser


def _verify(names: list[str], out: Path, checkpoint: Path | None) -> int:
    from export.verify import parity_table, verify_onnx

    rows = []
    for name in names:
        path = out / f"{name}.onnx"
        if not path.is_file():
            print(f"error: {path}: not found; run `python -m export onnx --model {name} --out {out}`", file=sys.stderr)
            return 2
        rows += verify_onnx(CONTRACTS[name], path, checkpoint)
    print(parity_table(rows))
    bad = [r for r in rows if not r.ok]
    if bad:
        print(f"error: {len(bad)} outputs over tolerance", file=sys.stderr)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m export`."""
    args = build_parser().parse_args(argv)
    names = _networks(args.model)
    if args.command == "onnx":
        from export.onnx_export import export_onnx

        for name in tqdm(names, desc="onnx export", unit="network", disable=None):
            path = export_onnx(CONTRACTS[name], args.out, args.checkpoint)
            tqdm.write(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return 0 if args.no_verify else _verify(names, args.out, args.checkpoint)
    return _verify(names, args.out, args.checkpoint)
