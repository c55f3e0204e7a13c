"""Whole-photo face pipeline: detect, mesh, align, region maps, paste back."""
from __future__ import annotations

from runtime.face.pipeline import Face, FaceBatch, FaceOptions, FacePipeline, Skipped
from runtime.sessions import TorchSession


def torch_face_pipeline(options: FaceOptions | None = None, device: str = "cpu") -> FacePipeline:
    """The face pipeline with the committed MediaPipe ports running in PyTorch."""
    from training.face_nets import load_face_detector, load_face_mesh

    return FacePipeline(TorchSession(load_face_detector(), device), TorchSession(load_face_mesh(), device), options)


__all__ = ["Face", "FaceBatch", "FaceOptions", "FacePipeline", "Skipped", "torch_face_pipeline"]
