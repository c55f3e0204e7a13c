"""Issue 31's "done when": this checkout's `facerestore restore` against another commit's, each
run a fresh process, base and new in interleaved rounds on the same machine:

- a 12 MP photo with one face (Grace Hopper upscaled to 3200x3750), the default restorer
  (SaFM demo weights on ONNX Runtime): wall time of the cold process and its peak RSS;
- the 36-face crowd photo (runtime.samples.crowd_photo, 1200x1380): time, peak RSS and the
  faces each side found (report.json);
- `restore --model identity` on a 1 MP photo (the astronaut at 1024x1024): start-up and pipeline;
- the outputs of both sides compared pixel by pixel (PNG in, PNG out: no encoder in between).

    git worktree add /tmp/base31 6308b0f && ln -s $PWD/.venv /tmp/base31/.venv
    .venv/bin/python -m benchmarks.cli_vs_base --base /tmp/base31 --out benchmarks/results/<cpu>

Each side has its own ONNX cache (new: a fresh one under the run's temporary folder; base:
$FACERESTORE_CACHE of the caller); one untimed run per side and photo fills it first, so the
timed runs start as a user's second run does. Peak RSS is the child's own VmHWM, read at its exit
(PEAK_RSS_RUNNER).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.report import save
from benchmarks.timing import device_name, device_slug
from training.cpu import reported_flags

NEW_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    """One command line run by both sides: a photo and the flags after it."""

    name: str
    photo: str            # file name in the run's photo folder
    flags: tuple[str, ...] = ()


CASES = (Case("12 MP, 1 face, safm", "grace_12mp.png"), Case("crowd 36 faces, safm", "crowd.png"),
         Case("1 MP, identity", "astronaut_1mp.png", ("--model", "identity")))


def make_photos(folder: Path) -> dict[str, str]:
    """The cases' photos as PNG files in `folder`; returns file name -> size text."""
    from runtime.samples import ASTRONAUT, GRACE_HOPPER, crowd_photo, read_rgb8

    photos = {"grace_12mp.png": cv2.resize(read_rgb8(GRACE_HOPPER), (3200, 3750), interpolation=cv2.INTER_CUBIC),
              "crowd.png": crowd_photo(),
              "astronaut_1mp.png": cv2.resize(read_rgb8(ASTRONAUT), (1024, 1024), interpolation=cv2.INTER_CUBIC)}
    for name, rgb in photos.items():
        cv2.imwrite(str(folder / name), rgb[..., ::-1])
    return {name: f"{rgb.shape[1]}x{rgb.shape[0]}" for name, rgb in photos.items()}


# Runs `python -m facerestore ARGS` and writes the process's peak RSS (VmHWM, kB) to PEAK_FILE at
# exit: os.wait4's ru_maxrss would also count the benchmark's own pages, which the child holds
# between fork and exec (a 150 MB run read as 450 MB).
PEAK_RSS_RUNNER = """import atexit, runpy, sys
peak_file = sys.argv.pop(1)
def peak():
    with open("/proc/self/status") as status, open(peak_file, "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(peak)
sys.argv[0] = "facerestore"
runpy.run_module("facerestore", run_name="__main__", alter_sys=True)
"""


def run_once(checkout: Path, photo: Path, flags: tuple[str, ...], out: Path, cache: Path | None) -> tuple[float, float]:
    """`python -m facerestore restore PHOTO FLAGS --out OUT` in `checkout` as a fresh process:
    (wall seconds, peak RSS in MB: the child's own VmHWM). A failed run raises with its stderr."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # bytecode cached as in a user's second run (not 30-60 ms of compiling)
    if cache is not None:
        env["FACERESTORE_CACHE"] = str(cache)
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak_kb"
        cmd = [sys.executable, "-c", PEAK_RSS_RUNNER, str(peak_file), "restore", str(photo), *flags, "--out", str(out)]
        with open(Path(scratch) / "stderr", "w+b") as err:
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=err)
            seconds = time.perf_counter() - t0
            if proc.returncode or not peak_file.is_file():
                err.seek(0)
                raise RuntimeError(f"facerestore {' '.join(cmd[4:])} (in {checkout}) failed: {err.read().decode()[-2000:]}")
        return seconds, int(peak_file.read_text()) / 1024


def faces_found(out: Path) -> int:
    """Faces restored in a run's output folder (its report.json)."""
    return sum(int(p.get("faces") or 0) for p in json.loads((out / "report.json").read_text())["photos"])


def pixel_difference(a: Path, b: Path) -> dict:
    """Largest absolute difference (0-255 levels) and the share of pixels that differ at all."""
    x, y = cv2.imread(str(a), cv2.IMREAD_UNCHANGED), cv2.imread(str(b), cv2.IMREAD_UNCHANGED)
    if x is None or y is None or x.shape != y.shape:
        return {"max_abs": None, "differing_pixels": None, "note": f"shapes {getattr(x, 'shape', None)} vs "
                                                                   f"{getattr(y, 'shape', None)}"}
    d = np.abs(x.astype(np.int16) - y.astype(np.int16))
    return {"max_abs": int(d.max()), "differing_pixels": round(float((d.max(axis=-1) > 0).mean()), 6)}


