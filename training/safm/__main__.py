"""`python -m training.safm`: make SaFM checkpoints (seeded random init, or from CodeFormer weights)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.safm.checkpoint import (CheckpointError, load_codeformer_weights, random_init, read_state_dict,
                                      save_checkpoint)
from training.safm.config import CONFIGS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.safm", description=(
        "Make SaFM checkpoints (<out>.safetensors + <out>.json)."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = sub.add_parser("init", help="seeded random weights (for latency benchmarks and tests)")
    imp = sub.add_parser("import-codeformer", help=(
        "start from CodeFormer's published weights: its encoder, codebook and generator are copied where "
        "names and shapes match (safm-base has CodeFormer's layout); the fusion, semantic encoder and LDE "
        "stay randomly initialised and need training"))
    for p in (init, imp):
        p.add_argument("--config", default="safm-base" if p is imp else "safm-tiny", choices=sorted(CONFIGS))
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", type=Path, required=True, help="output path (the .safetensors suffix is added)")
    imp.add_argument("--codeformer", type=Path, required=True,
                     help="CodeFormer or VQGAN weights (.safetensors, or .pth read by torch's weights-only loader)")
    args = parser.parse_args(argv)
    out = args.out.with_suffix(".safetensors")
    model = random_init(args.config, args.seed)
    meta = {"made_by": f"python -m training.safm {args.command}", "seed": args.seed}
    if args.command == "import-codeformer":
        if out.resolve() == args.codeformer.resolve():
            print(f"error: --out {out} would overwrite the input", file=sys.stderr)
            return 2
        try:
            report = load_codeformer_weights(model, read_state_dict(args.codeformer))
        except CheckpointError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not report["loaded"]:
            print(f"error: {args.codeformer}: no encoder/quantize/generator tensor matches {args.config}", file=sys.stderr)
            return 1
        print(f"loaded {len(report['loaded'])} tensors; {len(report['shape_mismatch'])} of another shape "
              f"{report['shape_mismatch'][:3]}; {len(report['not_in_checkpoint'])} VQGAN tensors not in the file")
        meta["codeformer_source"] = str(args.codeformer)
    save_checkpoint(model, out, meta)
    print(f"wrote {out} and {out.with_suffix('.json')} ({args.config})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
