"""Helpers of the python-backend models in triton_repo/ (face_preprocess, <restorer>_faces,
face_postprocess, and the ONNX Runtime network models of the ``cpu`` rendering).

Importable only inside Triton's python-backend stub, where ``triton_python_backend_utils``
exists. The models call the same runtime code as the in-process path (FacePipeline, the
restorers, decode/encode); this module only moves tensors in and out of Triton.
"""
from __future__ import annotations

import sys
import traceback

import numpy as np
import triton_python_backend_utils as pb_utils

from runtime.contracts.base import NetworkContract
from runtime.contracts.service import ServiceTensor, triton_dims
from runtime.face.pipeline import FaceBatch
from runtime.imageio import ImageError


def tensor(request, spec: ServiceTensor) -> np.ndarray | None:
    """The request's input named by `spec`, or None when an optional input was not sent."""
    t = pb_utils.get_input_tensor_by_name(request, spec.name)
    return None if t is None else t.as_numpy()


def scalar(request, spec: ServiceTensor, default=None):
    """A one-element input as a Python value (bytes for TYPE_STRING), `default` when absent."""
    arr = tensor(request, spec)
    if arr is None:
        return default
    if arr.size != 1:
        raise ValueError(f"input {spec.name} must hold one value, got shape {list(arr.shape)}")
    value = arr.reshape(-1)[0]
    return value if spec.dtype == "bytes" else value.item()


def respond(outputs: dict[ServiceTensor, object]):
    """An InferenceResponse with one tensor per spec, cast to the spec's dtype."""
    return pb_utils.InferenceResponse([pb_utils.Tensor(s.name, np.ascontiguousarray(np.asarray(v, s.numpy_dtype)))
                                       for s, v in outputs.items()])


def fail(model: str, exc: BaseException):
    """An error response: bad input (ImageError, ValueError) is the client's; anything else is
    also logged with its traceback on the server."""
    bad_input = isinstance(exc, (ImageError, ValueError))
    if not bad_input:
        print(f"{model}: {traceback.format_exc()}", file=sys.stderr, flush=True)
    code = getattr(pb_utils.TritonError, "INVALID_ARG" if bad_input else "INTERNAL", None)
    error = pb_utils.TritonError(f"{model}: {exc}", code) if code is not None else pb_utils.TritonError(f"{model}: {exc}")
    return pb_utils.InferenceResponse(error=error)


def face_batch(crops: np.ndarray, label_maps: np.ndarray | None = None,
               affines: np.ndarray | None = None) -> FaceBatch:
    """A FaceBatch carrying what the next step reads (crops + label maps for the restorers,
    affines for paste-back); the other fields are zero."""
    n = len(crops if crops is not None else affines)
    size = crops.shape[1] if crops is not None else 0
    zeros = np.zeros
    return FaceBatch(crops=crops if crops is not None else zeros((n, 0, 0, 3), np.float32),
                     affines=affines if affines is not None else zeros((n, 2, 3)),
                     points5=zeros((n, 5, 2), np.float32), landmarks=zeros((n, 468, 2), np.float32),
                     label_maps=label_maps if label_maps is not None else zeros((n, size, size), np.uint8),
                     boxes=zeros((n, 3, 4), np.float32))


class BlsNet:
    """A network served as its own Triton model, called from a python model through BLS with
    the session interface of runtime.sessions (inputs in contract order -> tuple of outputs).

    Batched Triton models refuse batch size 0 and batches over their max_batch_size (the
    contract's max_batch): an empty batch is answered here with empty outputs without a call,
    a larger one goes in chunks of max_batch."""

    def __init__(self, contract: NetworkContract) -> None:
        self.contract = contract
        self.wire_shapes = [triton_dims(s)[0] for s in contract.inputs]

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        c = self.contract
        n = len(inputs[0])
        if n == 0:
            return tuple(np.zeros(s.concrete(0), s.dtype) for s in c.outputs)
        parts = []
        for start in range(0, n, c.max_batch):
            count = min(c.max_batch, n - start)
            tensors = [pb_utils.Tensor(s.name, np.ascontiguousarray(x[start:start + count], s.dtype).reshape(count, *dims))
                       for s, x, dims in zip(c.inputs, inputs, self.wire_shapes)]
            response = pb_utils.InferenceRequest(model_name=c.name, inputs=tensors,
                                                 requested_output_names=c.output_names).exec()
            if response.has_error():
                raise RuntimeError(f"model {c.name}: {response.error().message()}")
            parts.append([pb_utils.get_output_tensor_by_name(response, s.name).as_numpy().reshape(s.concrete(count))
                          for s in c.outputs])
        return tuple(np.concatenate(p) for p in zip(*parts))
