"""Benchmarks, saved as JSON + Markdown (+ PNG chart) under benchmarks/results/<device>/:
- the face pipeline (detect / mesh / align / paste per face on a real multi-face photo);
- the SaFM restorer on every path available here (torch eager fp32 = the reference, torch.compile,
  ONNX Runtime, TensorRT and torch fp16/bf16 on CUDA), batch 1/4/8, measured in one run.
"""
from __future__ import annotations

import json
import platform
import re
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from runtime.face import torch_face_pipeline
from runtime.face.detect import detect_faces
from runtime.face.mesh import mesh_faces
from runtime.files import write_atomic
from runtime.imageio import Photo
from runtime.samples import group_photo
from runtime.sessions import TorchSession


def device_name() -> str:
    """The GPU's name when CUDA is present, else this CPU's model name."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def device_slug() -> str:
    """A folder name for this device's results, e.g. 'cpu-amd-epyc' or 'nvidia-h100-80gb-hbm3'."""
    name = re.sub(r"[^a-z0-9]+", "-", device_name().lower()).strip("-")
    return name if torch.cuda.is_available() else f"cpu-{name}"


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> list[float]:
    """Wall-clock milliseconds of `repeats` calls after `warmup` untimed ones, the device
    synchronised around each timed call."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        _sync()
        t0 = time.perf_counter()
        fn()
        _sync()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def stats(ms: list[float]) -> dict[str, float]:
    """Median, p90, p99 and mean of timings."""
    return {"median_ms": round(float(np.median(ms)), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "mean_ms": round(float(np.mean(ms)), 2)}


def reset_peak_memory() -> None:
    """Reset the process's peak RSS (Linux clear_refs) and CUDA's peak allocation."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> float:
    """Peak CUDA allocation when on GPU, else the process's peak RSS, in MB."""
    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def matmul_rate_gflops() -> float:
    """The device's measured dense matmul rate (fp16 8192^2 on CUDA, fp32 2048^2 on CPU), GFLOP/s."""
    cuda = torch.cuda.is_available()
    n, dtype, dev = (8192, torch.float16, "cuda") if cuda else (2048, torch.float32, "cpu")
    a, b = torch.randn(n, n, dtype=dtype, device=dev), torch.randn(n, n, dtype=dtype, device=dev)
    ms = float(np.median(time_ms(lambda: a @ b, repeats=10, warmup=3)))
    return 2 * n ** 3 / (ms / 1e3) / 1e9


def bench_face_pipeline(repeats: int = 20) -> dict:
    """Time each face-pipeline stage on the sample group photo (torch, this machine)."""
    pipeline = torch_face_pipeline()
    rgb8 = group_photo()
    photo = Photo(rgb=rgb8.astype(np.float32) / 255.0)
    faces, _ = pipeline.find(photo)
    detections = [f.detection for f in faces]
    batch = pipeline.align(photo, faces)
    n = len(faces)
    stages = {
        "detect": lambda: detect_faces(pipeline.detector, rgb8),
        "mesh": lambda: mesh_faces(pipeline.mesh, rgb8, detections),
        "align": lambda: pipeline.align(photo, faces),
        "paste": lambda: pipeline.paste(photo, batch, batch.crops),
        "end_to_end": lambda: pipeline.paste(photo, pipeline.align(photo, pipeline.find(photo)[0]), batch.crops),
    }
    rows = []
    for name, fn in stages.items():
        s = stats(time_ms(fn, repeats))
        rows.append({"stage": name, **s, "ms_per_face": round(s["median_ms"] / n, 2)})
    return {"device": device_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "photo": f"runtime.samples.group_photo() {rgb8.shape[1]}x{rgb8.shape[0]}", "faces": n,
            "repeats": repeats, "stages": rows}


