"""Helpers of the python-backend models in triton_repo/ (face_preprocess, <restorer>_faces,
face_postprocess, and the ONNX Runtime network models of the ``cpu`` rendering).

Importable only inside Triton's python-backend stub, where ``triton_python_backend_utils``
exists. The models call the same runtime code as the in-process path (FacePipeline, the
restorers, decode/encode); this module only moves tensors in and out of Triton.
"""
from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING

import numpy as np
import triton_python_backend_utils as pb_utils

from runtime.contracts.base import BATCH, NetworkContract, TensorSpec
from runtime.contracts.service import ServiceTensor, triton_dims
from runtime.face.pipeline import FaceBatch
from runtime.imageio import ImageError

if TYPE_CHECKING:
    import torch


def tensor(request, spec: ServiceTensor) -> np.ndarray | None:
    """The request's input named by `spec`, or None when an optional input was not sent."""
    t = pb_utils.get_input_tensor_by_name(request, spec.name)
    if t is None:
        return None
    if t.is_cpu():
        return t.as_numpy()
    from torch.utils.dlpack import from_dlpack   # a GPU input (FORCE_CPU_ONLY_INPUT_TENSORS "no")

    return from_dlpack(t.to_dlpack()).cpu().numpy()


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


INTERNAL = "internal error"   # how fail() begins a server fault's message (the gate reads it)


def fail(model: str, exc: BaseException):
    """An error response: bad input (ImageError, ValueError) is the client's; anything else is
    an internal error, also logged with its traceback on the server."""
    bad_input = isinstance(exc, (ImageError, ValueError))
    if not bad_input:
        print(f"{model}: {traceback.format_exc()}", file=sys.stderr, flush=True)
    return error_response(f"{model}: {exc}" if bad_input else f"{model}: {INTERNAL}: {exc}",
                          "INVALID_ARG" if bad_input else "INTERNAL")


def error_response(message: str, code: str):
    """An error response with Triton's error `code` (its name) where the stub has it."""
    value = getattr(pb_utils.TritonError, code, None)
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, value) if value is not None
                                      else pb_utils.TritonError(message))


# A BLS response's error has lost its code (python backend r24.10 src/request_executor.cc: the
# error is rebuilt from its message alone, as INTERNAL): the gate gets it back from the message.
# First match wins; a message that matches nothing is the client's (our steps' bad-input errors).
ERROR_CODES = (("CANCELLED", ("cancelled by the client", "Request was cancelled")),
               ("UNAVAILABLE", ("TIMEOUT passed", "Exceeds maximum queue size", "Request timeout expired",
                                "has no available versions")),
               ("INTERNAL", (INTERNAL, "is not healthy", "Stub process")))


def error_code(message: str) -> str:
    """The Triton error code (name) of a step's error `message` seen through BLS."""
    for code, words in ERROR_CODES:
        if any(w in message for w in words):
            return code
    return "INVALID_ARG"


def face_batch(crops: np.ndarray, label_maps: np.ndarray | None = None,
               affines: np.ndarray | None = None) -> FaceBatch:
    """A FaceBatch carrying what the next step reads (crops + label maps for the restorers,
    affines for paste-back); the other fields are zero."""
    n = len(crops if crops is not None else affines)
    size = crops.shape[1] if crops is not None else 0
    zeros = np.zeros
    return FaceBatch(crops=crops if crops is not None else zeros((n, 0, 0, 3), np.uint8),
                     affines=affines if affines is not None else zeros((n, 2, 3)),
                     points5=zeros((n, 5, 2), np.float32), landmarks=zeros((n, 468, 2), np.float32),
                     label_maps=label_maps if label_maps is not None else zeros((n, size, size), np.uint8),
                     boxes=zeros((n, 3, 4), np.float32))


