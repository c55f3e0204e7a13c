"""authface_faces: the aligned faces of one photo through AuthFace. The denoising loop and the
diffusers scheduler run here (runtime.authface.AuthFaceRestorer, the in-process code); the VAE
encoder, the fused UNet+ControlNet (once per step) and the VAE decoder are their own Triton
models, called through BLS. An iterative loop cannot be a static ensemble, hence BLS.

The scheduler config comes from 1/scheduler_config.json, written by `python -m export
triton-repo` from the AuthFace checkpoint (SDXL's without one)."""
import json
from pathlib import Path

from runtime.authface import AuthFaceRestorer, scheduler_config
from runtime.contracts import CONTRACTS
from runtime.contracts.service import SERVICES, CROPS, STEPS, SEED, STRENGTH, RESTORED_CROPS
from runtime.triton_backend import BlsNet, face_batch, fail, respond, scalar, tensor

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

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            strength = scalar(request, STRENGTH)
            restorer = AuthFaceRestorer(*self.nets, self.scheduler_config, scheduler=self.scheduler,
                                        steps=int(scalar(request, STEPS, self.steps)), seed=int(scalar(request, SEED, 0)),
                                        strength=None if strength is None else float(strength), progress=False)
            batch = face_batch(tensor(request, CROPS))
            restored = restorer(batch) if len(batch) else batch.crops
            return respond({RESTORED_CROPS: restored})
        except Exception as exc:
            return fail(SERVICE.faces.name, exc)
