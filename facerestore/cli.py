"""`facerestore` (also `python -m facerestore`): one console script, subcommands per job. It sits
above `runtime` and `export` and is the only place that calls both (docs/ARCHITECTURE.md)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from runtime.contracts.upsampler import DEFAULT_TILE
from runtime.job import BACKENDS, ONNX_BACKENDS
from runtime.serving.weights_options import add_weights_option, weights_from
from runtime.restorers import RESTORERS   # light (no numpy, cv2, torch): `facerestore --help` loads none of them

# each command's one-line summary, listed by `facerestore --help` without building the commands' flags
SUMMARIES = {"restore": "restore faces in photos",
             "demo": "restore the shipped samples, one of them degraded, and show the face zoomed",
             "evaluate": "degrade clean photos, restore them, measure PSNR/SSIM/colour",
             "bench": "benchmark the face pipeline, restorers and serving on this machine",
             "export": "ONNX, parity, TensorRT engines, Triton repository (= `python -m export`)",
             "curate": "curate HQ face photos into an aligned training cache",
             "serve": "serve the job on tritonserver (HTTP, gRPC, metrics)",
             "client": "send photos to a `facerestore serve` server, write the restored ones",
             "ui": "web page: upload, compare, download"}

RESTORE_HELP = """\
Restore every face of every photo: detect faces (MediaPipe BlazeFace full-range), find 468
landmarks (MediaPipe face mesh), align each face to the FFHQ 512 template, restore the faces
--batch-faces at a time, paste them back with a soft mask over each face's own region.

Inputs are files and/or folders (searched recursively for .png .jpg .jpeg .webp .bmp .tif and
clips .mp4 .m4v .mov .mkv .webm .avi); with none, the sample photos shipped with the package are
used. Each output keeps the input's relative path and format; grayscale, alpha, 16-bit PNG and
EXIF orientation are honoured.

Clips (PyAV, no system ffmpeg): streamed a chunk of frames at a time; the same frame count,
timestamps (variable rates kept), size (or --upscale), pixel format (10-bit stays 10-bit) and
codec where it can be encoded here, else H.264 (libx264 CRF 18); audio, subtitle and data
streams are copied untouched; display rotation is honoured and written back. Faces are detected
on every --detect-every-th frame and followed by the face mesh in between, their landmarks
smoothed over time (One-Euro filter) so crops and paste masks do not jitter; the faces of
--batch-faces frames go to the restorer in calls of up to --batch-faces faces (a photo's faces
too: memory does not grow with the number of faces). Progress shows
frames/s and the ETA; a clip is written under a temporary name and renamed when complete.

--bg-upsampler PATH upsamples the background with a Real-ESRGAN-class network (RealESRGAN_x4plus
/ x2plus: RRDBNet, weights under params_ema; realesr-general-x4v3: SRVGGNetCompact, params; or
`demo`: our small compact x4, training/weights/upsampler/) in tiles of --tile pixels, and the
restored faces are pasted on its output (as GFPGAN and CodeFormer do) at --upscale.
A photo without a face is copied through. A bad file is reported on one line and the rest
of the batch goes on; the exit status is non-zero only when no photo could be processed.
A report.json in the output folder lists faces, skipped detections and errors per photo.

