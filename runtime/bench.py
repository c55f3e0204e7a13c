"""CPU benchmarks, saved as JSON + Markdown tables: the face pipeline (detect / mesh / align /
paste per face on a real multi-face photo) and the SaFM restorer (torch eager vs ONNX Runtime)."""
from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

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
    """A short name of this CPU (or 'cpu')."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def time_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> list[float]:
    """Wall-clock milliseconds of `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def bench_face_pipeline(repeats: int = 20) -> dict:
    """Time each face-pipeline stage on the sample group photo (torch CPU, this machine)."""
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
        ms = time_ms(fn, repeats)
        med = statistics.median(ms)
        rows.append({"stage": name, "median_ms": round(med, 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
                     "ms_per_face": round(med / n, 2)})
    return {"device": device_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "photo": f"runtime.samples.group_photo() {rgb8.shape[1]}x{rgb8.shape[0]}", "faces": n,
            "repeats": repeats, "stages": rows}


def markdown_table(result: dict) -> str:
    """The benchmark as a Markdown table with its context."""
    lines = [f"Face pipeline on {result['photo']} ({result['faces']} faces), {result['device']}, "
             f"torch {result['torch']}, {result['threads']} threads, {result['repeats']} runs", "",
             "| stage | median ms | p90 ms | ms per face |", "|---|---:|---:|---:|"]
    lines += [f"| {r['stage']} | {r['median_ms']} | {r['p90_ms']} | {r['ms_per_face']} |" for r in result["stages"]]
    return "\n".join(lines) + "\n"


def bench_safm(checkpoints: list[Path], onnx_root: Path, repeats: int, batches: tuple[int, ...] = (1, 4)) -> dict:
    """SaFM per-face latency, torch eager fp32 vs ONNX Runtime (CPU), same run, on real aligned
    faces; ONNX files are `<onnx_root>/<checkpoint stem>/safm.onnx`. Also parameters and FLOPs/face."""
    from torch.utils.flop_counter import FlopCounterMode

    from runtime.contracts.safm import SAFM
    from runtime.sessions import onnx_session

    rows = []
    for ckpt in checkpoints:
        module = SAFM.build_module(ckpt)
        torch_run = TorchSession(module)
        ort_run = onnx_session(SAFM, onnx_root / ckpt.stem, ckpt)
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            module(*(torch.from_numpy(x) for x in SAFM.sample_inputs(1)))
        big = module.config.nf >= 64
        n = max(2, repeats // 5) if big else repeats  # the paper-scale model takes seconds per face here
        for batch in batches:
            inputs = SAFM.sample_inputs(batch)
            t_torch = statistics.median(time_ms(lambda: torch_run(*inputs), n, warmup=1))
            t_ort = statistics.median(time_ms(lambda: ort_run(*inputs), n, warmup=1))
            rows.append({"config": module.config.name, "batch": batch, "runs": n,
                         "params_m": round(sum(p.numel() for p in module.parameters()) / 1e6, 2),
                         "gflop_per_face": round(counter.get_total_flops() / 1e9, 1),
                         "torch_ms_per_face": round(t_torch / batch, 1), "ort_ms_per_face": round(t_ort / batch, 1),
                         "ort_speedup": round(t_torch / t_ort, 2)})
    return {"device": device_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "onnxruntime": __import__("onnxruntime").__version__, "rows": rows}


def safm_table(result: dict) -> str:
    """The SaFM benchmark as a Markdown table."""
    lines = [f"SaFM restorer, {result['device']}, torch {result['torch']} eager fp32 vs onnxruntime "
             f"{result['onnxruntime']} CPU, {result['threads']} threads, random weights, real aligned faces", "",
             "| config | params (M) | GFLOP/face | batch | torch ms/face | onnxruntime ms/face | onnxruntime speed-up | runs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['config']} | {r['params_m']} | {r['gflop_per_face']} | {r['batch']} | {r['torch_ms_per_face']} | "
              f"{r['ort_ms_per_face']} | {r['ort_speedup']}x | {r['runs']} |" for r in result["rows"]]
    return "\n".join(lines) + "\n"


def _save(folder: Path, stem: str, result: dict, table: str) -> None:
    write_atomic(folder / f"{stem}.json", json.dumps(result, indent=2).encode())
    write_atomic(folder / f"{stem}.md", table.encode())
    print(table)


def run_bench(out_dir: Path, repeats: int, safm_checkpoints: list[Path], onnx_root: Path, command: str) -> Path:
    """Run the benchmarks, print their tables, save JSON + Markdown under out_dir/cpu."""
    folder = out_dir / "cpu"
    result = bench_face_pipeline(repeats)
    result["command"] = command
    _save(folder, "face_pipeline", result, markdown_table(result))
    if safm_checkpoints:
        result = bench_safm(safm_checkpoints, onnx_root, repeats)
        result["command"] = command
        _save(folder, "safm", result, safm_table(result))
    return folder
