"""Data-parallel training scaling: steps/s and samples/s of a trainer on 1 rank and on N ranks
(torchrun, gloo on CPU / NCCL on CUDA) with the same per-rank batch and the same threads per rank
(on a CPU: 1 rank on `--threads` cores against N ranks on N x `--threads`; one process of 2
threads beside a loaded machine's other work spends most of its time in OpenMP's barriers), timed
in interleaved rounds (1 rank, N ranks, 1 rank, ...) from the per-step `seconds` the trainers log
(rank 0's; the first steps of each run, loader start and allocation, are left out).

    python -m benchmarks.training_ddp --data CACHE [--ranks 2 --steps 8 --rounds 3 --batch 1 --threads 1] --out DIR
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.report import save
from benchmarks.timing import device_name
from training.cpu import reported_flags

WARMUP_STEPS = 2
TRAINER = ["--config", "safm-tiny", "--no-perceptual", "--no-identity", "--no-amp", "--log-every", "1",
           "--save-every", "100000"]


def run_once(data: Path, out: Path, ranks: int, steps: int, batch: int, device: str, threads: int) -> list[float]:
    """One training run; its per-step seconds after the warm-up."""
    cmd = (["-m", "training.safm"] if ranks == 1 else
           ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}", "-m", "training.safm"])
    args = ["train", *TRAINER, "--data", str(data), "--out", str(out), "--steps", str(steps),
            "--batch-size", str(batch), "--device", device]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, *cmd, *args], cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd + args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    with open(out / "losses.csv", newline="") as fh:
        return [float(r["seconds"]) for r in csv.DictReader(fh)][WARMUP_STEPS:]


def measure(data: Path, ranks: int, steps: int, rounds: int, batch: int, device: str, threads: int) -> dict:
    """Interleaved rounds of 1 rank and `ranks` ranks; the table's rows."""
    seconds: dict[int, list[float]] = {1: [], ranks: []}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for n in (1, ranks):
                seconds[n] += run_once(data, Path(tmp) / f"r{r}-n{n}", n, steps, batch, device, threads)
                print(f"round {r + 1}/{rounds}, {n} rank(s): median {statistics.median(seconds[n]):.3f} s/step",
                      flush=True)
    load.append(os.getloadavg()[0])
    rows = []
    for n, s in seconds.items():
        median = statistics.median(s)
        rows.append({"ranks": n, "batch_per_rank": batch, "global_batch": n * batch, "steps_timed": len(s),
                     "median_s_per_step": round(median, 4), "steps_per_s": round(1 / median, 3),
                     "samples_per_s": round(n * batch / median, 3)})
    base = rows[0]["samples_per_s"]
    for row in rows:
        row["samples_speedup"] = round(row["samples_per_s"] / base, 2)
    return {"title": "SaFM (safm-tiny, 512 px, L1 + adversarial, fp32) data-parallel training", "device": device_name()
            if device == "cpu" else torch.cuda.get_device_name(), "cpu_flags": reported_flags(), "cores": os.cpu_count(),
            "torch": torch.__version__, "python": platform.python_version(), "device_kind": device,
            "threads_per_rank": threads, "load_average_before_after": load, "steps_per_run": steps, "warmup_steps_left_out": WARMUP_STEPS, "rounds": rounds, "rows": rows}


def table(result: dict) -> str:
    flags = f" ({', '.join(result['cpu_flags'])})" if result["cpu_flags"] else ""
    lines = [f"{result['title']} on {result['device']}{flags}, {result['cores']} cores (shared with other work), "
             f"{result['threads_per_rank']} thread(s) a rank, load average {result['load_average_before_after']} "
             f"(before, after), torch {result['torch']}; "
             f"{result['rounds']} interleaved rounds of {result['steps_per_run']} steps a run (the first "
             f"{result['warmup_steps_left_out']} left out); rank 0's per-step wall time", "",
             "| ranks | batch/rank | global batch | steps timed | median s/step | steps/s | samples/s | samples/s vs 1 rank |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['ranks']} | {r['batch_per_rank']} | {r['global_batch']} | {r['steps_timed']} | {r['median_s_per_step']} | "
              f"{r['steps_per_s']} | {r['samples_per_s']} | {r['samples_speedup']}x |" for r in result["rows"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_ddp", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="face cache (facerestore curate)")
    parser.add_argument("--out", type=Path, required=True, help="results folder (training_ddp.json / .md)")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="steps a run (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1, help="per-rank batch (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (one GPU a rank)")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads a rank (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.steps <= WARMUP_STEPS:
        parser.error(f"--steps must exceed the {WARMUP_STEPS} warm-up steps")
    result = measure(args.data, args.ranks, args.steps, args.rounds, args.batch, args.device, args.threads)
    result["command"] = "python -m benchmarks.training_ddp " + " ".join(sys.argv[1:] if argv is None else argv)
    save(args.out, "training_ddp", result, table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