Restorers:
  identity  gives the aligned crops back unchanged: a check of the face pipeline (detection,
            alignment, paste-back), not a restorer.
  safm      (default) the Semantic-aware Fusion restorer (Zhao et al., Semantic-Aware Detail
            Enhancement for Blind Face Restoration): --checkpoint PATH.safetensors
            (with its .json beside it); without one, the shipped demo weights (safm-small, a small
            model trained on photographs and four faces; training/weights/safm/README.md).
            --fidelity in [0, 1] weighs the local detail enhancement from the input's features
            (our addition to the paper).
  authface  the AuthFace diffusion restorer (AuthFace: Towards Authentic Blind Face
            Restoration with Face-Oriented Generative Diffusion Prior): SDXL-architecture UNet +
            ControlNet conditioned on the degraded face, null prompt. --checkpoint DIR from
            `python -m training.authface make-checkpoint`; without one, random-init tiny
            (untrained). --scheduler ddim|dpmpp|euler|euler_a|unipc, --steps, --seed (per face, so a
            face's result does not depend on the others), --conditioning-scale (ControlNet
            weight). Faithful mode (the paper) starts from pure noise; --strength S in (0, 1] (our
            extension) starts from the degraded face's latent noised to S and runs only the last
            steps * S steps. The VAE stays fp32 (SDXL's VAE overflows to NaN in fp16) unless
            --fp16-vae says it is fp16-safe.
%(published)s
  onnx      any ONNX face enhancer (facefusion's and others): --checkpoint PATH.onnx (the default
            model for a .onnx checkpoint). Its image input (`input`/`x`, float32 NCHW RGB in
            [-1, 1]), face size, output ([0]) and scalar weight input (`weight`/`w`, float64 or
            float32, fed --fidelity) are read from the graph, or from PATH.json beside it
            ({"image", "output", "size", "weight", "value_range"}). ONNX Runtime only.

Untrained weights (random init, a ControlNet made from the UNet, an imported VQGAN alone: what
their provenance says) are refused with exit status 2; --allow-untrained runs them, says so on
stderr and marks report.json ("untrained": true) and the summary line.

Backends: --backend auto (default) runs the face networks and SaFM in-process on ONNX Runtime on a
CPU, SaFM on OpenVINO bf16 on a CPU with AMX-BF16 (about twice as fast per face there, same
quality on the held-out faces), and torch otherwise (--device cuda,
--precision bf16, AuthFace). torch (eager, the reference; --precision fp16/bf16 on CUDA, bf16 also
on CPUs with AVX512-BF16 or AMX), onnxruntime, openvino (CPU; --precision fp32 or bf16) or
tensorrt (<--engines>/<network>.plan from `python -m export build-engines`, on its GPU, with CUDA
graphs). ONNX Runtime and OpenVINO read their files from one cache, $FACERESTORE_CACHE or
~/.cache/facerestore: one folder per network and weights digest, exported there on first use (later
runs start without importing torch, from ORT's optimised graph saved beside the file for this CPU
and ORT version, or OpenVINO's compiled model in <cache>/openvino; the weights' digests are kept
there too),
whichever command or backend asked; or from --engines DIR when given, used as given. A file
exported or built from other weights than --checkpoint is refused, and so is an engine built for
another GPU or TensorRT version."""


def _published_help() -> str:
    """The published restorers' lines of RESTORE_HELP, from their data entries."""
    import textwrap

    from runtime.restorers.published import PUBLISHED

    lines = []
    for arch in PUBLISHED.values():
        text = (f"{arch.title}, our implementation, from the user's published weights: --checkpoint {arch.files}. "
                f"{arch.face_size} px faces. Licence of the weights: {arch.licence}"
                f"{' (said on every run)' if arch.non_commercial else ''}."
                + (" --fidelity is its w (0: the codebook, 1: most of the input)." if arch.fidelity else ""))
        wrapped = textwrap.wrap(text, 82)
        head = f"  {arch.name:<9} " if len(arch.name) <= 9 else f"  {arch.name}\n            "
        lines.append(head + "\n            ".join(wrapped))
    return "\n".join(lines)


def _add_photo_options(p: argparse.ArgumentParser, front_end: str) -> None:
    """The photo options `front_end` offers (runtime/photo_options.py), all from their one
    declaration; None = not given (restore, evaluate: the default; client: the server's)."""
    from runtime.photo_options import offered

    group = p.add_argument_group("photo options")
    for o in offered(front_end):
        default = "the server's" if front_end == "client" else o.default
        text = (o.describe() + ("" if default is None else f" (default: {default})")).replace("%", "%%")
        if o.type is bool:
            group.add_argument(o.flag, *o.aliases, action="store_true", default=None, help=text)
        else:
            group.add_argument(o.flag, *o.aliases, type=o.type, default=None, choices=o.choices or None, help=text)


def _photo_settings(args: argparse.Namespace) -> dict:
    """The photo options given on the command line, checked, over their defaults."""
    from runtime.photo_options import PHOTO_OPTIONS, photo_settings

    return photo_settings({o.name: getattr(args, o.name, None) for o in PHOTO_OPTIONS})


def _add_restorer_options(p: argparse.ArgumentParser) -> None:
    """The options that choose and configure a restorer (restore, evaluate)."""
    p.add_argument("--model", "--restorer", dest="model", default=None, choices=list(RESTORERS),
                   help="restorer (default: safm; onnx for a .onnx --checkpoint)")
    p.add_argument("--checkpoint", type=Path, default=None, help="restorer weights (see Restorers above)")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="(default: %(default)s, see Backends above)")
    p.add_argument("--engines", "--onnx-dir", dest="onnx_dir", type=Path, default=None,
                   help="a folder of <network>.onnx / .plan files, used as given (files of other weights are "
                        "refused); default: for onnxruntime the ONNX cache (see Backends), for tensorrt engines/")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"],
                   help="torch and openvino precision; fp16 needs --device cuda, bf16 CUDA or a CPU with "
                        "AVX512-BF16/AMX (default: %(default)s; --backend auto may choose OpenVINO bf16, see Backends)")
    p.add_argument("--allow-untrained", action="store_true",
                   help="run weights whose provenance says untrained (random init, a ControlNet made from the UNet, "
                        "an imported VQGAN alone) instead of refusing them; the report says so")
    p.add_argument("--fp16-vae", action="store_true",
                   help="run the networks that stay fp32 at half precision (AuthFace's VAE) in --precision too "
                        "(fp16-safe VAEs only)")
    p.add_argument("--torch-mode", default="eager", choices=["eager", "cuda-graph", "compile"],
                   help="torch backend: how the network run once per denoising step (AuthFace's UNet+ControlNet) "
                        "runs: eager, replayed from CUDA graphs (--device cuda), or torch.compile "
                        "(default: %(default)s)")
    added: dict[str, list[str]] = {}   # each option once, however many restorers share its declaration
    for spec in RESTORERS.values():   # each restorer's own options, from its spec (runtime/restorers/<name>/)
        for o in spec.options:
            added.setdefault(o.name, []).append(spec.name)
    for spec in RESTORERS.values():
        new = [o for o in spec.options if added[o.name][0] == spec.name]
        group = p.add_argument_group(", ".join(sorted({n for o in new for n in added[o.name]}))) if new else None
        for o in new:
            group.add_argument(o.flag, type=o.type, default=o.default, choices=o.choices or None,
                               help=f"{o.describe()} (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device for the face networks (default: %(default)s)")


