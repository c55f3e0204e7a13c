"""`python -m export` / `facerestore export`: ONNX export, parity verification, TensorRT engines."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from export.onnx_cache import onnx_up_to_date
from runtime.serving.capacity_options import add_capacity_options, capacity_from
from runtime.contracts.base import NetworkContract
from runtime.contracts.upsampler import DEFAULT_OVERLAP, DEFAULT_TILE, tile_axes
from runtime.serving.weights_options import add_weights_option, weights_from
from runtime.restorers import CONTRACTS, MODEL_GROUPS

DESCRIPTION = """\
Turn networks into deployable artifacts from their contracts (runtime/contracts/): ONNX with a
dynamic batch axis (cleaned by onnxslim, checked, shape-inferred, stamped with the weights it
came from), verified against PyTorch on real inputs, then TensorRT engines with a manifest.

--model names a group (face, safm, authface) or one network; --checkpoint is that model's
weights (a .safetensors file for safm, a checkpoint folder for authface; default: the shipped
face networks, the demo safm-tiny weights, random-init tiny AuthFace). bg_upsampler is the
background upsampler (--checkpoint: RealESRGAN_x4plus/x2plus or realesr-general-x4v3 .pth, or
ours; default: the shipped compact x4 demo), ONNX with open height and width; its engine's
profile covers the tiles of `restore --tile` (build-engines --tile: 1 to tile + 2 x overlap
pixels a side, optimized for the largest)."""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="face", choices=sorted(set(MODEL_GROUPS) | set(CONTRACTS)),
                   help="a group of networks or one network (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("engines"), help="artifact folder (default: %(default)s)")
    p.add_argument("--checkpoint", type=Path, default=None, help="weights of the model (see above)")


def build_parser() -> argparse.ArgumentParser:
    """The `export` argument parser."""
    parser = argparse.ArgumentParser(prog="python -m export", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    onnx_p = sub.add_parser("onnx", help="export networks to ONNX (and verify them)")
    _add_common(onnx_p)
    onnx_p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch parity check")
    _add_common(sub.add_parser("verify", help="ONNX Runtime vs PyTorch parity table for exported networks"))
    eng = sub.add_parser("build-engines", help="ONNX, parity, then TensorRT fp16 engines + manifests",
                         description="For each network of every --model: export ONNX (reused when it exists for the "
                                     "same weights), verify it, build a TensorRT engine <name>.plan with its "
                                     "optimization profile (batch 1 / opt / --max-batch), a timing cache on disk and a "
                                     "manifest <name>.manifest.json, and verify the engine. An engine whose manifest "
                                     "already matches is not rebuilt. A network that fails (export, parity or build) "
                                     "never stops the others: one table at the end reports every network. Needs a "
                                     "CUDA GPU and TensorRT; --onnx-only stops before them.")
    eng.add_argument("--model", nargs="+", default=["face"], choices=sorted(set(MODEL_GROUPS) | set(CONTRACTS)),
                     metavar="MODEL", help="groups (face, safm, authface) or networks (default: face)")
    eng.add_argument("--out", type=Path, default=Path("engines"), help="artifact folder (default: %(default)s)")
    eng.add_argument("--checkpoint", type=Path, default=None,
                     help="weights of the one restorer in --model (safm: a .safetensors file, authface: a "
                          "checkpoint folder; default: the shipped ones)")
    eng.add_argument("--safm-checkpoint", type=Path, default=None, help="SaFM weights (.safetensors)")
    eng.add_argument("--authface-checkpoint", type=Path, default=None, help="AuthFace checkpoint folder")
    eng.add_argument("--bg-upsampler-checkpoint", type=Path, default=None,
                     help="background upsampler weights (.pth / .safetensors; default: the shipped compact x4 demo)")
    eng.add_argument("--onnx-only", action="store_true", help="stop after ONNX + parity (no TensorRT needed)")
    eng.add_argument("--max-batch", type=int, default=None, help="largest batch of the profile (default: contract's)")
    eng.add_argument("--tile", type=int, default=DEFAULT_TILE,
                     help="bg_upsampler: the tile side it will run with (`restore --tile`); the profile spans 1 to "
                          f"tile + 2 x {DEFAULT_OVERLAP} pixels (default: %(default)s)")
    eng.add_argument("--force", action="store_true", help="rebuild ONNX and engines even when up to date")
    eng.add_argument("--opt-level", type=int, default=3, choices=range(6), help="builder optimization level (0-5)")
    eng.add_argument("--fp16-vae", action="store_true",
                     help="build the VAE in fp16 too: only for a fp16-safe VAE (SDXL's own overflows to NaN)")
    eng.add_argument("--no-verify", action="store_true", help="skip the parity checks")
    _add_triton_repo(sub)
    k8s = sub.add_parser("k8s-overlay", help="the Kubernetes overlay of a GPU deployment (image, GPU node selector)",
                         description="Write OUT/kustomization.yaml over deploy/k8s: the server image REGISTRY/"
                                     "facerestore-triton:<NGC release of deploy/docker/ngc.env> (`make docker-push`) "
                                     "and a node selector nvidia.com/gpu.product for the GPU the plans in ENGINES "
                                     "were built for (their manifests). Then: kubectl apply -k OUT.")
    k8s.add_argument("--engines", type=Path, default=Path("engines/gpu"), help="folder of the plans (default: %(default)s)")
    k8s.add_argument("--registry", required=True, help="where the cluster pulls the image from (host/path)")
    k8s.add_argument("--out", type=Path, default=Path("engines/k8s"), help="overlay folder (default: %(default)s)")
    return parser


def _add_triton_repo(sub: argparse._SubParsersAction) -> None:
    from export.triton_repo import TARGETS

    p = sub.add_parser("triton-repo", help="render the Triton model repository (cpu or gpu) from the contracts",
                       description="Write config.pbtxt files (rendered from the contracts) and the python models into "
                                   "OUT and fill in the binaries: --target gpu links ENGINES/<network>.plan as "
                                   "tensorrt_plan models (NGC tritonserver); --target cpu links ENGINES/<network>.onnx "
                                   "(exported first when missing; without --engines the ONNX cache's file of the "
                                   "weights) behind python-backend ONNX Runtime models "
                                   "(nvidia-pytriton's CPU tritonserver). Same models, tensors and ensembles. "
                                   "Weights by restorer name (--weights gfpgan=GFPGANv1.4.pth ...): the published "
                                   "restorers are rendered only with the user's files.")
    p.add_argument("--target", choices=TARGETS, default="gpu", help="(default: %(default)s)")
    p.add_argument("--engines", type=Path, default=None,
                   help="folder of the .plan / .onnx files (default: engines for --target gpu; for cpu the ONNX "
                        "cache, one export per weights digest)")
    p.add_argument("--out", type=Path, default=Path("triton_repo"), help="model repository (default: %(default)s)")
    p.add_argument("--restorers", nargs="+", default=None,
                   help="ensembles to serve (default: every restorer whose weights are trained)")
    p.add_argument("--allow-untrained", action="store_true",
                   help="serve restorers whose weights are untrained too (refused when named, left out otherwise)")
    p.add_argument("--checkpoint", "--safm-checkpoint", dest="safm_checkpoint", type=Path, default=None,
                   help="SaFM weights of the ONNX files (default: the demo safm-tiny weights)")
    p.add_argument("--authface-checkpoint", type=Path, default=None,
                   help="AuthFace checkpoint folder (default: random-init tiny)")
    add_weights_option(p)
    p.add_argument("--configs-only", action="store_true", help="write the configs and model.py files only")
    add_capacity_options(p)
    p.add_argument("--gpu", default=None, help="gpu target: the serving GPU's name as TensorRT reports it (e.g. "
                   "'NVIDIA H100 80GB HBM3'); plans built on another GPU, or for another TensorRT than the NGC "
                   "server image's (deploy/docker/ngc.env), are refused (default: the GPU of the plans)")


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


def _export(names: list[str], out: Path, checkpoint: Path | None, force: bool) -> None:
    from export.onnx_export import export_onnx

    for name in tqdm(names, desc="onnx export", unit="network", disable=None, leave=len(names) > 1):
        contract, path = CONTRACTS[name], out / f"{name}.onnx"
        if not force and onnx_up_to_date(contract, path, checkpoint):
            tqdm.write(f"{name}: {path} is up to date (same weights); --force re-exports")
            continue
        report = export_onnx(contract, out, checkpoint)
        tqdm.write(f"{name}: {report.path} ({report.path.stat().st_size / 1e6:.1f} MB, onnxslim "
                   f"{report.nodes_before} -> {report.nodes_after} nodes{', external data' if report.external_data else ''})")


def engine_jobs(args: argparse.Namespace) -> list[tuple[str, Path | None]]:
    """(network, its weights) for every network of --model, in order; ValueError when --checkpoint
    cannot say whose weights it is."""
    from export.triton_repo import model_group

    names = list(dict.fromkeys(n for m in args.model for n in MODEL_GROUPS.get(m, [m])))
    groups = list(dict.fromkeys(model_group(n) for n in names))
    per_group = {"safm": args.safm_checkpoint, "authface": args.authface_checkpoint,
                 "bg_upsampler": args.bg_upsampler_checkpoint}
    if args.checkpoint is not None:
        if len(groups) != 1:
            raise ValueError(f"--checkpoint with several models ({', '.join(groups)}): name each with "
                             f"--safm-checkpoint / --authface-checkpoint / --bg-upsampler-checkpoint")
        per_group[groups[0]] = args.checkpoint
    return [(n, per_group.get(model_group(n))) for n in names]


def engine_axes(contract: NetworkContract, tile: int) -> dict[str, tuple[int, int, int]] | None:
    """The (min, opt, max) of a network's open image axes in its engine profile: the tiles of
    `tile` for the upsampler (the only network with open image axes); None for the others."""
    return tile_axes(tile) if contract.open_axes() else None


def _build_engines(args: argparse.Namespace) -> int:
    """Every network through ONNX, parity and (unless --onnx-only) its engine; failures are
    collected, never stop the other networks, and are reported with the parity table."""
    from export.verify import parity_table, verify_onnx
    from runtime.tensorrt_session import TensorRTUnavailable

    try:
        jobs = engine_jobs(args)
        axes = {name: engine_axes(CONTRACTS[name], args.tile) for name, _ in jobs}
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows, failures, unavailable = [], [], None
    for name, checkpoint in tqdm(jobs, desc="build-engines", unit="network", disable=None):
        contract, onnx_path = CONTRACTS[name], args.out / f"{name}.onnx"
        stage = "onnx export"
        try:
            _export([name], args.out, checkpoint, args.force)
            stage = "onnx parity"
            if not args.no_verify:
                rows += verify_onnx(contract, onnx_path, checkpoint)
            if args.onnx_only or unavailable:
                continue
            from export.tensorrt_build import build_engine, engine_precision

            stage = "engine build"
            plan = build_engine(contract, onnx_path, args.out / f"{name}.plan", checkpoint, args.max_batch,
                                args.opt_level, args.fp16_vae, args.force, axes[name])
            stage = "engine parity"
            if not args.no_verify:   # the engine against PyTorch, next to ONNX Runtime (polygraphy Comparator)
                rows += [r for r in verify_onnx(contract, onnx_path, checkpoint, plan=plan,
                                                precision=engine_precision(contract, args.fp16_vae))
                         if r.runner == "tensorrt"]
        except TensorRTUnavailable as exc:
            unavailable = exc
        except Exception as exc:   # one network's failure is reported, the others go on
            failures.append((name, stage, " ".join(str(exc).split())[:300]))
    if rows:
        print(parity_table(rows))
    bad = [r for r in rows if not r.ok]
    if failures:
        print("\n| network | failed at | error |\n|---|---|---|")
        print("\n".join(f"| {n} | {stage} | {err} |" for n, stage, err in failures))
    if bad or failures:
        print(f"error: {len(bad)} outputs over tolerance, {len(failures)} networks failed", file=sys.stderr)
    if unavailable is not None:
        print(f"error: cannot build TensorRT engines here: {unavailable}. The ONNX files in {args.out} are ready; "
              f"build on a CUDA machine with TensorRT, or pass --onnx-only.", file=sys.stderr)
        return 3
    return 1 if bad or failures else 0


def _triton_repo(args: argparse.Namespace) -> int:
    from export.triton_repo import RepoError, render_repo

    try:
        checkpoints = weights_from(args, safm=args.safm_checkpoint, authface=args.authface_checkpoint)
        capacity = capacity_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        engines = args.engines or (Path("engines") if args.target == "gpu" else None)
        models = render_repo(args.target, args.out, engines, args.restorers, checkpoints, args.configs_only,
                             gpu=args.gpu, capacity=capacity, allow_untrained=args.allow_untrained)
    except (RepoError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.target} model repository in {args.out}: {', '.join(models)}")
    return 0


def _k8s_overlay(args: argparse.Namespace) -> int:
    from export.k8s_overlay import OverlayError, write_overlay

    try:
        path = write_overlay(args.engines, args.registry, args.out)
    except OverlayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Kubernetes overlay in {path}: kubectl apply -k {path.parent}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m export`."""
    args = build_parser().parse_args(argv)
    if args.command == "triton-repo":
        return _triton_repo(args)
    if args.command == "build-engines":
        return _build_engines(args)
    if args.command == "k8s-overlay":
        return _k8s_overlay(args)
    names = MODEL_GROUPS.get(args.model, [args.model])
    if args.command == "verify":
        return _verify(names, args.out, args.checkpoint)
    _export(names, args.out, args.checkpoint, force=True)
    return 0 if args.no_verify else _verify(names, args.out, args.checkpoint)