def face_table(result: dict) -> str:
    """The face-pipeline benchmark as a Markdown table with its context."""
    lines = [f"Face pipeline on {result['photo']} ({result['faces']} faces), {result['device']}, "
             f"torch {result['torch']}, {result['threads']} threads, {result['repeats']} runs", "",
             "| stage | median ms | p90 ms | p99 ms | ms per face |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['stage']} | {r['median_ms']} | {r['p90_ms']} | {r['p99_ms']} | {r['ms_per_face']} |"
              for r in result["stages"]]
    return "\n".join(lines) + "\n"


def safm_paths(checkpoint: Path, onnx_root: Path, compile_: bool) -> dict[str, Callable[..., tuple]]:
    """Every SaFM path available here, as callables on the contract's numpy inputs."""
    from runtime.contracts.safm import SAFM
    from runtime.sessions import SessionError, onnx_session

    paths: dict[str, Callable[..., tuple]] = {"torch eager fp32": TorchSession(SAFM.build_module(checkpoint))}
    cuda = torch.cuda.is_available()
    if cuda:
        paths["torch eager fp16"] = TorchSession(SAFM.build_module(checkpoint), "cuda", torch.float16)
        paths["torch eager bf16"] = TorchSession(SAFM.build_module(checkpoint), "cuda", torch.bfloat16)
    if compile_:
        session = TorchSession(SAFM.build_module(checkpoint), "cuda" if cuda else "cpu",
                               torch.float16 if cuda else torch.float32)
        session.module = torch.compile(session.module, mode="max-autotune" if cuda else "default")
        paths["torch.compile" + (" fp16" if cuda else " fp32")] = session
    try:
        paths["onnxruntime" + (" cuda" if cuda else " cpu")] = onnx_session(SAFM, onnx_root / checkpoint.stem, checkpoint,
                                                                             "cuda" if cuda else "cpu")
    except SessionError as exc:
        print(f"note: onnxruntime path skipped: {exc}")
    if cuda:
        try:
            from runtime.tensorrt_session import tensorrt_session

            paths["tensorrt fp16 + cuda graph"] = tensorrt_session(SAFM, onnx_root / checkpoint.stem, checkpoint, True)
        except Exception as exc:  # TensorRT missing, or no engine built for these weights
            print(f"note: tensorrt path skipped: {exc}")
    return paths


def bench_safm(checkpoints: list[Path], onnx_root: Path, repeats: int, batches: tuple[int, ...] = (1, 4, 8),
               compile_: bool = False) -> dict:
    """SaFM latency per path and batch on real aligned faces, with speed-up over torch eager fp32
    of the same batch, faces/s, fraction of the measured matmul peak and peak memory."""
    from torch.utils.flop_counter import FlopCounterMode

    from runtime.contracts.safm import SAFM

    peak = matmul_rate_gflops()
    rows = []
    for ckpt in checkpoints:
        module = SAFM.build_module(ckpt)
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            module(*(torch.from_numpy(x) for x in SAFM.sample_inputs(1)))
        gflop = counter.get_total_flops() / 1e9
        params = sum(p.numel() for p in module.parameters()) / 1e6
        # the paper-scale model takes seconds per face on a CPU: fewer runs, batches up to 4
        big = module.config.nf >= 64 and not torch.cuda.is_available()
        n = 2 if big else repeats
        for path, run in safm_paths(ckpt, onnx_root, compile_).items():
            for batch in [b for b in batches if b <= 4] if big else batches:
                inputs = SAFM.sample_inputs(batch)
                reset_peak_memory()
                s = stats(time_ms(lambda: run(*inputs), n, warmup=1))
                sec = s["median_ms"] / 1e3
                row = {"config": module.config.name, "params_m": round(params, 2), "gflop_per_face": round(gflop, 1),
                       "path": path, "batch": batch, "runs": n, **s,
                       "ms_per_face": round(s["median_ms"] / batch, 1), "faces_per_s": round(batch / sec, 2),
                       "peak_fraction": round(gflop * batch / sec / peak, 4), "peak_memory_mb": peak_memory_mb()}
                rows.append(row)
        for row in rows:
            if row["config"] == module.config.name:
                eager = next(r for r in rows if r["config"] == row["config"] and r["batch"] == row["batch"]
                             and r["path"] == "torch eager fp32")
                row["speedup_vs_eager"] = round(eager["median_ms"] / row["median_ms"], 2)
    return {"device": device_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "onnxruntime": __import__("onnxruntime").__version__, "matmul_peak_gflops": round(peak, 1),
            "weights": "random (latency does not depend on them)", "inputs": "real aligned faces", "rows": rows}


