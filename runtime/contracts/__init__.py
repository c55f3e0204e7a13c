"""One contract per exported network (docs/ARCHITECTURE.md): tensor names, shapes, dynamic
axes, TensorRT profile, precision and parity tolerance, read by export, engine builds, Triton
configs and runtime sessions alike. Pure data: importing them loads no torch. No tensor name
is typed anywhere else."""
from runtime.contracts.authface import AUTHFACE_CONTRACTS
from runtime.contracts.base import BATCH, NetworkContract, TensorSpec
from runtime.contracts.face import FACE_DETECTOR, FACE_MESH
from runtime.contracts.safm import SAFM

CONTRACTS: dict[str, NetworkContract] = {c.name: c for c in (FACE_DETECTOR, FACE_MESH, SAFM, *AUTHFACE_CONTRACTS)}
MODEL_GROUPS: dict[str, list[str]] = {"face": ["face_detector", "face_mesh"], "safm": ["safm"],
                                   "authface": [c.name for c in AUTHFACE_CONTRACTS]}

__all__ = ["BATCH", "CONTRACTS", "MODEL_GROUPS", "NetworkContract", "TensorSpec"]
