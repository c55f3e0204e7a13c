"""`python -m training.upsampler train|evaluate`: the compact background upsampler (`make train-upsampler`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.upsampler", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (resumes a run in --out) until --minutes of wall time are spent")
    t.add_argument("--photos", type=Path, required=True, help="folder of photographs (every 6th held out)")
    t.add_argument("--out", type=Path, required=True, help="run folder: upsampler.safetensors/.json, losses.csv")
    t.add_argument("--minutes", type=float, default=28.0, help="wall-time budget (default: %(default)s)")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    t.add_argument("--scale", type=int, default=4, choices=[2, 4], help="(default: %(default)s)")
    e = sub.add_parser("evaluate", help="PSNR/SSIM on the held-out photos vs bicubic and Lanczos, at x2 and x4")
    e.add_argument("--photos", type=Path, required=True, help="the folder it was trained from")
    e.add_argument("--checkpoint", type=Path, required=True, help="upsampler weights (.safetensors or .pth)")
    e.add_argument("--out", type=Path, required=True, help="writes evaluation.json and evaluation.md here")
    args = p.parse_args(argv)
    if args.command == "train":
        from training.upsampler.train import UpsamplerTrainConfig, train

        step = train(UpsamplerTrainConfig(args.photos, args.out, scale=args.scale, minutes=args.minutes,
                                          threads=args.threads))
        print(f"step {step}; checkpoint {args.out / 'upsampler.safetensors'}")
        return 0
    from training.upsampler.evaluate import evaluate

    print(evaluate(args.photos, args.checkpoint, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
