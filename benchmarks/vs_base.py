"""Same-run ratios of this checkout against the code of another commit (issue 17's 3d4d67e).

    git worktree add /tmp/base 3d4d67e
    .venv/bin/python -m benchmarks.vs_base --base /tmp/base --out benchmarks/results/cpu-amd-epyc

- face pipeline, in one process: the base commit's package is loaded under the names
  base_runtime / base_training (imports rewritten in a temporary copy) beside this checkout's,
  and both pipelines run on the same photos in interleaved rounds: find + align + paste-back
  (identity restorer) of a photo each side decoded its own way. Base: its default (torch face
  networks, or ONNX Runtime from the commit that made it the default on); new: its default
  (ONNX Runtime), and with --min-face-size 150 (single view when that is enough; on the
  one-face photo only). Faces found by each are in the rows (recall).
- CLI end to end (left out with --face-only): `python -m facerestore restore PHOTO` (a base's
  `python -m runtime`) as a fresh process, base and new in interleaved rounds (default restorer SaFM with the demo weights, and
  --model identity).
A torch base also runs with torch on one thread: on a loaded machine its default (one thread per
core) is much slower, so the ratio against that row is the fair floor.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from benchmarks.report import save
from benchmarks.timing import device_name, interleaved_ms, stats
from training.cpu import reported_flags

_IMPORT = re.compile(r"\b(from|import) (runtime|training)\b")
SINGLE_VIEW = "new (onnxruntime, --min-face-size 150)"
ONE_FACE = {"grace_hopper x2"}


def one_thread_label(commit: str) -> str:
    """The row of a torch base with torch on one thread."""
    return f"base ({commit}), torch on 1 thread"


def load_base(base: Path, tmp: Path) -> Callable[[str], object]:
    """The base checkout's runtime and training packages, importable as base_runtime and
    base_training (a copy with its imports rewritten); returns an importer of base modules."""
    for pkg in ("runtime", "training"):
        shutil.copytree(base / pkg, tmp / f"base_{pkg}", ignore=shutil.ignore_patterns("__pycache__"))
        for f in (tmp / f"base_{pkg}").rglob("*.py"):
            f.write_text(_IMPORT.sub(r"\1 base_\2", f.read_text()))
    sys.path.insert(0, str(tmp))
    return lambda name: importlib.import_module(f"base_{name}")


def bench_face(base: Callable[[str], object], commit: str, photos: dict[str, Path], repeats: int,
               max_seconds: float) -> list[dict]:
    """find + align + paste per photo: base default vs new default (and, on a one-face photo,
    new with --min-face-size 150: one detector view), interleaved."""
    import torch

    from export.onnx_cache import onnx_dir
    from runtime.contracts.face import FACE_DETECTOR, FACE_MESH
    from runtime.face import FaceOptions, onnx_face_pipeline
    from runtime.imageio import decode_image
    from runtime.restore import restore_photo
    from runtime.restorers.identity.restorer import IdentityRestorer

    b_face, b_io, b_restore = base("runtime.face"), base("runtime.imageio"), base("runtime.restore")
    b_restorer = base("runtime.restorers").IdentityRestorer()
    dirs = onnx_dir(FACE_DETECTOR), onnx_dir(FACE_MESH)
    base_torch = not hasattr(b_face, "onnx_face_pipeline")   # before ONNX Runtime was the default
    base_label = f"base ({commit}, {'torch' if base_torch else 'onnxruntime'})"
    pipelines = {base_label: None, "new (onnxruntime)": onnx_face_pipeline(*dirs),
                 SINGLE_VIEW: onnx_face_pipeline(*dirs, FaceOptions(min_face_size=150))}
    old = b_face.torch_face_pipeline() if base_torch else b_face.onnx_face_pipeline(*dirs)
    rows = []
    for name, path in photos.items():
        data = path.read_bytes()
        b_photo, n_photo = b_io.decode_image(data), decode_image(data)  # each side decodes its own way

        def run_base() -> int:
            return len(b_restore.restore_photo(b_photo, old, b_restorer)[1])

        def run_new(pipeline) -> int:
            return len(restore_photo(n_photo, pipeline, IdentityRestorer())[1])

        calls = {k: (run_base if p is None else (lambda p=p: run_new(p))) for k, p in pipelines.items()
                 if k != SINGLE_VIEW or name in ONE_FACE}
        if base_torch:
            calls[one_thread_label(commit)] = lambda: _one_thread(torch, run_base)
        faces = {k: fn() for k, fn in calls.items()}
        times = interleaved_ms(calls, repeats, warmup=1, max_seconds=max_seconds)
        ref = float(np.median(times[base_label]))
        ref1 = float(np.median(times[one_thread_label(commit)])) if base_torch else None
        h, w = cv2.imread(str(path)).shape[:2]
        for k, ms in times.items():
            s = stats(ms)
            rows.append({"photo": f"{name} {w}x{h}", "path": k, "faces": faces[k], **s,
                         "speedup_vs_base": round(ref / s["median_ms"], 2),
                         "speedup_vs_base_1_thread": None if ref1 is None else round(ref1 / s["median_ms"], 2)})
            print(f"{name} | {k} | {s['median_ms']} ms | {faces[k]} faces", file=sys.stderr)
    return rows


def _one_thread(torch, fn: Callable[[], int]) -> int:
    """fn with torch on one intra-op thread (the CPU's default restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def bench_cli(base_dir: Path, commit: str, photo: Path, repeats: int) -> list[dict]:
    """A one-photo `restore` as a fresh process, base vs new, interleaved rounds."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    new_dir = Path(__file__).resolve().parents[1]
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for model in ("safm", "identity"):
            def run(cwd: Path, extra: dict[str, str] | None = None) -> Callable[[], None]:
                cli = "facerestore" if (cwd / "facerestore" / "cli.py").is_file() else "runtime"   # base: runtime/cli.py
                cmd = [sys.executable, "-m", cli, "restore", str(photo), "--model", model, "--out", out]
                return lambda: subprocess.run(cmd, cwd=cwd, env={**env, **(extra or {})}, check=True, capture_output=True)

            one_thread = one_thread_label(commit)
            calls = {f"base ({commit})": run(base_dir), one_thread: run(base_dir, {"OMP_NUM_THREADS": "1"}),
                     "new": run(new_dir)}
            calls["new"]()  # the first run exports the ONNX cache: not timed
            times = interleaved_ms(calls, repeats, warmup=1)
            ref, ref1 = float(np.median(times[f"base ({commit})"])), float(np.median(times[one_thread]))
            for k, ms in times.items():
                s = stats(ms)
                rows.append({"command": f"restore {photo.name} --model {model}", "path": k, **s,
                             "speedup_vs_base": round(ref / s["median_ms"], 2),
                             "speedup_vs_base_1_thread": round(ref1 / s["median_ms"], 2)})
                print(f"cli {model} | {k} | {s['median_ms']} ms", file=sys.stderr)
    return rows


def table(result: dict) -> str:
    """Both benchmarks as Markdown under their context."""
    lines = [f"Base {result['base']} vs this checkout on {result['device']} ({', '.join(result['cpu_flags'])}), "
             f"{os.cpu_count()} cores (load average {result['load_average'][1]:.1f} over the last 5 minutes "
             f"before the end of the run: a shared machine), interleaved rounds in one run; `{result['command']}`", "",
             "Per photo: find + align + paste-back (identity restorer) of a decoded photo, one process", "",
             "| photo | path | faces | runs | median ms | p90 ms | speed-up vs base | vs base 1 thread |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['photo']} | {r['path']} | {r['faces']} | {r['runs']} | {r['median_ms']} | {r['p90_ms']} | "
              f"{r['speedup_vs_base']}x | {_ratio(r['speedup_vs_base_1_thread'])} |" for r in result["face_pipeline"]]
    if not result["cli"]:
        return "\n".join(lines) + "\n"
    lines += ["", "One-photo CLI restore, a fresh process each run (start-up included)", "",
              "| command | path | runs | median ms | p90 ms | speed-up vs base | vs base 1 thread |",
              "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['command']} | {r['path']} | {r['runs']} | {r['median_ms']} | {r['p90_ms']} | "
              f"{r['speedup_vs_base']}x | {r['speedup_vs_base_1_thread']}x |" for r in result["cli"]]
    return "\n".join(lines) + "\n"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value}x"


def main(argv: list[str] | None = None) -> int:
    from runtime.samples import ASTRONAUT, GRACE_HOPPER, crowd_photo, group_photo

    p = argparse.ArgumentParser(prog="python -m benchmarks.vs_base", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, required=True, help="a worktree of the base commit")
    p.add_argument("--out", type=Path, required=True, help="results folder")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--max-seconds", type=float, default=20.0)
    p.add_argument("--cli-repeats", type=int, default=7)
    p.add_argument("--face-only", action="store_true", help="the face pipeline only, no CLI runs")
    p.add_argument("--name", default="vs_base", help="results file name (default: %(default)s)")
    args = p.parse_args(argv)
    if not (args.base / "runtime" / "face" / "pipeline.py").is_file():
        print(f"error: {args.base}: not a checkout of this project", file=sys.stderr)
        return 2
    commit = subprocess.run(["git", "-C", str(args.base), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        grace = cv2.imread(str(GRACE_HOPPER))
        photos = {"grace_hopper x2": tmp / "grace2.jpg", "group": tmp / "group.png", "crowd (36 faces)": tmp / "crowd.jpg"}
        cv2.imwrite(str(photos["grace_hopper x2"]), cv2.resize(grace, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC))
        cv2.imwrite(str(photos["group"]), group_photo()[..., ::-1])
        cv2.imwrite(str(photos["crowd (36 faces)"]), crowd_photo()[..., ::-1])
        t0 = time.perf_counter()
        face_rows = bench_face(load_base(args.base, tmp), commit, photos, args.repeats, args.max_seconds)
        cli_rows = [] if args.face_only else bench_cli(args.base, commit, ASTRONAUT, args.cli_repeats)
    result = {"base": commit, "device": device_name(), "cpu_flags": reported_flags(), "load_average": os.getloadavg(),
              "command": "python -m benchmarks.vs_base " + " ".join(sys.argv[1:] if argv is None else argv),
              "seconds": round(time.perf_counter() - t0, 1), "face_pipeline": face_rows, "cli": cli_rows}
    save(args.out, args.name, result, table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