def warm_up(device: "torch.device | None" = None) -> None:
    """Pay a model's first-request costs in ``initialize`` (BLS is not allowed there): decode
    and encode a sample photo (codecs, OpenCV, PIL plugins) and, on a GPU instance, create the
    CUDA context."""
    from runtime.imageio import decode_image, encode_image
    from runtime.samples import ASTRONAUT

    encode_image(decode_image(ASTRONAUT.read_bytes(), str(ASTRONAUT)), ".png")
    if device is not None and device.type == "cuda":
        import torch

        torch.ones(1, device=device).sum().item()


def preferred_memory(device: "torch.device | None" = None):
    """The memory a BLS request asks its outputs in: the host (numpy readers) or the CUDA device
    a DLPack reader works on. Without it a TensorRT model's outputs stay on the GPU and
    ``as_numpy()`` raises."""
    if device is not None and device.type == "cuda":
        return pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_GPU, device.index or 0)
    return pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0)


def model_device(args: dict) -> "torch.device":
    """The device of a python model instance: ``cuda:<id>`` for a KIND_GPU instance, else the CPU."""
    import torch

    if args.get("model_instance_kind") == "GPU":
        return torch.device("cuda", int(args["model_instance_device_id"]))
    return torch.device("cpu")


_LOOP: list = []   # this stub's private event loop for async_exec (created on first use, kept)


def exec_all(requests: list) -> list:
    """Responses of BLS requests, in order; several run concurrently through ``async_exec``
    (the stub runs each in its loop's executor), so the chunks of one batch overlap on the
    server. For the synchronous ``execute`` of our models: a private loop, never the stub's."""
    if len(requests) == 1:
        return [requests[0].exec()]
    import asyncio

    if not _LOOP:
        _LOOP.append(asyncio.new_event_loop())

    async def gather():
        return await asyncio.gather(*(r.async_exec() for r in requests))

    return list(_LOOP[0].run_until_complete(gather()))


def wire_rows(x, dims: tuple[int, ...]):
    """A batch (numpy or torch) in the model's dims (triton_dims); as it is when they have an
    open image axis (-1)."""
    return x if -1 in dims else x.reshape(len(x), *dims)


def batch_rows(x, spec: TensorSpec):
    """An output as the contract's [batch, ...] (a [batch] tensor comes as [batch, 1]); as it
    came when the contract leaves image axes open."""
    return x if any(isinstance(d, str) and d != BATCH for d in spec.shape) else x.reshape((-1,) + spec.concrete(1)[1:])


