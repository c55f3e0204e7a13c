"""Benchmarks, saved as JSON + Markdown (+ PNG chart) under benchmarks/results/<device>/:
- face_pipeline: detect / mesh / align / paste per face on a real multi-face photo;
- safm: the SaFM restorer on every path available here, batch 1/4/8, in one run;
- authface: each AuthFace network (UNet+ControlNet = one step), the whole restoration, and the
  FLOP floor of the real SDXL architecture;
- published: the published restorers' networks (GFPGAN, CodeFormer, RestoreFormer(++), GPEN), torch
  eager vs ONNX Runtime in one run;
- serving: Triton over HTTP and gRPC against the direct in-process call.
`make bench` runs them all on the CPU; `facerestore bench --help` says how.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmarks.face import bench_face_pipeline, face_table
from benchmarks.report import bar_chart, latency_table, save
from benchmarks.timing import device_name, device_slug, matmul_rate_gflops
from training.cpu import reported_flags


@dataclass
class BenchPlan:
    """What to benchmark. Unset parts are not run (the face pipeline always is)."""

    out_dir: Path = Path("benchmarks/results")
    repeats: int = 20                    # timed runs per measurement, at most
    max_seconds: float | None = 5.0      # ... or fewer (at least 3) once this much time was spent
    onnx_dir: Path = Path("engines/bench")
    safm: list[Path] = field(default_factory=list)   # checkpoints; ONNX in onnx_dir/<stem>/
    authface: bool = False
    authface_checkpoint: Path | None = None          # None: the random-init tiny model; ONNX in onnx_dir/authface/
    authface_steps: int = 20
    published: dict[str, Path | None] = field(default_factory=dict)   # name -> weights (None: random); ONNX in onnx_dir/<name>/
    triton_repo: Path | None = None      # a cpu-rendered repository serving safm
    compile: bool = False
    nchw: bool = False                   # also time eager fp32 in the NCHW layout
    face_onnx: tuple[Path, Path] | None = None  # folders of face_detector.onnx, face_mesh.onnx: ORT rows
    command: str = "facerestore bench"

    def check(self) -> None:
        """Refuse (FileNotFoundError naming the path) inputs that are missing, before any timing."""
        for ckpt in self.safm:
            if not Path(ckpt).with_suffix(".safetensors").is_file():
                raise FileNotFoundError(f"{ckpt}: no such SaFM checkpoint (make one with `python -m training.safm init`)")
        if self.authface_checkpoint is not None and not Path(self.authface_checkpoint).is_dir():
            raise FileNotFoundError(f"{self.authface_checkpoint}: no such AuthFace checkpoint folder")
        from runtime.contracts.service import SERVICES

        if self.triton_repo is not None and not (Path(self.triton_repo) / SERVICES["safm"].ensemble / "config.pbtxt").is_file():
            raise FileNotFoundError(f"{self.triton_repo}: not a model repository serving safm; render one with "
                                    f"`python -m export triton-repo --target cpu --restorers safm --out {self.triton_repo}`")


def _context(title: str, peak: float, weights: str) -> dict:
    return {"title": title, "device": device_name(), "cpu_flags": reported_flags(), "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__, "threads": torch.get_num_threads(),
            "matmul_peak_gflops": round(peak, 1), "weights": weights}


def sdxl_table(rows: list[dict]) -> str:
    """The SDXL-architecture FLOP floor as a Markdown table."""
    lines = ["SDXL architecture (meta device, FlopCounterMode) per 512x512 face: the floor at this device's "
             "measured matmul rate and at an H100's 800 TFLOP/s dense fp16", "",
             "| network | params M | TFLOP/face | floor ms here | floor ms H100 |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['network']} | {r['params_m']} | {r['tflop_per_face']} | {r['floor_ms_here']} | {r['floor_ms_h100']} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def run_bench(plan: BenchPlan) -> Path:
    """Run the planned benchmarks, print their tables, save them under out_dir/<device>."""
    from benchmarks.restorers import bench_authface, bench_published, bench_safm, bench_sdxl, sdxl_floor

    plan.check()
    folder = plan.out_dir / device_slug()
    result = {**bench_face_pipeline(plan.repeats, plan.max_seconds, plan.face_onnx), "command": plan.command}
    save(folder, "face_pipeline", result, face_table(result))
    peak = matmul_rate_gflops() if plan.safm or plan.authface or plan.published else 0.0
    if plan.safm:
        result = {**_context("SaFM restorer", peak, "random (latency does not depend on them)"),
                  "inputs": "real aligned faces", "command": plan.command,
                  "rows": bench_safm(plan.safm, plan.onnx_dir, plan.repeats, plan.max_seconds, peak, plan.compile,
                                           plan.nchw)}
        save(folder, "safm", result, latency_table(result), bar_chart(result["rows"], f"SaFM ms/face (log), {result['device']}"))
    if plan.published:
        weights = ", ".join(f"{n}: {w or 'random, seed 0 (latency does not depend on the weights)'}"
                            for n, w in plan.published.items())
        result = {**_context("Published restorers", peak, weights), "inputs": "real aligned faces (w 0.5)",
                  "command": plan.command,
                  "rows": bench_published(plan.published, plan.onnx_dir, plan.repeats, plan.max_seconds, peak)}
        save(folder, "published", result, latency_table(result),
             bar_chart(result["rows"], f"published restorers ms/face (log), {result['device']}"))
    if plan.authface:
        weights = str(plan.authface_checkpoint or "random-init tiny (latency does not depend on weights)")
        rows = bench_authface(plan.authface_checkpoint, plan.onnx_dir / "authface", plan.authface_steps, plan.repeats,
                              plan.max_seconds, peak, plan.compile, plan.nchw)
        floor = sdxl_floor(peak)
        if torch.cuda.is_available():  # the real-size networks fit a GPU: time them too
            try:
                rows += bench_sdxl(plan.repeats, plan.max_seconds, floor, peak)
            except RuntimeError as exc:   # out of memory on a small GPU: the tiny rows still count
                print(f"note: authface-sdxl not timed: {exc}", file=sys.stderr)
        result = {**_context("AuthFace restorer", peak, weights), "command": plan.command,
                  "inputs": "real aligned faces, their latents noised to real timesteps; ddim scheduler",
                  "rows": rows, "sdxl_floor": floor}
        save(folder, "authface", result, latency_table(result) + "\n" + sdxl_table(result["sdxl_floor"]),
             bar_chart(rows, f"AuthFace ms/face (log), {result['device']}"))
    if plan.triton_repo is not None:
        from benchmarks.serving import bench_serving, serving_table
        from runtime.serving.serve import TritonServer

        with TritonServer(plan.triton_repo, log=plan.triton_repo.parent / "tritonserver.log",
                          exit_timeout=5) as server:
            # served and direct times differ by a few %: three times the budget, for enough runs
            result = {**bench_serving(server, plan.repeats, 3 * plan.max_seconds), "command": plan.command}
        save(folder, "serving", result, serving_table(result))
    return folder
