"""Whole-photo face pipeline: detect, mesh, align, region maps, paste back."""
from __future__ import annotations

from pathlib import Path

from runtime.face.pipeline import Face, FaceBatch, FaceOptions, FacePipeline, Skipped


def torch_face_pipeline(options: FaceOptions | None = None, device: str = "cpu") -> FacePipeline:
    """The face pipeline with the committed MediaPipe ports running in PyTorch (the reference)."""
    from runtime.contracts.face import FACE_DETECTOR, FACE_MESH
    from runtime.sessions import TorchSession
    from training.face_nets import load_face_detector, load_face_mesh

    return FacePipeline(TorchSession(load_face_detector(), FACE_DETECTOR, device),
                        TorchSession(load_face_mesh(), FACE_MESH, device), options)


def onnx_face_pipeline(detector_dir: Path, mesh_dir: Path, options: FaceOptions | None = None,
                       device: str = "cpu", threads: int | None = None) -> FacePipeline:
    """The face pipeline on ONNX Runtime: <detector_dir>/face_detector.onnx and
    <mesh_dir>/face_mesh.onnx, exported from the committed weights (SessionError otherwise).
    `threads`: intra-op threads, None: one per physical core (with spinning off, 2 threads ran
    the 5-view detector batch 2.2x and a 3-face mesh batch 1.8x faster than 1 on a loaded
    2-core machine, and tied at batch 1: benchmarks/NOTES.md). Imports no torch."""
    from runtime.contracts.face import FACE_DETECTOR, FACE_MESH
    from runtime.sessions import onnx_session

    return FacePipeline(onnx_session(FACE_DETECTOR, detector_dir, None, device, threads),
                        onnx_session(FACE_MESH, mesh_dir, None, device, threads), options)


__all__ = ["Face", "FaceBatch", "FaceOptions", "FacePipeline", "Skipped", "onnx_face_pipeline", "torch_face_pipeline"]
