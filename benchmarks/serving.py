"""Serving overhead: one photo through the Triton ensemble over HTTP and gRPC against the same
work called directly in-process (decode, detect, mesh, align, SaFM, paste back, encode PNG) on
the very ONNX files the server loads. The difference is what serving costs: transport,
(de)serialisation, the python-backend processes and the ensemble scheduling."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from benchmarks.timing import device_name, interleaved_ms, stats
from runtime.restorers import CONTRACTS
from runtime.contracts.base import NetworkContract
from runtime.face import FacePipeline
from runtime.imageio import decode_image, encode_image
from runtime.restore import restore_photo
from runtime.restorers.safm.restorer import SaFMRestorer
from runtime.samples import ASTRONAUT, group_photo, read_rgb8
from runtime.serving.serve import TritonServer
from runtime.sessions import OnnxRuntimeSession

DIRECT = "direct in-process (onnxruntime)"


def png_bytes(rgb8: np.ndarray) -> bytes:
    """A uint8 RGB photo as PNG bytes (lossless: both sides of a comparison decode the same pixels)."""
    return cv2.imencode(".png", rgb8[..., ::-1])[1].tobytes()


def sample_photos() -> dict[str, bytes]:
    """The photos sent: one face (astronaut, 512x512) and three faces (the group photo), as PNG."""
    group = group_photo()
    return {"astronaut 512x512": png_bytes(read_rgb8(ASTRONAUT)), f"group {group.shape[1]}x{group.shape[0]}": png_bytes(group)}


def served_session(repository: Path, contract: NetworkContract) -> OnnxRuntimeSession:
    """An ONNX Runtime session on the model file a cpu-rendered repository serves for `contract`."""
    path = Path(repository) / contract.name / "1" / "model.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; render the repository with "
                                f"`python -m export triton-repo --target cpu --restorers safm`")
    return OnnxRuntimeSession(str(path), contract)


def bench_serving(server: TritonServer, repeats: int, max_seconds: float | None = None,
                  photos: dict[str, bytes] | None = None) -> dict:
    """Per photo: the direct call and the served SaFM ensemble over HTTP and gRPC, timed in
    interleaved rounds; each served row carries its overhead over the direct call (ms and %)."""
    from runtime.serving.client import RestoreClient

    repo = server.repository
    pipeline = FacePipeline(served_session(repo, CONTRACTS["face_detector"]), served_session(repo, CONTRACTS["face_mesh"]))
    restorer = SaFMRestorer(served_session(repo, CONTRACTS["safm"]))

    def direct(data: bytes) -> bytes:
        out, _, _, _ = restore_photo(decode_image(data), pipeline, restorer)
        return encode_image(out, ".png")

    rows = []
    with RestoreClient(server.http_url, "http", "safm") as http, RestoreClient(server.grpc_url, "grpc", "safm") as grpc:
        for photo, data in (photos or sample_photos()).items():
            faces = grpc.restore(data, photo).faces
            calls = {DIRECT: lambda: direct(data), "triton http": lambda: http.restore(data, photo),
                     "triton grpc": lambda: grpc.restore(data, photo)}
            times = interleaved_ms(calls, repeats, warmup=1, max_seconds=max_seconds)
            base = float(np.median(times[DIRECT]))
            for path, ms in times.items():
                row = {"photo": photo, "faces": faces, "path": path, **stats(ms)}
                if path != DIRECT:
                    row["overhead_ms"] = round(row["median_ms"] - base, 1)
                    row["overhead_pct"] = round(100 * (row["median_ms"] / base - 1), 1)
                rows.append(row)
                print(f"serving | {photo} | {path}: {row['median_ms']} ms ({row['runs']} runs)", file=sys.stderr)
    return {"device": device_name(), "server": "tritonserver 2.51 (nvidia-pytriton), cpu rendering, 127.0.0.1",
            "restorer": "safm (the repository's ONNX files)", "rows": rows}


def serving_table(result: dict) -> str:
    """The serving benchmark as a Markdown table."""
    lines = [f"Serving overhead on {result['device']}: {result['server']}; restorer {result['restorer']}", "",
             "| photo | faces | path | runs | median ms | p90 ms | p99 ms | overhead ms | overhead % |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['photo']} | {r['faces']} | {r['path']} | {r['runs']} | {r['median_ms']} | {r['p90_ms']} | "
              f"{r['p99_ms']} | {r.get('overhead_ms', '')} | {r.get('overhead_pct', '')} |" for r in result["rows"]]
    return "\n".join(lines) + "\n"
