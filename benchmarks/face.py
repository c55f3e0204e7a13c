"""Face-pipeline stages (detect, mesh, align, paste-back, end to end) on a real multi-face photo,
on torch (the reference) and ONNX Runtime, each stage timed in interleaved rounds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.timing import device_name, interleaved_ms, stats
from runtime.face import FacePipeline, onnx_face_pipeline, torch_face_pipeline
from runtime.face.detect import detect_faces
from runtime.face.mesh import mesh_faces
from runtime.imageio import Photo, frame_photo
from runtime.samples import group_photo
from training.cpu import reported_flags


def _stages(pipeline: FacePipeline, photo: Photo) -> dict:
    """The stage calls of one pipeline on one photo."""
    rgb8 = photo.rgb8()
    faces, _ = pipeline.find(photo)
    detections = [f.detection for f in faces]
    batch = pipeline.align(photo, faces)
    min_face = pipeline.options.min_face_size
    return {
        "detect": lambda: detect_faces(pipeline.detector, rgb8, pipeline.options.min_score, min_face),
        "mesh": lambda: mesh_faces(pipeline.mesh, rgb8, detections),
        "align": lambda: pipeline.align(photo, faces),
        "paste": lambda: pipeline.paste(photo, batch, batch.crops),
        "end_to_end": lambda: pipeline.paste(photo, pipeline.align(photo, pipeline.find(photo)[0]), batch.crops),
    }


def bench_face_pipeline(repeats: int = 20, max_seconds: float | None = None,
                        onnx_dirs: tuple[Path, Path] | None = None) -> dict:
    """Time each face-pipeline stage on the sample group photo, on torch and (with the folders
    of face_detector.onnx and face_mesh.onnx) on ONNX Runtime, interleaved per stage."""
    rgb8 = group_photo()
    photo = frame_photo(rgb8)
    pipelines = {"torch": torch_face_pipeline()}
    if onnx_dirs is not None:
        pipelines["onnxruntime"] = onnx_face_pipeline(*onnx_dirs)
    n = len(pipelines["torch"].find(photo)[0])
    stages = {backend: _stages(p, photo) for backend, p in pipelines.items()}
    rows = []
    for name in stages["torch"]:
        times = interleaved_ms({b: s[name] for b, s in stages.items()}, repeats, warmup=2, max_seconds=max_seconds)
        for backend, ms in times.items():
            s = stats(ms)
            rows.append({"stage": name, "backend": backend, **s, "ms_per_face": round(s["median_ms"] / n, 2),
                         "speedup_vs_torch": round(float(np.median(times["torch"])) / s["median_ms"], 2)})
    return {"device": device_name(), "cpu_flags": reported_flags(), "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__, "threads": torch.get_num_threads(),
            "photo": f"runtime.samples.group_photo() {rgb8.shape[1]}x{rgb8.shape[0]}", "faces": n, "stages": rows}


def face_table(result: dict) -> str:
    """The face-pipeline benchmark as a Markdown table with its context."""
    lines = [f"Face pipeline on {result['photo']} ({result['faces']} faces), {result['device']} "
             f"({', '.join(result.get('cpu_flags', []))}), torch {result['torch']} ({result['threads']} threads), "
             f"onnxruntime {result.get('onnxruntime', '?')}; stages timed in interleaved rounds", "",
             "| stage | backend | runs | median ms | p90 ms | p99 ms | ms per face | speed-up vs torch |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['stage']} | {r['backend']} | {r['runs']} | {r['median_ms']} | {r['p90_ms']} | {r['p99_ms']} | "
              f"{r['ms_per_face']} | {r['speedup_vs_torch']}x |" for r in result["stages"]]
    return "\n".join(lines) + "\n"
