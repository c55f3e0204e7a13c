"""face_restore_<restorer>, the served entry point (the gate): hands each request to the
ensemble face_restore_<restorer>_job (face_preprocess -> <restorer>_faces -> face_postprocess)
through BLS, with its restorer's crop side and template (FACE_SIZE, FACE_TEMPLATE: face_preprocess aligns to them), and
watches the request meanwhile.

Why: Triton tells a python model that its gRPC client cancelled (``is_cancelled()``), but a
cancelled ensemble only skips the steps not yet started, never the running one
(triton-inference-server/server#6739; v2.51.0 docs/user_guide/request_cancellation.md: the
core checks between ensemble steps). So when the client is gone, the gate creates the file it
named in CANCEL_FLAG, and the faces step stops at its next network call
(runtime/serving/triton_cancel.py). Its HTTP frontend never cancels (a client that
disconnects is not noticed): there only the request's TIMEOUT stops the work.

`python -m export triton-repo` copies this file to face_restore_<restorer>/1/model.py."""
import asyncio
import json

import numpy as np
import triton_python_backend_utils as pb_utils

from runtime.contracts.service import CANCEL_FLAG, FACE_SIZE, FACE_TEMPLATE, SERVICES
from runtime.serving.triton_backend import error_code, error_response, fail, preferred_memory
from runtime.serving.triton_cancel import POLL_S, CancelFlag


class TritonPythonModel:
    def initialize(self, args):
        self.service = SERVICES[args["model_name"].removeprefix("face_restore_")]
        params = json.loads(args["model_config"]).get("parameters", {})
        self.face_size = int(params["face_size"]["string_value"]) if "face_size" in params else self.service.face_size
        self.face_template = params.get("face_template", {}).get("string_value") or self.service.face_template
        self.loop = asyncio.new_event_loop()   # this stub's own, for async_exec

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            with CancelFlag() as flag:
                inputs = [t for t in (pb_utils.get_input_tensor_by_name(request, s.name) for s in self.service.inputs)
                          if t is not None]
                inputs.append(pb_utils.Tensor(CANCEL_FLAG.name, np.array([str(flag.path).encode()], np.object_)))
                inputs.append(pb_utils.Tensor(FACE_SIZE.name, np.array([self.face_size], np.int32)))
                inputs.append(pb_utils.Tensor(FACE_TEMPLATE.name, np.array([self.face_template.encode()], np.object_)))
                job = pb_utils.InferenceRequest(model_name=self.service.job, inputs=inputs,
                                                requested_output_names=sorted(request.requested_output_names()),
                                                preferred_memory=preferred_memory())   # host: its answer is bytes
                response = self.loop.run_until_complete(self._watched(job, request, flag))
        except Exception as exc:   # the gate's own fault fails its request, never the model
            return fail(self.service.ensemble, exc)
        if response.has_error():   # the job's error, its code read from its message (lost through BLS)
            message = response.error().message()
            return error_response(message, error_code(message))
        return pb_utils.InferenceResponse(response.output_tensors())

    @staticmethod
    async def _watched(job, request, flag: CancelFlag):
        """The job's response; the flag raised once the client cancelled."""
        task = asyncio.ensure_future(job.async_exec())
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_S)
            if done:
                return task.result()
            if not flag.raised and request.is_cancelled():
                flag.raise_()
