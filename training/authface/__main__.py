"""python -m training.authface make-checkpoint|train-stage1|train-stage2: AuthFace checkpoints and training

    make-checkpoint --config tiny|sdxl [--sdxl-dir DIR] [--controlnet FILE] --out DIR
    train-stage1 --checkpoint DIR --data CACHE --out DIR [--text-encoders SDXL_DIR] [--steps N --batch N --lr X ...]
    train-stage2 --checkpoint DIR --data CACHE --out DIR [--steps N --batch N --lr X --lambda-d X --lambda-s X ...]
"""
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
    _add_train(sub)
    args = parser.parse_args(argv)
    if args.command in ("train-stage1", "train-stage2"):
        return _train(args)

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


def _add_train(sub: argparse._SubParsersAction) -> None:
    """train-stage1 / train-stage2 (training/authface/train.py; defaults are the paper's)."""
    from training.authface.train import OPTIMIZERS, Stage1Config, Stage2Config
    from training.distributed import PARALLEL_HELP, add_parallel_options

    for name, cls, text in (
            ("train-stage1", Stage1Config, "Stage I (the AuthFace paper 3.1): fine-tune the whole UNet on captioned HQ faces "
             "(MSE on epsilon, AdamW lr 5e-7). Captions: <face>.txt beside each cached face; an empty caption uses the "
             "checkpoint's null prompt. The saved ControlNet is re-initialised from the fine-tuned UNet."),
            ("train-stage2", Stage2Config, "Stage II (the AuthFace paper 3.2): train the ControlNet only (UNet and VAE frozen, "
             "null prompt, control image = degraded face) with L_noise + the time-aware latent facial loss L_facial "
             "(AdamW lr 2e-5).")):
        d = cls(checkpoint=Path(), data=Path(), out=Path())
        p = sub.add_parser(name, help=text.split(":")[0], description=text + " Writes OUT/checkpoint/ (an AuthFace "
                           "checkpoint folder), OUT/losses.csv and OUT/train_state/; re-running with the same --out resumes. "
                           + PARALLEL_HELP.format(module=f"training.authface {name}"))
        p.add_argument("--checkpoint", type=Path, required=True, help="AuthFace checkpoint folder to start from")
        p.add_argument("--data", type=Path, required=True, help="face cache made by `facerestore curate`")
        p.add_argument("--out", type=Path, required=True, help="run folder")
        for arg in ("steps", "grad_accum", "seed", "log_every", "save_every", "workers"):
            p.add_argument(f"--{arg.replace('_', '-')}", type=int, default=getattr(d, arg))
        add_parallel_options(p, d.batch)
        p.add_argument("--resolution", type=int, default=None, help="train at this size (default: the checkpoint's, 512)")
        floats = ["lr", "weight_decay", "max_grad_norm", "jitter"]
        if name == "train-stage1":
            floats.append("caption_dropout")
            p.add_argument("--text-encoders", type=Path, default=None, help="local diffusers-format SDXL folder with "
                           "text_encoder(_2)/ and tokenizer(_2)/ (needs `transformers`); required for --config sdxl "
                           "checkpoints, the tiny config uses a hashing stand-in without it")
            p.add_argument("--keep-controlnet", action="store_true", help="save the input ControlNet unchanged")
        else:
            floats += ["lambda_d", "lambda_s", "m", "s"]
            p.add_argument("--d-lr", type=float, default=None, help="facial discriminators' lr (default: --lr)")
        for arg in floats:
            p.add_argument(f"--{arg.replace('_', '-')}", type=float, default=getattr(d, arg))
        p.add_argument("--gradient-checkpointing", action="store_true")
        p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer,
                       help="adamw (default), adamw-fused (torch's fused kernel), adamw-8bit (bitsandbytes: 8-bit states, "
                            "a quarter of the memory; the SDXL stage I on one 80 GB GPU, see "
                            "benchmarks/results/computed/training_memory.md)")
        p.add_argument("--no-amp", action="store_true", help="train in fp32 (default: bf16 autocast on CUDA and on CPUs with AVX512-BF16 or AMX)")
        p.add_argument("--device", default=d.device)


def _train(args: argparse.Namespace) -> int:
    from training.authface.checkpoint import CheckpointError
    from training.authface.train import Stage1Config, Stage1Trainer, Stage2Config, Stage2Trainer
    from training.train_state import run_trainer

    stage1 = args.command == "train-stage1"
    fields = {k: v for k, v in vars(args).items() if k not in ("command", "no_amp")}
    cfg_cls, trainer_cls = (Stage1Config, Stage1Trainer) if stage1 else (Stage2Config, Stage2Trainer)
    # CacheError and CaptionEncoderError are ValueErrors
    return run_trainer(lambda: trainer_cls(cfg_cls(**fields, amp=not args.no_amp)),
                       (CheckpointError, ValueError, FileNotFoundError), args.out / "checkpoint")


if __name__ == "__main__":
    sys.exit(main())
