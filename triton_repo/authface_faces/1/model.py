"""authface_faces: the aligned faces of one photo through AuthFace. The denoising loop and the
diffusers scheduler run here (runtime.authface.AuthFaceRestorer, the in-process code); the VAE
encoder, the fused UNet+ControlNet (once per step) and the VAE decoder are their own Triton
models, called through BLS. An iterative loop cannot be a static ensemble, hence BLS.

On a GPU instance (the gpu rendering: KIND_GPU) the loop runs on that device: latents,
scheduler state and the control image (uploaded once) stay there, and the networks get and
return CUDA tensors through DLPack (BlsNet.run_torch); on a CPU instance the same code runs on
the host.

The scheduler config comes from 1/scheduler_config.json, written by `python -m export
triton-repo` from the AuthFace checkpoint (SDXL's without one)."""
import json
from pathlib import Path

from runtime.authface import AuthFaceRestorer, scheduler_config
from runtime.contracts import CONTRACTS
from runtime.contracts.service import SERVICES, CROPS, STEPS, SEED, STRENGTH, RESTORED_CROPS
from runtime.triton_backend import BlsNet, face_batch, fail, model_device, respond, scalar, tensor, warm_up

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
        self._restorer().schedule()   # diffusers import and a scheduler on the device

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _restorer(self, steps: int | None = None, seed: int = 0, strength: float | None = None) -> AuthFaceRestorer:
        return AuthFaceRestorer(*self.nets, self.scheduler_config, scheduler=self.scheduler, steps=steps or self.steps,
                                seed=seed, strength=strength, progress=False, device=self.device)

    def _one(self, request):
        try:
            strength = scalar(request, STRENGTH)
            restorer = self._restorer(steps=int(scalar(request, STEPS, self.steps)), seed=int(scalar(request, SEED, 0)),
                                      strength=None if strength is None else float(strength))
            batch = face_batch(tensor(request, CROPS))
            restored = restorer(batch) if len(batch) else batch.crops
            return respond({RESTORED_CROPS: restored})
        except Exception as exc:
            return fail(SERVICE.faces.name, exc)
