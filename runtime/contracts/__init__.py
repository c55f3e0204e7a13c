"""One contract per exported network (docs/ARCHITECTURE.md): tensor names, shapes, dynamic
axes, TensorRT profile, precision and parity tolerance, read by export, engine builds, Triton
configs and runtime sessions alike. Pure data: importing them loads no torch. No tensor name
is typed anywhere else. Every network by name (CONTRACTS) and the model groups are in the
registry of restorers (runtime/restorers/): the face networks here, each restorer's own."""
from runtime.contracts.base import BATCH, NetworkContract, TensorSpec
from runtime.contracts.face import FACE_DETECTOR, FACE_MESH

FACE_CONTRACTS = (FACE_DETECTOR, FACE_MESH)

__all__ = ["BATCH", "FACE_CONTRACTS", "FACE_DETECTOR", "FACE_MESH", "NetworkContract", "TensorSpec"]
