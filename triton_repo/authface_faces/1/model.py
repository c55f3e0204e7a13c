"""authface_faces: the aligned faces of one photo through AuthFace. The denoising loop and the
diffusers scheduler run here (runtime.restorers.authface.pipeline.AuthFaceRestorer, the
in-process code); the VAE encoder, the fused UNet+ControlNet (once per step) and the VAE decoder
are their own Triton models, called through BLS. An iterative loop cannot be a static ensemble,
hence BLS. The loop stops at its next network call once the request is cancelled
(runtime/serving/triton_cancel.py).

On a GPU instance (the gpu rendering: KIND_GPU) the loop runs on that device: latents,
scheduler state and the control image (uploaded once) stay there, and the networks get and
return CUDA tensors through DLPack (BlsNet.run_torch); on a CPU instance the same code runs on
the host.

The scheduler config comes from 1/scheduler_config.json, written by `python -m export
triton-repo` from the AuthFace checkpoint (SDXL's without one)."""
import json
from pathlib import Path

import numpy as np

from runtime.restorers.authface.pipeline import AuthFaceRestorer
from runtime.restorers.authface.restorer import scheduler_config
from runtime.restorers import CONTRACTS
from runtime.contracts.service import SERVICES, CROPS, STEPS, SEED, STRENGTH, RESTORED_CROPS
from runtime.serving.request_checks import check_number
from runtime.serving.triton_cancel import RequestCancelled, StopWhenCancelled, cancelled_response
from runtime.serving.triton_backend import BlsNet, face_batch, fail, model_device, respond, scalar, tensor, warm_up

SERVICE = SERVICES["authface"]


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.scheduler = params["scheduler"]["string_value"]
        self.steps = int(params["steps"]["string_value"])
        path = Path(args["model_repository"]) / args["model_version"] / "scheduler_config.json"
        self.scheduler_config = json.loads(path.read_text()) if path.is_file() else scheduler_config(None)
        encoder, unet, decoder = (BlsNet(CONTRACTS[n]) for n in SERVICE.faces.networks)
        self.nets = (encoder, unet, decoder)
        self.device = model_device(args)
        warm_up(self.device)
        self._restorer(self.nets).schedule()   # diffusers import and a scheduler on the device
        self.chunk = min(CONTRACTS[n].max_batch for n in SERVICE.faces.networks)

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _restorer(self, nets, steps: int | None = None, seed: int = 0, strength: float | None = None) -> AuthFaceRestorer:
        return AuthFaceRestorer(*nets, self.scheduler_config, scheduler=self.scheduler, steps=steps or self.steps,
                                seed=seed, strength=strength, progress=False, device=self.device)

    def _one(self, request):
        try:
            strength = scalar(request, STRENGTH)
            nets = [StopWhenCancelled.of(net, request) for net in self.nets]   # the loop ends on cancellation or timeout
            restorer = self._restorer(nets, steps=int(check_number(STEPS.name, scalar(request, STEPS, self.steps))),
                                      seed=int(scalar(request, SEED, 0)),
                                      strength=None if strength is None else check_number(STRENGTH.name, strength))
            crops = tensor(request, CROPS)
            restored = np.empty_like(crops)
            for i in range(0, len(crops), self.chunk):   # bounded micro-batches (each face has its own noise)
                restored[i:i + self.chunk] = restorer(face_batch(crops[i:i + self.chunk]))
            return respond({RESTORED_CROPS: restored})
        except RequestCancelled as exc:
            return cancelled_response(SERVICE.faces.name, exc)
        except Exception as exc:
            return fail(SERVICE.faces.name, exc)
