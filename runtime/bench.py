"""Face-pipeline benchmark: detect / mesh / align / paste milliseconds per face on a real
multi-face photo, saved as JSON + a Markdown table."""
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


def run_bench(out_dir: Path, repeats: int) -> Path:
    """Run the face-pipeline benchmark, print its table, save JSON + Markdown under out_dir/cpu."""
    result = bench_face_pipeline(repeats)
    result["command"] = f"facerestore bench --out {out_dir} --repeats {repeats}"
    folder = out_dir / "cpu"
    write_atomic(folder / "face_pipeline.json", json.dumps(result, indent=2).encode())
    table = markdown_table(result)
    write_atomic(folder / "face_pipeline.md", table.encode())
    print(table)
    return folder
