"""python -m training.authface make-checkpoint --config tiny|sdxl [--sdxl-dir DIR] [--controlnet FILE] --out DIR"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.authface", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make-checkpoint", help="write an AuthFace checkpoint folder (config.json + safetensors)")
    mk.add_argument("--config", choices=["tiny", "sdxl"], required=True, help="architecture")
    mk.add_argument("--sdxl-dir", type=Path, help="local diffusers-format folder (unet/, vae/, optional text "
                    "encoders) with the config's architecture; without it: seeded random init")
    mk.add_argument("--controlnet", type=Path, help="ControlNet weights (.safetensors file or diffusers folder); "
                    "default: ControlNetModel.from_unet of the UNet")
    mk.add_argument("--null-prompt", choices=["auto", "encode", "zeros"], default="auto",
                    help='embeddings of "": auto = encode with the folder\'s text encoders if present, else zeros')
    mk.add_argument("--seed", type=int, default=0, help="seed of the random init (no --sdxl-dir)")
    mk.add_argument("--save-dtype", choices=["fp32", "fp16"], default="fp32", help="storage dtype of the weights")
    mk.add_argument("--out", type=Path, required=True, help="checkpoint folder to write (must not exist or be empty)")
    args = parser.parse_args(argv)

    from training.authface.checkpoint import CheckpointError, make_checkpoint_from_diffusers, make_random_checkpoint

    try:
        if args.sdxl_dir is not None:
            ckpt = make_checkpoint_from_diffusers(args.sdxl_dir, args.config, args.controlnet, args.null_prompt)
        elif args.controlnet is not None:
            raise CheckpointError("--controlnet needs --sdxl-dir (the UNet and VAE it belongs to)")
        elif args.config == "sdxl":
            raise CheckpointError("--config sdxl needs --sdxl-dir DIR (a local diffusers-format SDXL folder; "
                                  "nothing is downloaded)")
        else:
            ckpt = make_random_checkpoint(args.config, args.seed)
        out = ckpt.save(args.out, torch.float16 if args.save_dtype == "fp16" else torch.float32)
    except (CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({args.config}; {ckpt.notes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