def _add_restore(sub: argparse._SubParsersAction) -> None:
    from runtime.imageio import DEFAULT_MAX_PIXELS

    p = sub.add_parser("restore", help=SUMMARIES["restore"], description=RESTORE_HELP % {"published": _published_help()},
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", type=Path, help="photo files or folders (default: shipped samples)")
    p.add_argument("--out", "-o", type=Path, default=Path("out/restored"), help="output folder (default: %(default)s)")
    _add_restorer_options(p)
    _add_photo_options(p, "restore")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="refuse photos with more pixels (decompression-bomb guard, default: %(default)s)")
    p.add_argument("--jpeg-quality", type=int, default=None,
                   help="write JPEG outputs at this quality (1-100) instead of with the input's own quantisation "
                        "tables and chroma subsampling (default: the input's; EXIF and ICC are kept either way)")
    p.add_argument("--save-crops", action="store_true", help="also write aligned and restored crops under OUT/crops")
    p.add_argument("--compare", action="store_true", help="also write before|after images under OUT/compare")
    p.add_argument("--bg-upsampler", type=Path, default=None, metavar="PATH",
                   help="background upsampler weights (.pth/.safetensors), or `demo` (see above; default: resize)")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE,
                   help="background upsampler tile side in input pixels, 0 = whole photo (default: %(default)s)")
    p.add_argument("--batch-faces", type=int, default=None,
                   help="faces per restorer call, of a photo or of a clip's frames (a clip is read as many frames at "
                        "a time); memory grows with it, not with the faces of a photo (default: the restorer's, "
                        "measured per device: runtime/restorers/<name>/__init__.py)")
    p.add_argument("--detect-every", type=int, default=1,
                   help="clips: detect faces on every k-th frame, follow them in between (default: %(default)s)")


def _face_options(args: argparse.Namespace, restorer):
    """FaceOptions from the photo options; the crop side is --size, else the restorer's face
    size; the crop is aligned on the restorer's face template."""
    from runtime.photo_options import face_options

    return face_options(_photo_settings(args), *RESTORERS[args.model].face_crop(restorer))


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from runtime.evaluate import __doc__ as doc
    from training.data.degradations import PRESETS

    p = sub.add_parser("evaluate", help=SUMMARIES["evaluate"],
                       description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, help="clean photo files or folders (or aligned faces with --aligned)")
    p.add_argument("--out", "-o", type=Path, default=Path("out/evaluation"), help="report folder (default: %(default)s)")
    p.add_argument("--preset", default="blur2-x4-jpeg60", choices=sorted(PRESETS),
                   help="degradation (training/data/degradations.py; default: %(default)s)")
    p.add_argument("--copies", type=int, default=1, help="degraded copies per photo, each its own seed (default: 1)")
    p.add_argument("--also", nargs="+", default=[], metavar="NAME[=CHECKPOINT]",
                   help="more restorers side by side with --model on the same degraded copies (same backend and "
                        "options), e.g. `--also classical codeformer=codeformer.pth`")
    _add_restorer_options(p)
    _add_photo_options(p, "evaluate")