def safm_table(result: dict) -> str:
    """The SaFM benchmark as a Markdown table."""
    lines = [f"SaFM restorer on {result['device']}, torch {result['torch']}, onnxruntime {result['onnxruntime']}, "
             f"{result['threads']} threads; measured matmul peak {result['matmul_peak_gflops']} GFLOP/s; "
             f"{result['weights']}; {result['inputs']}", "",
             "| config | GFLOP/face | path | batch | median ms | p90 ms | p99 ms | ms/face | faces/s | "
             "speed-up vs eager | % of peak | peak MB |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['config']} | {r['gflop_per_face']} | {r['path']} | {r['batch']} | {r['median_ms']} | {r['p90_ms']} | "
              f"{r['p99_ms']} | {r['ms_per_face']} | {r['faces_per_s']} | {r['speedup_vs_eager']}x | "
              f"{100 * r['peak_fraction']:.1f} | {r['peak_memory_mb']} |" for r in result["rows"]]
    return "\n".join(lines) + "\n"


def bar_chart(rows: list[dict], title: str) -> np.ndarray:
    """A grouped bar chart (uint8 BGR image) of ms/face per (config, path) for each batch size."""
    groups = sorted({(r["config"], r["path"]) for r in rows}, key=lambda g: (g[0], g[1]))
    batches = sorted({r["batch"] for r in rows})
    colors = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148)]
    width, bar, gap = 1100, 18, 28
    height = 80 + len(groups) * (len(batches) * bar + gap)
    img = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(img, title[:110], (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    top = max(r["ms_per_face"] for r in rows)
    y = 50
    for config, path in groups:
        cv2.putText(img, f"{config} | {path}", (10, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        for i, b in enumerate(batches):
            r = next((r for r in rows if (r["config"], r["path"], r["batch"]) == (config, path, b)), None)
            if r is None:
                continue
            length = int(640 * np.log1p(r["ms_per_face"]) / np.log1p(top))
            y0 = y + 18 + i * bar
            cv2.rectangle(img, (300, y0), (300 + max(length, 1), y0 + bar - 4), colors[i % len(colors)], -1)
            cv2.putText(img, f"b{b}: {r['ms_per_face']} ms/face", (306 + length, y0 + bar - 6),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        y += len(batches) * bar + gap
    return img


def _save(folder: Path, stem: str, result: dict, table: str, chart: np.ndarray | None = None) -> None:
    write_atomic(folder / f"{stem}.json", json.dumps(result, indent=2).encode())
    write_atomic(folder / f"{stem}.md", table.encode())
    if chart is not None:
        write_atomic(folder / f"{stem}.png", cv2.imencode(".png", chart)[1].tobytes())
    print(table)


def run_bench(out_dir: Path, repeats: int, safm_checkpoints: list[Path], onnx_root: Path, command: str,
              compile_: bool = False) -> Path:
    """Run the benchmarks, print their tables, save them under out_dir/<device>."""
    folder = out_dir / device_slug()
    result = bench_face_pipeline(repeats)
    result["command"] = command
    _save(folder, "face_pipeline", result, face_table(result))
    if safm_checkpoints:
        result = bench_safm(safm_checkpoints, onnx_root, repeats, compile_=compile_)
        result["command"] = command
        _save(folder, "safm", result, safm_table(result),
              bar_chart(result["rows"], f"SaFM ms/face (log scale), {result['device']}"))
    return folder