class BlsNet:
    """A network served as its own Triton model, called from a python model through BLS with
    the session interface of runtime.sessions (inputs by name -> tuple of outputs).

    ``__call__`` takes and returns numpy arrays (outputs asked for in host memory);
    ``run_torch`` takes and returns torch tensors through DLPack, outputs asked for on the
    inputs' device, so a loop on the GPU (AuthFace) never copies to the host between steps.

    Batched Triton models refuse batch size 0 and batches over their max_batch_size (the
    contract's max_batch): an empty batch is answered here with empty outputs without a call,
    a larger one goes in chunks of max_batch, sent concurrently."""

    def __init__(self, contract: NetworkContract) -> None:
        self.contract = contract
        self.wire_shapes = [triton_dims(s)[0] for s in contract.inputs]

    def _requests(self, n: int, wrap, device) -> list:
        """One BLS request per chunk of at most max_batch; `wrap(spec, start, count, dims)` makes an input."""
        c = self.contract
        memory = preferred_memory(device)
        return [pb_utils.InferenceRequest(
                    model_name=c.name, requested_output_names=c.output_names, preferred_memory=memory,
                    inputs=[wrap(s, start, min(c.max_batch, n - start), dims) for s, dims in zip(c.inputs, self.wire_shapes)])
                for start in range(0, n, c.max_batch)]

    def _outputs(self, requests: list, read) -> list[list]:
        """Per chunk, the outputs in contract order, read by `read(tensor, spec)`."""
        parts = []
        for response in exec_all(requests):
            if response.has_error():
                raise RuntimeError(f"model {self.contract.name}: {response.error().message()}")
            parts.append([read(pb_utils.get_output_tensor_by_name(response, s.name), s) for s in self.contract.outputs])
        return parts

    def __call__(self, *args: np.ndarray, **named: np.ndarray) -> tuple[np.ndarray, ...]:
        c = self.contract
        arrays = c.bind(args, named)
        n = len(arrays[c.input_names[0]])
        if n == 0:
            return tuple(np.zeros(s.concrete(0), s.dtype) for s in c.outputs)
        requests = self._requests(n, lambda s, start, count, dims: pb_utils.Tensor(
            s.name, wire_rows(np.ascontiguousarray(arrays[s.name][start:start + count], s.dtype), dims)), None)
        parts = self._outputs(requests, lambda t, s: batch_rows(t.as_numpy(), s))
        return tuple(np.concatenate(p) for p in zip(*parts))

    def run_torch(self, *args: "torch.Tensor", **named: "torch.Tensor") -> tuple["torch.Tensor", ...]:
        """Torch tensors in (all on one device), torch tensors out on that device, through DLPack."""
        import torch
        from torch.utils.dlpack import from_dlpack

        c = self.contract
        inputs = list(c.bind(args, named).values())
        n, device = len(inputs[0]), inputs[0].device
        if n == 0:
            return tuple(torch.zeros(s.concrete(0), device=device) for s in c.outputs)
        # contiguous in the wire dtype now: the chunks below are views, no kernel runs after the sync
        tensors = {s.name: x.to(getattr(torch, s.dtype)).contiguous() for s, x in zip(c.inputs, inputs)}
        if device.type == "cuda":   # the server reads the inputs on its own stream: finish torch's work first
            torch.cuda.current_stream(device).synchronize()
        requests = self._requests(n, lambda s, start, count, dims: pb_utils.Tensor.from_dlpack(
            s.name, wire_rows(tensors[s.name][start:start + count], dims)), device)
        parts = self._outputs(requests, lambda t, s: batch_rows(from_dlpack(t.to_dlpack()), s))
        return tuple(p[0] if len(p) == 1 else torch.cat(p) for p in zip(*parts))


SUPERVISOR_METRICS = {"server_restarts": "tritonserver restarts by the facerestore supervisor since `serve` started",
                      "model_restores": "models reloaded by the supervisor because their stub died or they were unloaded",
                      "memory_reloads": "idle models reloaded by the supervisor to give back their shared memory"}


def publish_supervisor_metrics(args: dict, interval: float = 1.0) -> None:
    """Publish the supervisor's counters (its state file, $FACERESTORE_SUPERVISOR_STATE, written
    by runtime/serving/serve.py) as gauges ``facerestore_supervisor_<name>`` on Triton's
    metrics port, refreshed every `interval` s by a daemon thread. Only instance 0 of the
    calling model publishes (one series per server); nothing when not supervised."""
    import json
    import os
    import threading
    import time
    from pathlib import Path

    path = os.environ.get("FACERESTORE_SUPERVISOR_STATE")
    if not path or not str(args.get("model_instance_name", "")).endswith("_0"):
        return
    families = {name: pb_utils.MetricFamily(name=f"facerestore_supervisor_{name}", description=text,
                                            kind=pb_utils.MetricFamily.GAUGE)
                for name, text in SUPERVISOR_METRICS.items()}
    # (family, metric): a family must outlive its metric, or setting the metric raises
    gauges = {name: (family, family.Metric(labels={})) for name, family in families.items()}

    def refresh() -> None:
        seen = None
        while True:
            try:
                text = Path(path).read_text()
                if text != seen:
                    for name, value in json.loads(text).items():
                        if name in gauges:
                            gauges[name][1].set(float(value))
                    seen = text
            except (OSError, ValueError):   # not written yet, or being replaced
                pass
            time.sleep(interval)

    threading.Thread(target=refresh, name="supervisor-metrics", daemon=True).start()
