"""The `cpu` rendering's network model: a network (face_detector, face_mesh, safm, vae_encoder,
unet_controlnet, vae_decoder, bg_upsampler; named by the model) run by ONNX Runtime from 1/model.onnx
inside the python backend, because the CPU tritonserver of nvidia-pytriton has no onnxruntime
or tensorrt backend. `python -m export triton-repo --target cpu` copies this file to
<network>/1/model.py; the `gpu` rendering serves the same tensors from a TensorRT model.plan.

Dynamic batching: the requests of one execute() are concatenated along the batch axis, run as
one batch and split back. ONNX Runtime's arena shrinks after each run (memory comes back
after a large batch)."""
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from runtime.restorers import CONTRACTS
from runtime.sessions import OnnxRuntimeSession
from runtime.serving.triton_backend import fail


class TritonPythonModel:
    def initialize(self, args):
        self.contract = CONTRACTS[args["model_name"]]
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.session = OnnxRuntimeSession(str(path), self.contract)
        # give the arena's chunks of a large batch back after each run: memory returns after a peak
        self.run_options = ort.RunOptions()
        self.run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        c = self.contract   # warm-up: one batch of 1 (8x8 an open image axis), shrunk too (a reloaded model
        # starts as small as a warm one)
        small = {axis: 8 for axis in c.open_axes()}
        self.session.session.run(c.output_names, {s.name: np.zeros(s.concrete(1, small), s.dtype) for s in c.inputs},
                                 self.run_options)

    def execute(self, requests):
        c = self.contract
        try:
            feeds = [[pb_utils.get_input_tensor_by_name(r, s.name).as_numpy() for s in c.inputs] for r in requests]
            sizes = [len(f[0]) for f in feeds]
            # open image axes as they came (Triton batches only requests of one shape)
            axes = {d: n for spec, x in zip(c.inputs, feeds[0]) for d, n in zip(spec.shape, x.shape) if d in c.open_axes()}
            inputs = [np.concatenate(col).reshape(spec.concrete(sum(sizes), axes)) for col, spec in zip(zip(*feeds), c.inputs)]
            feed = self.session.feed(*inputs)   # by name, in the contract's dtypes
            outputs = self.session.session.run(c.output_names, feed, self.run_options)
        except Exception as exc:
            return [fail(c.name, exc) for _ in requests]
        bounds = np.cumsum(sizes)[:-1]
        split = [np.split(o, bounds) for o in outputs]
        return [pb_utils.InferenceResponse([pb_utils.Tensor(s.name, np.ascontiguousarray(parts[i], s.dtype))
                                            for s, parts in zip(c.outputs, split)]) for i in range(len(requests))]
