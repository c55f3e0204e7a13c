"""`python -m training.safm`: make SaFM checkpoints (seeded random init, or from CodeFormer weights)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.provenance import Provenance
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
    _add_train(sub)
    pl = sub.add_parser("plot-losses", help="a training run's loss curve as a PNG")
    pl.add_argument("run", type=Path, help="run folder (with losses.csv)")
    pl.add_argument("--out", type=Path, required=True, help="PNG to write")
    ev = sub.add_parser("evaluate", help="PSNR/SSIM on held-out degraded copies of a face cache")
    ev.add_argument("--checkpoint", type=Path, required=True)
    ev.add_argument("--data", type=Path, required=True, help="face cache (facerestore curate)")
    ev.add_argument("--copies", type=int, default=4)
    ev.add_argument("--fidelity", type=float, default=0.5)
    ev.add_argument("--json", type=Path, default=None, help="also write the result here")
    ev.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="run the network in bf16 (as `restore --precision bf16`) to measure its quality cost")
    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(args)
    if args.command == "plot-losses":
        from training.loss_curve import loss_curve

        try:
            print(loss_curve(args.run / "losses.csv", args.out))
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: {args.run / 'losses.csv'}: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "evaluate":
        return _evaluate(args)
    out = args.out.with_suffix(".safetensors")
    model = random_init(args.config, args.seed)
    meta = {"made_by": f"python -m training.safm {args.command}", "seed": args.seed,
            "provenance": Provenance(f"{args.config} random init, seed {args.seed}", False).to_dict()}
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
        meta["provenance"] = Provenance(f"{args.config}: CodeFormer encoder, codebook and generator imported from "
                                        f"{args.codeformer}; the fusion (SaFM) and LDE are random", False).to_dict()
    save_checkpoint(model, out, meta)
    print(f"wrote {out} and {out.with_suffix('.json')} ({args.config})")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    from training.data.degradations import PRESETS
    from training.distributed import PARALLEL_HELP, add_parallel_options
    from training.safm.train import ARCFACE_LAYERS, SaFMTrainConfig

    d = SaFMTrainConfig(data=Path(), out=Path())
    p = sub.add_parser("train", help="train SaFM on a face cache (the SaFM paper III.D losses; resumable)",
                       description="Train SaFM. Losses: L1 + lambda_pix * perceptual (VGG-19, needs --vgg) + "
                                   "lambda_adv * global adversarial + lambda_d * component adversarial (eyes, mouth) + "
                                   "lambda_s * Gram style + lambda_id * identity (ArcFace, needs --arcface). "
                                   "Re-running with the same --out resumes (model, discriminators, optimizers, step, RNG). "
                                   + PARALLEL_HELP.format(module="training.safm train"))
    p.add_argument("--data", type=Path, required=True, help="face cache made by `facerestore curate`")
    p.add_argument("--out", type=Path, required=True, help="run folder: safm.safetensors/.json, losses.csv, train_state/")
    p.add_argument("--config", default=d.config, choices=sorted(CONFIGS))
    p.add_argument("--init", type=Path, default=None, help="start from this SaFM checkpoint")
    for name in ("steps", "grad_accum", "seed", "log_every", "save_every", "workers"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    add_parallel_options(p, d.batch)
    for name in ("lr", "lambda_pix", "lambda_adv", "lambda_d", "lambda_s", "lambda_id", "jitter", "face_share"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(d, name))
    p.add_argument("--lr-final", type=float, default=None, help="cosine-decay the lr to this value (default: constant)")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="time steps 10-60 (after the warm-up), then set --steps to what fits this many minutes of wall time "
                        "(the count chosen is printed and recorded with the checkpoint)")
    p.add_argument("--stage", choices=["restore", "codebook"], default=d.stage,
                   help="codebook: pre-train encoder, codebook and decoder on the HQ faces (VQGAN reconstruction + "
                        "codebook/commitment loss), the SaFM paper's pre-trained codebook; restore (default): "
                        "restoration training, e.g. --init on the codebook run's checkpoint with --freeze-codebook")
    p.add_argument("--freeze-codebook", action="store_true", help="keep the codebook fixed (after --stage codebook)")
    p.add_argument("--photos", type=Path, default=None,
                   help="folder of general photographs: random multi-scale crops mixed with the faces")
    p.add_argument("--crop", type=int, default=d.crop, help="training size (with --photos, crops of this size)")
    p.add_argument("--photo-scale", type=float, nargs=2, default=d.photo_scale, metavar=("MIN", "MAX"),
                   help="scale range of the photo crops (default: %(default)s); above 1 a crop is enlarged, "
                        "as aligned faces from small faces are")
    p.add_argument("--degradation", default="safm", choices=sorted(PRESETS),
                   help="degradation preset: safm = eq. 9; bfr = GFPGAN/BFRffusion; demo; blur2-x4-jpeg60")
    p.add_argument("--d-lr", type=float, default=None)
    p.add_argument("--vgg", type=Path, default=None, help="VGG-19 weights (torchvision layout) as safetensors")
    p.add_argument("--arcface", type=Path, default=None, help="ArcFace IResNet weights (insightface layout) as safetensors")
    p.add_argument("--arcface-arch", default=d.arcface_arch, choices=sorted(ARCFACE_LAYERS))
    p.add_argument("--no-perceptual", action="store_true", help="disable the VGG perceptual loss")
    p.add_argument("--no-identity", action="store_true", help="disable the ArcFace identity loss")
    p.add_argument("--no-adversarial", action="store_true", help="disable the adversarial and style losses")
    p.add_argument("--no-amp", action="store_true", help="train in fp32 (default: bf16 autocast on CUDA and on CPUs with AVX512-BF16 or AMX)")
    p.add_argument("--device", default=d.device)


def _train(args: argparse.Namespace) -> int:
    from training.losses.pretrained import MissingWeights
    from training.safm.train import SaFMTrainConfig, SaFMTrainer
    from training.train_state import run_trainer

    fields = {k: v for k, v in vars(args).items() if k not in ("command", "no_perceptual", "no_identity",
                                                                  "no_adversarial", "no_amp")}
    cfg = SaFMTrainConfig(**fields, perceptual=not args.no_perceptual, identity=not args.no_identity,
                          adversarial=not args.no_adversarial, amp=not args.no_amp)
    return run_trainer(lambda: SaFMTrainer(cfg), (MissingWeights, ValueError), cfg.out / "safm.safetensors")


def _evaluate(args: argparse.Namespace) -> int:
    import json

    import torch

    from training.safm.checkpoint import load_checkpoint
    from training.safm.evaluate import evaluate

    try:
        dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
        result = evaluate(load_checkpoint(args.checkpoint), args.data, args.copies, args.fidelity, dtype=dtype)
    except (CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = result["mean"]
    print(f"{result['faces']} faces x {result['copies']} held-out degradations (fidelity {args.fidelity}, "
          f"{args.precision}):\n"
          f"| | PSNR dB | SSIM |\n|---|---:|---:|\n| degraded input | {m['psnr_input']:.2f} | {m['ssim_input']:.4f} |\n"
          f"| restored | {m['psnr_restored']:.2f} | {m['ssim_restored']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