def bench(base: Path, commit: str, rounds: int, tmp: Path, cases: tuple[Case, ...] = CASES) -> list[dict]:
    """Each case, base and new alternating (which goes first swaps every round)."""
    photos = tmp / "photos"
    photos.mkdir()
    sizes = make_photos(photos)
    sides = {f"base ({commit})": (base, None), "new": (NEW_DIR, tmp / "new-cache")}
    rows = []
    for case in cases:
        try:
            rows += _bench_case(case, sides, rounds, photos, sizes, tmp)
        except RuntimeError as exc:   # e.g. a side killed for memory: the case says so, the others still run
            print(f"{case.name}: {exc}", file=sys.stderr)
            rows.append({"case": case.name, "photo": sizes[case.photo], "error": str(exc)[-600:]})
    return rows


def _bench_case(case: Case, sides: dict[str, tuple[Path, Path | None]], rounds: int, photos: Path,
                sizes: dict[str, str], tmp: Path) -> list[dict]:
    """One case's rows: both sides' timed runs and the pixel difference of their outputs."""
    rows = []
    outs = {side: tmp / "out" / case.photo / str(i) for i, side in enumerate(sides)}
    for side, (checkout, cache) in sides.items():   # untimed: fills each side's caches
        run_once(checkout, photos / case.photo, case.flags, outs[side], cache)
    runs: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
    order = list(sides)
    for r in range(rounds):
        for side in order[r % 2:] + order[:r % 2]:
            checkout, cache = sides[side]
            runs[side].append(run_once(checkout, photos / case.photo, case.flags, outs[side], cache))
            print(f"{case.name} | {side} | {runs[side][-1][0]:.2f} s | {runs[side][-1][1]:.0f} MB", file=sys.stderr)
    base_side = order[0]
    ref_s = float(np.median([s for s, _ in runs[base_side]]))
    ref_mb = float(np.median([m for _, m in runs[base_side]]))
    diff = pixel_difference(outs[base_side] / case.photo, outs["new"] / case.photo)
    for side, measured in runs.items():
        seconds, rss = np.median([s for s, _ in measured]), np.median([m for _, m in measured])
        rows.append({"case": case.name, "photo": sizes[case.photo], "side": side, "runs": len(measured),
                     "median_s": round(float(seconds), 3), "min_s": round(min(s for s, _ in measured), 3),
                     "peak_rss_mb": round(float(rss), 1), "faces": faces_found(outs[side]),
                     "speedup_vs_base": round(ref_s / float(seconds), 2),
                     "rss_vs_base": round(float(rss) / ref_mb, 2),
                     "difference_vs_base": None if side == base_side else diff})
    return rows


def table(result: dict) -> str:
    """The rows as Markdown under their context."""
    lines = [f"`facerestore restore` as a fresh process, base {result['base']} vs this checkout, interleaved "
             f"rounds in one run on {result['device']} ({', '.join(result['cpu_flags'])}); load average "
             f"{'/'.join(f'{x:.1f}' for x in result['load_average_start'])} at the start; `{result['command']}`", "",
             "| case | photo | side | runs | median s | min s | speed-up vs base | peak RSS MB | RSS vs base | faces | "
             "max pixel difference vs base (0-255) | pixels differing |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['photo']} | failed: {r['error'][-200:]} |" + " |" * 9)
            continue
        d = r["difference_vs_base"] or {}
        lines.append(f"| {r['case']} | {r['photo']} | {r['side']} | {r['runs']} | {r['median_s']} | {r['min_s']} | "
                     f"{r['speedup_vs_base']}x | {r['peak_rss_mb']} | {r['rss_vs_base']}x | {r['faces']} | "
                     f"{d.get('max_abs', '-')} | {d.get('differing_pixels', '-')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cli_vs_base", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, required=True, help="a worktree of the base commit (with .venv beside)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results/<device>)")
    p.add_argument("--rounds", type=int, default=3, help="timed runs per side and case (default: %(default)s)")
    p.add_argument("--name", default="cli_vs_base", help="results file name (default: %(default)s)")
    p.add_argument("--case", action="append", default=None, help="only the cases whose name has this text (repeatable)")
    args = p.parse_args(argv)
    cases = tuple(c for c in CASES if not args.case or any(t in c.name for t in args.case))
    if not (args.base / "facerestore" / "cli.py").is_file():
        print(f"error: {args.base}: not a checkout of this project with the facerestore CLI", file=sys.stderr)
        return 2
    commit = subprocess.run(["git", "-C", str(args.base), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    start_load = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench(args.base, commit, args.rounds, Path(tmp), cases)
    result = {"base": commit, "device": device_name(), "cpu_flags": reported_flags(), "load_average_start": start_load,
              "command": "python -m benchmarks.cli_vs_base " + " ".join(sys.argv[1:] if argv is None else argv),
              "seconds": round(time.perf_counter() - t0, 1), "rows": rows}
    save(args.out or Path("benchmarks/results") / device_slug(), args.name, result, table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
