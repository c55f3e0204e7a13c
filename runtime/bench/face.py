"""Face-pipeline stages (detect, mesh, align, paste-back, end to end) on a real multi-face photo."""
from __future__ import annotations

import numpy as np
import torch

from runtime.bench.timing import device_name, stats, time_ms
from runtime.face import torch_face_pipeline
from runtime.face.detect import detect_faces
from runtime.face.mesh import mesh_faces
from runtime.imageio import Photo
from runtime.samples import group_photo


def bench_face_pipeline(repeats: int = 20, max_seconds: float | None = None) -> dict:
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
        s = stats(time_ms(fn, repeats, warmup=2, max_seconds=max_seconds))
        rows.append({"stage": name, **s, "ms_per_face": round(s["median_ms"] / n, 2)})
    return {"device": device_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "photo": f"runtime.samples.group_photo() {rgb8.shape[1]}x{rgb8.shape[0]}", "faces": n,
            "stages": rows}


def face_table(result: dict) -> str:
    """The face-pipeline benchmark as a Markdown table with its context."""
    lines = [f"Face pipeline on {result['photo']} ({result['faces']} faces), {result['device']}, "
             f"torch {result['torch']}, {result['threads']} threads", "",
             "| stage | runs | median ms | p90 ms | p99 ms | ms per face |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['stage']} | {r['runs']} | {r['median_ms']} | {r['p90_ms']} | {r['p99_ms']} | {r['ms_per_face']} |"
              for r in result["stages"]]
    return "\n".join(lines) + "\n"