def _run_evaluate(args: argparse.Namespace) -> int:
    from runtime.engines import EngineMismatch
    from runtime.evaluate import evaluate_folder, evaluate_side_by_side
    from runtime.sessions import SessionError

    restorers = []
    try:
        restorer = _make_restorer(args)
        restorers.append(restorer)
        if not args.also:
            result = evaluate_folder(args.inputs, args.out, _face_pipeline(args, _face_options(args, restorer)),
                                     restorer, args.preset, args.copies)
        else:
            runs = [(_face_pipeline(args, _face_options(args, restorer)), restorer)]
            for item in args.also:
                name, _, weights = item.partition("=")
                if name not in RESTORERS:
                    raise ValueError(f"--also {name}: unknown restorer; choose among {sorted(RESTORERS)}")
                other = argparse.Namespace(**{**vars(args), "model": name, "checkpoint": Path(weights) if weights else None})
                made = _make_restorer(other)
                restorers.append(made)
                runs.append((_face_pipeline(other, _face_options(other, made)), made))
            result = evaluate_side_by_side(args.inputs, args.out, runs, args.preset, args.copies)[0]
    except (FileNotFoundError, ValueError, SessionError, EngineMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((args.out / "evaluation.md").read_text())
    for made in restorers:
        if made.provenance is not None and (notice := made.provenance.licence_notice(made.name)):
            print(notice)
    return 0 if result["faces"] else 1


def _resolve_model(args: argparse.Namespace) -> str:
    """--model, else onnx for a .onnx --checkpoint, else safm."""
    if args.model is None:
        args.model = "onnx" if args.checkpoint is not None and args.checkpoint.suffix.lower() == ".onnx" else "safm"
    return args.model


def _resolve_backend(args: argparse.Namespace):
    """The backend and precision (--backend auto: the job's choice, runtime/job.py: choose_backend,
    the page's too)."""
    from runtime.job import choose_backend

    return choose_backend(args.backend, args.model, args.device, args.precision)


def _face_pipeline(args: argparse.Namespace, options):
    """The face networks on ONNX Runtime (from --engines when it holds them, else the cache) on a
    CPU unless --backend torch; on torch otherwise."""
    from runtime.face import onnx_face_pipeline, torch_face_pipeline
    from runtime.job import face_networks_on_onnxruntime

    if not face_networks_on_onnxruntime(args.backend, args.device):
        return torch_face_pipeline(options, args.device)
    from export.onnx_cache import onnx_dir
    from runtime.contracts.face import FACE_DETECTOR, FACE_MESH

    return onnx_face_pipeline(onnx_dir(FACE_DETECTOR, None, args.onnx_dir), onnx_dir(FACE_MESH, None, args.onnx_dir),
                              options)


def _run_restore(args: argparse.Namespace) -> int:
    from runtime.job import JobReport
    from runtime.restore import VideoOptions, read_ahead, restore_files
    from runtime.samples import FACE_PHOTOS
    from runtime.engines import EngineMismatch
    from runtime.sessions import SessionError

    errors: tuple[type[Exception], ...] = (FileNotFoundError, ValueError, SessionError, EngineMismatch)
    if args.backend == "tensorrt":  # that module imports torch: only for the backend that needs it
        from runtime.tensorrt_session import TensorRTUnavailable

        errors += (TensorRTUnavailable,)
    try:
        _photo_settings(args)   # checked before any work
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.jpeg_quality is not None and not 1 <= args.jpeg_quality <= 100:
        print(f"error: --jpeg-quality must be in [1, 100], got {args.jpeg_quality}", file=sys.stderr)
        return 2
    if (args.batch_faces is not None and args.batch_faces < 1) or args.detect_every < 1 or args.tile < 0:
        print("error: --batch-faces and --detect-every must be >= 1, --tile >= 0", file=sys.stderr)
        return 2
    inputs = args.inputs or FACE_PHOTOS
    read = read_ahead(inputs, args.max_pixels)   # the first photo decodes while the networks load
    try:
        restorer = _make_restorer(args)
        options = _face_options(args, restorer)
        report = JobReport(restorer.name, _backend_text(args), settings=_job_settings(args))
        restore_files(inputs, args.out, _face_pipeline(args, options), restorer,
                      save_crops=args.save_crops, compare=args.compare, max_pixels=args.max_pixels,
                      jpeg_quality=args.jpeg_quality, upsampler=_bg_upsampler(args),
                      video=VideoOptions(args.detect_every), report=report,
                      batch_faces=args.batch_faces or RESTORERS[args.model].default_batch_faces(args.device),
                      read=read)
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary(args.out))
    for line in report.notices():
        print(line)
    if not report.photos:
        print("error: no image files found in the inputs", file=sys.stderr)
        return 2
    return 0 if any(r.error is None for r in report.photos) else 1


def _backend_text(args: argparse.Namespace) -> str:
    """Where the restorer runs, for the report: e.g. 'onnxruntime on cpu (--backend auto)'."""
    return f"{_resolve_backend(args)} on {args.device}" + (" (--backend auto)" if args.backend == "auto" else "")


def _job_settings(args: argparse.Namespace) -> dict:
    """The photo options and the restorer's own, as the report lists them."""
    return {**_photo_settings(args), **{o.name: getattr(args, o.name) for o in RESTORERS[args.model].options}}


def _add_demo(sub: argparse._SubParsersAction) -> None:
    from runtime.demo import __doc__ as doc

    p = sub.add_parser("demo", help=SUMMARIES["demo"],
                       description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", "-o", type=Path, default=Path("out/demo"), help="output folder (default: %(default)s)")


def _run_demo(args: argparse.Namespace) -> int:
    from runtime.demo import run_demo
    from runtime.samples import DEGRADED_SAMPLE

    from runtime.engines import EngineMismatch
    from runtime.sessions import SessionError

    restore = build_parser(["restore"]).parse_args(["restore", "--out", str(args.out)])   # restore's defaults: the demo SaFM
    try:
        restorer = _make_restorer(restore)
        gains = run_demo(args.out, _face_pipeline(restore, _face_options(restore, restorer)), restorer)
    except (FileNotFoundError, ValueError, SessionError, EngineMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sheet = args.out / "compare" / f"{DEGRADED_SAMPLE.stem}_faces.png"
    for g in gains:
        print(f"{DEGRADED_SAMPLE.name}: face PSNR {g.psnr_degraded:.2f} -> {g.psnr_restored:.2f} dB "
              f"({g.gain:+.2f} dB) against the clean photo; degraded | restored | clean in {sheet}")
    print(f"before | after of every sample in {args.out / 'compare'}")
    return 0 if gains else 1


def _bg_upsampler(args: argparse.Namespace):
    """The --bg-upsampler network (None without one): ONNX Runtime where the restorer runs on it
    (exported once into the cache), torch otherwise."""
    if args.bg_upsampler is None:
        return None
    from runtime.upsampler import onnx_upsampler, torch_upsampler
    from training.published.weights import PublishedWeightsError
    from training.shipped import DEMO_UPSAMPLER

    weights = DEMO_UPSAMPLER if str(args.bg_upsampler) == "demo" else args.bg_upsampler
    try:
        if _resolve_backend(args).backend in ONNX_BACKENDS:   # the upsampler: on ONNX Runtime
            from export.onnx_cache import onnx_dir
            from runtime.contracts.upsampler import BG_UPSAMPLER

            return onnx_upsampler(onnx_dir(BG_UPSAMPLER, weights, args.onnx_dir), weights, args.device, args.tile)
        return torch_upsampler(weights, args.device, args.precision, args.tile)
    except PublishedWeightsError as exc:
        raise ValueError(str(exc)) from None


def _make_restorer(args: argparse.Namespace):
    """The restorer the restore arguments ask for (any restorer of the registry, runtime/restorers/)."""
    from runtime.restorers.factory import check_trained, make_restorer

    spec = RESTORERS[_resolve_model(args)]
    backend, precision = _resolve_backend(args)
    options = spec.settings({o.name: getattr(args, o.name) for o in spec.options})   # checked before any work
    spec.check_checkpoint(args.checkpoint)
    check_trained(spec.name, args.checkpoint, args.allow_untrained)                   # before any export
    onnx_dir = args.onnx_dir or Path("engines")   # used as given (tensorrt: plans are built on their GPU)
    if backend in ONNX_BACKENDS and args.onnx_dir is None:   # the ONNX cache, exported on first use
        from export.onnx_cache import onnx_dir as cached_onnx_dir

        onnx_dir = {c.name: cached_onnx_dir(c, args.checkpoint) for c in spec.networks}
    return make_restorer(spec.name, args.checkpoint, backend, onnx_dir, args.device, precision,
                         fp16_vae=args.fp16_vae, torch_mode=args.torch_mode, allow_untrained=args.allow_untrained,
                         **options)


BENCH_HELP = """Time the job on this machine and save JSON + Markdown (+ PNG) under OUT/<device>/:

face_pipeline  detect / mesh / align / paste-back per face and end to end on a 3-face photo (always)
safm           --safm CKPT...: the SaFM restorer on torch eager fp32 (the reference: the restorers'
               torch backend, channels_last layout; --nchw adds the NCHW layout), ONNX Runtime,
               OpenVINO fp32/bf16 and torch bf16 on a CPU, torch.compile (--compile), and on CUDA
               torch fp16/bf16 and TensorRT; batch 1/4/8 (on a CPU the paper-scale model at batch 1).
               ONNX from ONNX_DIR/<ckpt stem>/safm.onnx
published      --published NAME[=CKPT]...: each published restorer's network (gfpgan, codeformer,
               restoreformer, restoreformerpp, gpen_bfr_256/512/1024/2048), torch eager fp32 vs
               ONNX Runtime (and OpenVINO on a CPU) in the same interleaved rounds (batch 1 on a
               CPU); without =CKPT a seeded random-weight file in the published layout. ONNX from
               ONNX_DIR/<name>/
authface       --authface [CKPT]: VAE encoder, UNet+ControlNet (one step), VAE decoder at batch 1/4/8
               and the whole restoration (--authface-steps); FLOP floor of the real SDXL networks.
               ONNX from ONNX_DIR/authface/
serving        --triton-repo REPO: the SaFM ensemble over HTTP and gRPC vs the direct in-process call
               on the same ONNX files, in interleaved rounds with 3x --max-seconds per call
               (REPO from `python -m export triton-repo --target cpu --restorers safm`)

Warm-up calls are excluded; each measurement stops after --repeats runs or --max-seconds (at least 3
runs). Ratios are only compared within one run. `make bench` builds the inputs and runs it all."""


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help=SUMMARIES["bench"],
                       description=BENCH_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results folder (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=20, help="timed runs per measurement, at most (default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=5.0,
                   help="stop a measurement after this many seconds of runs (at least 3 runs) (default: %(default)s)")
    p.add_argument("--onnx-dir", type=Path, default=Path("engines/bench"), help="(default: %(default)s)")
    p.add_argument("--safm", type=Path, nargs="*", default=[], metavar="CHECKPOINT", help="SaFM checkpoints to time")
    p.add_argument("--published", nargs="*", default=[], metavar="NAME[=CHECKPOINT]",
                   help="published restorers to time (their weights; none: random weights)")
    p.add_argument("--authface", nargs="?", const="default", default=None, metavar="CHECKPOINT",
                   help="time AuthFace (a checkpoint folder; none given: the random-init tiny model)")
    p.add_argument("--authface-steps", type=int, default=20, help="steps of the whole restoration (default: %(default)s)")
    p.add_argument("--triton-repo", type=Path, default=None, help="cpu-rendered repository for the serving benchmark")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (compiles first: minutes)")
    p.add_argument("--nchw", action="store_true",
                   help="also time torch eager fp32 in the NCHW layout (the restorers run channels_last)")


def _run_bench(args: argparse.Namespace) -> int:
    from benchmarks import BenchPlan, run_bench
    from runtime.serving.serve import ServerError
    from runtime.sessions import SessionError

    if args.repeats < 1 or args.max_seconds <= 0 or args.authface_steps < 1:
        print("error: --repeats and --authface-steps must be >= 1 and --max-seconds > 0", file=sys.stderr)
        return 2
    from runtime.restorers.published import PUBLISHED

    published = {n: Path(w) if w else None for n, _, w in (item.partition("=") for item in args.published)}
    if unknown := sorted(set(published) - set(PUBLISHED)):
        print(f"error: --published {unknown}: not published restorers; choose among {sorted(PUBLISHED)}", file=sys.stderr)
        return 2
    command = "facerestore " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "facerestore bench"
    plan = BenchPlan(out_dir=args.out, repeats=args.repeats, max_seconds=args.max_seconds, onnx_dir=args.onnx_dir,
                     safm=args.safm, authface=args.authface is not None, published=published,
                     authface_checkpoint=None if args.authface in (None, "default") else Path(args.authface),
                     authface_steps=args.authface_steps, triton_repo=args.triton_repo, compile=args.compile,
                     nchw=args.nchw, command=command)
    try:
        from export.onnx_cache import onnx_dir  # the face networks' ONNX (exported once): the ORT rows
        from runtime.contracts.face import FACE_DETECTOR, FACE_MESH

        plan.check()
        plan.face_onnx = onnx_dir(FACE_DETECTOR), onnx_dir(FACE_MESH)
        run_bench(plan)
    except (ValueError, SessionError, FileNotFoundError, ServerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _add_curate(sub: argparse._SubParsersAction) -> None:
    from facerestore.curate import CurateOptions, __doc__ as doc

    d = CurateOptions()
    p = sub.add_parser("curate", help=SUMMARIES["curate"], description=doc,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, help="photo files or folders")
    p.add_argument("--out", "-o", type=Path, required=True, help="cache folder")
    p.add_argument("--min-face", type=float, default=d.min_face, help="drop faces narrower (px) (default: %(default)s)")
    p.add_argument("--max-noise", type=float, default=d.max_noise, help="drop noisier faces (default: %(default)s)")
    p.add_argument("--min-sharpness", type=float, default=d.min_sharpness, help="drop blurrier faces (default: %(default)s)")
    p.add_argument("--degraded-maps", type=int, default=d.degraded_maps,
                   help="also store region maps found on this many degraded copies of each face, which the "
                        "trainers use: what inference sees (default: %(default)s)")


def _run_curate(args: argparse.Namespace) -> int:
    from facerestore.curate import CurateOptions, curate
    from runtime.face import torch_face_pipeline

    try:
        report = curate(args.inputs, args.out, torch_face_pipeline(),
                        CurateOptions(args.min_face, args.max_noise, args.min_sharpness, args.degraded_maps))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if report["kept"] else 1


def _add_export(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("export", help=SUMMARIES["export"],
                   add_help=False)


def _run_export(args: argparse.Namespace) -> int:
    from export.cli import main as export_main

    return export_main(args.rest)


SERVE_HELP = """\
Serve the whole job on a real Triton Inference Server, on 127.0.0.1: ensembles
face_restore_<restorer> (photo bytes in; restored photo, face count and boxes out) over HTTP,
gRPC and a metrics port. Ctrl-C or SIGTERM stops the server and its python models.

--render cpu  renders the repository for nvidia-pytriton's bundled CPU tritonserver (networks as
              python-backend ONNX Runtime models; ONNX files from the ONNX cache that `restore`
              uses, one export per weights digest, or from --engines DIR as given)
--render gpu  renders it for the NGC container's tritonserver (TensorRT plans from --engines)
without --render the repository (--repo) is served as it is.
--server auto uses a `tritonserver` on PATH, else the bundled one (nvidia-pytriton).
The model-repository, shared-memory, logging and trace APIs answer 403 (gRPC: UNAVAILABLE) to any
request without the header facerestore-admin-key holding the admin key: a new random key each
start (used only by the supervisor), or the one in --admin-key-file (e.g. a Kubernetes secret).
Supervision: a python model whose process died, or a model unloaded, is reloaded alone within
seconds; a dead server is restarted on the same ports, retried with a backoff until it serves
(never given up); an idle model whose shared memory grew past 64 MiB is reloaded to give it back
(--no-supervise: none of it; exit when the server dies). Restarts and reloads are counted in the
log and in the metrics (facerestore_supervisor_*). A request beyond --max-queue-size waiting, or
waiting over --queue-timeout, is refused at once with 503 / UNAVAILABLE."""


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from runtime.serving.capacity_options import add_capacity_options

    p = sub.add_parser("serve", help=SUMMARIES["serve"], description=SERVE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--render", choices=["cpu", "gpu"], default=None, help="render the model repository first")
    p.add_argument("--repo", type=Path, default=None,
                   help="model repository (default: out/triton_repo_cpu with --render cpu, else triton_repo)")
    p.add_argument("--engines", type=Path, default=None,
                   help="--render: ONNX/plan folder, used as given (default: engines for gpu; for cpu the ONNX "
                        "cache, one export per weights digest, shared with `restore`)")
    p.add_argument("--checkpoint", type=Path, default=None, help="--render: SaFM weights (default: the shipped demo weights, training/weights/safm/)")
    p.add_argument("--authface-checkpoint", type=Path, default=None, help="--render: AuthFace checkpoint folder")
    add_weights_option(p)
    p.add_argument("--restorers", nargs="+", default=None,
                   help="--render: ensembles to serve (default: every restorer whose weights are trained)")
    p.add_argument("--allow-untrained", action="store_true",
                   help="--render: serve restorers whose weights are untrained too (refused when named in "
                        "--restorers, left out otherwise)")
    add_capacity_options(p, "--render: ")
    p.add_argument("--bg-upsampler", type=Path, default=None, metavar="PATH",
                   help="--render: serve the background upsampler step (weights as `restore --bg-upsampler`, or "
                        "`demo`): faces pasted on the photo it upsampled, in tiles of --tile (default: resize)")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE,
                   help="--render: the served upsampler's tile side in input pixels (default: %(default)s)")
    p.add_argument("--server", default="auto", help="auto, bundled, or a tritonserver path (default: %(default)s)")
    p.add_argument("--http-port", type=int, default=8000, help="0 = a free port (default: %(default)s)")
    p.add_argument("--grpc-port", type=int, default=8001, help="0 = a free port (default: %(default)s)")
    p.add_argument("--metrics-port", type=int, default=8002, help="0 = a free port (default: %(default)s)")
    p.add_argument("--log", type=Path, default=None, help="write the server log here (default: stderr)")
    p.add_argument("--admin-key-file", type=Path, default=None,
                   help="file holding the admin key of the restricted APIs (letters, digits, - and _); "
                        "default: a new random key each start, never shown")
    p.add_argument("--no-supervise", dest="supervise", action="store_false",
                   help="do not restart the server when a python stub or the server dies, nor reload models "
                        "to give back their shared memory")


def _weights(args: argparse.Namespace) -> dict[str, Path | None]:
    """Restorer name -> weights: --checkpoint (SaFM), --authface-checkpoint and --weights NAME=PATH."""
    return weights_from(args, safm=args.checkpoint, authface=args.authface_checkpoint)


def _served_upsampler(args: argparse.Namespace) -> dict[str, Path]:
    """serve --bg-upsampler: the weights of the bg_upsampler model group (`demo`: the shipped one)."""
    if args.bg_upsampler is None:
        return {}
    from training.shipped import DEMO_UPSAMPLER

    return {"bg_upsampler": DEMO_UPSAMPLER if str(args.bg_upsampler) == "demo" else args.bg_upsampler}


def _run_serve(args: argparse.Namespace) -> int:
    from runtime.serving.admin_key import read_admin_key
    from runtime.serving.capacity_options import capacity_from
    from runtime.serving.serve import ServerError, TritonServer, repository_notices, serve_forever

    repo = args.repo or Path("out/triton_repo_cpu" if args.render == "cpu" else "triton_repo")
    try:
        capacity = capacity_from(args)
        admin_key = read_admin_key(args.admin_key_file) if args.admin_key_file else None
        weights = _weights(args)
        from runtime.contracts.service import SERVICES

        if unserved := sorted(n for n, w in weights.items() if w is not None and n not in SERVICES):
            raise ValueError(f"--weights {', '.join(unserved)}: not served (no face_restore_<name> ensemble); "
                             f"served restorers: {sorted(SERVICES)}")
    except (ValueError, ServerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.render:
        from export.triton_repo import RepoError, render_repo

        try:
            engines = args.engines or (Path("engines") if args.render == "gpu" else None)
            render_repo(args.render, repo, engines, args.restorers, {**weights, **_served_upsampler(args)},
                        capacity=capacity, allow_untrained=args.allow_untrained,
                        bg_tile=args.tile if args.bg_upsampler else None)
        except (RepoError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    for notice in repository_notices(repo):   # a non-commercial licence, said at every start
        print(notice, file=sys.stderr)
    try:
        server = TritonServer(repo, args.http_port, args.grpc_port, args.metrics_port, args.server, args.log,
                              admin_key=admin_key)
        return serve_forever(server, args.supervise)
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _add_client(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("client", help=SUMMARIES["client"],
                       description="Send photos (files/folders; default: the shipped samples) to the served ensemble "
                                   "face_restore_<restorer> over gRPC or HTTP; write each restored photo atomically "
                                   "under --out (same relative path and format, never over an input) and print "
                                   "the latency of each request and a summary. Photos over 64 MiB are refused.")
    p.add_argument("inputs", nargs="*", type=Path, help="photo files or folders (default: shipped samples)")
    p.add_argument("--out", "-o", type=Path, default=Path("out/served"), help="output folder (default: %(default)s)")
    p.add_argument("--url", type=lambda text: [u for u in text.split(",") if u], default=None,
                   help="server address; several, comma-separated = replicas the photos are spread over "
                        "(default: 127.0.0.1:8001 grpc, 127.0.0.1:8000 http)")
    p.add_argument("--retry-s", type=float, default=60.0,
                   help="keep retrying an unavailable server (restarting, overloaded) this long (default: %(default)s)")
    p.add_argument("--protocol", choices=["grpc", "http"], default="grpc", help="(default: %(default)s)")
    served = [s for s in RESTORERS.values() if s.networks and s.served]
    p.add_argument("--restorer", "--model", dest="restorer", choices=[s.name for s in served], default="safm",
                   help="(default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=1, help="parallel requests (default: %(default)s)")
    _add_photo_options(p, "client")
    from runtime.contracts.service import OPTIONS

    for o in dict.fromkeys(o for spec in served for o in spec.served_options()):   # one flag per declaration
        p.add_argument(o.flag, type=o.type, default=None,   # None: the server's default
                       help=f"{OPTIONS[o.tensor_name].help.split(':')[0]}: {o.describe(served=True)} "
                            f"(server default {o.default})")


def _run_client(args: argparse.Namespace) -> int:
    from runtime.photo_options import offered
    from runtime.samples import FACE_PHOTOS
    from runtime.serving.client import restore_files

    try:
        options = {o.name: o.read(v) for o in offered("client") if (v := getattr(args, o.name)) is not None}
        options.update({o.name: getattr(args, o.name) for o in RESTORERS[args.restorer].served_options()})
        report = restore_files(args.inputs or FACE_PHOTOS, args.out, args.url, args.protocol, args.restorer,
                               args.concurrency, retry_s=args.retry_s, **options)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary(args.out))
    for line in report.notices():
        print(line)
    if not report.photos:
        print("error: no image files found in the inputs", file=sys.stderr)
        return 2
    return 0 if any(r.error is None for r in report.photos) else 1


UI_HELP = """\
A web page (Gradio) for restoring photos and clips by hand: upload one or many, choose the restorer
and its options, compare before/after for the whole photo (slider; a clip: its middle frame) and per
face (aligned crop, restored crop, paste mask), play the restored clip, download the restored photos
and clips (audio kept) and report.json.

Back end: in-process by default (--checkpoint / --authface-checkpoint, --backend, --engines,
--device as for `restore`), or a running `facerestore serve` with --triton URL (the options shown
are those its ensembles take). Listens on 127.0.0.1 unless --host says otherwise; uploads are
capped at 64 MiB and --max-pixels, as in `restore` and the server."""


def _add_ui(sub: argparse._SubParsersAction) -> None:
    from runtime.imageio import DEFAULT_MAX_PIXELS

    p = sub.add_parser("ui", help=SUMMARIES["ui"], description=UI_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=7860, help="0 = a free port (default: %(default)s)")
    p.add_argument("--triton", metavar="URL", default=None, help="use this Triton server instead of in-process")
    p.add_argument("--protocol", choices=["grpc", "http"], default="grpc", help="--triton protocol (default: %(default)s)")
    p.add_argument("--checkpoint", type=Path, default=None, help="SaFM weights (default: the shipped demo weights)")
    p.add_argument("--authface-checkpoint", type=Path, default=None, help="AuthFace checkpoint folder")
    add_weights_option(p)
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="as for `restore` (auto: the face networks and SaFM on ONNX Runtime on a CPU, torch "
                        "otherwise; default: %(default)s)")
    p.add_argument("--engines", type=Path, default=None,
                   help="ONNX/plan folder, used as given (default: for onnxruntime the ONNX cache, for tensorrt engines)")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="refuse photos with more pixels (default: %(default)s)")
    p.add_argument("--allow-untrained", action="store_true",
                   help="in-process: run restorers whose weights are untrained (the page says so) instead of "
                        "refusing them with the reason")


def _run_ui(args: argparse.Namespace) -> int:
    try:
        from runtime.ui.app import launch
    except ImportError as exc:
        print(f"error: the web page needs gradio ({exc}); pip install 'face-restore-runtime[ui]'", file=sys.stderr)
        return 2
    from runtime.serving.serve import free_port
    from runtime.ui.backends import LocalBackend, TritonBackend

    if args.triton:
        try:
            backend = TritonBackend(args.triton, args.protocol, args.max_pixels)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not backend.ready():
            print(f"warning: no ready Triton server at {backend.url} ({backend.protocol}) yet; the page will "
                  "report each failed request", file=sys.stderr)
    else:
        from export.onnx_cache import onnx_dir

        try:
            weights = _weights(args)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        backend = LocalBackend(weights, args.backend, args.engines, args.device, args.max_pixels,
                               args.allow_untrained, onnx_dir)
    launch(backend, args.host, args.port or free_port())
    return 0


COMMANDS = {"restore": (_add_restore, _run_restore), "demo": (_add_demo, _run_demo),
            "evaluate": (_add_evaluate, _run_evaluate),
            "bench": (_add_bench, _run_bench),
            "export": (_add_export, _run_export), "curate": (_add_curate, _run_curate),
            "serve": (_add_serve, _run_serve), "client": (_add_client, _run_client), "ui": (_add_ui, _run_ui)}


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of the `facerestore` console script: every command's flags, or only
    those of `commands` (the others listed by their summary; a command's flags import what its
    help and choices need, cv2 and numpy for most)."""
    parser = argparse.ArgumentParser(prog="facerestore", description="Blind face restoration runtime.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add, _) in COMMANDS.items():
        if commands is None or name in commands:
            add(sub)
        else:
            sub.add_parser(name, help=SUMMARIES[name])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `facerestore` and `python -m facerestore`."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser([a for a in argv[:1] if a in COMMANDS])   # the command comes first: only its flags
    args, rest = parser.parse_known_args(argv)
    if args.command != "export" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    return COMMANDS[args.command][1](args)
