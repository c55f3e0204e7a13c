"""The AuthFace restorer: VAE encoder -> denoising loop (fused UNet+ControlNet) -> VAE decoder.

The three stages are callables with the session interface (numpy arrays in, tuple of numpy
arrays out), so PyTorch, ONNX Runtime and TensorRT plug in the same way. The denoising loop
and the scheduler (diffusers, swappable by name) run here in fp32, on ``device``: latents,
scheduler state and the control image (uploaded once) stay there between steps. A stage with
a ``run_torch`` method (TorchSession and its CUDA-graph / compiled forms, TensorRTSession, the
BLS nets of the GPU Triton model) is called with torch tensors on that device; any other stage
(ONNX Runtime) gets numpy arrays.
"""
from __future__ import annotations

import inspect
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from runtime.restorers.authface.contracts import CONDITIONING_SCALE, CONTROL_IMAGE, DECODER_LATENT, ENCODER_IMAGE, IMAGE_SIZE, \
    SAMPLE, TIMESTEP
from runtime.face.pipeline import FaceBatch, to_crops
from runtime.restorers.authface.options import AUTHFACE_OPTIONS
from runtime.restorers.base import Settable, option_defaults
from training.provenance import Provenance

Net = Callable[..., tuple[np.ndarray, ...]]

# name -> (diffusers scheduler class, overrides of the checkpoint's scheduler config)
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "ddim": ("DDIMScheduler", {}),
    "dpmpp": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
}


def make_scheduler(name: str, config: dict):
    """A fresh diffusers scheduler by name, from the checkpoint's (training-time) scheduler config."""
    import diffusers

    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler '{name}'; choose one of {sorted(SCHEDULERS)}")
    cls_name, overrides = SCHEDULERS[name]
    return getattr(diffusers, cls_name).from_config({**config, **overrides})


class AuthFaceRestorer(Settable):
    """All faces of a photo as one batch through AuthFace. Built once on its three stages; the
    settings (scheduler, steps, seed, conditioning_scale, strength: its spec's options) are
    given per call or bound with `with_settings`.

    Faithful mode (the paper; ``strength=None``): start from pure Gaussian noise and denoise
    all ``steps`` with the ControlNet conditioned on the degraded face. Extension
    (``strength`` in (0, 1]): start from the VAE latent of the degraded face noised to that
    strength and run only the last ``int(steps * strength)`` steps (img2img-style).

    Noise is drawn per face from its own generator seeded with ``seed``, so a face's result
    does not depend on the other faces in the batch: a batch of 3 equals three single runs."""

    name = "authface"

    def __init__(self, vae_encoder: Net, unet_controlnet: Net, vae_decoder: Net, scheduler_config: dict,
                 latent_channels: int = 4, vae_scale: int = 8, progress: bool = True,
                 device: str | torch.device = "cpu", provenance: Provenance | None = None) -> None:
        self.vae_encoder, self.unet_controlnet, self.vae_decoder = vae_encoder, unet_controlnet, vae_decoder
        self.scheduler_config = dict(scheduler_config)
        self.latent_channels, self.vae_scale, self.progress = latent_channels, vae_scale, progress
        self.device = torch.device(device)
        self.provenance = provenance
        self.settings = option_defaults(AUTHFACE_OPTIONS)

    def __call__(self, batch: FaceBatch, **settings) -> np.ndarray:
        """Aligned crops uint8 [N, S, S, 3] -> restored crops, same shape and dtype."""
        batch.require_size(IMAGE_SIZE, "AuthFace")
        return to_crops(self.restore(batch.model_input(), **settings))

    def prepare(self) -> None:
        """The diffusers import and a scheduler on the device."""
        self.schedule()

    def schedule(self, **settings):
        """(scheduler, timesteps to run): all steps, or the last int(steps * strength) of them."""
        s = self.merged(settings)
        steps, strength = s["steps"], s["strength"]
        if steps < 1:
            raise ValueError(f"steps must be >= 1, not {steps}")
        if strength is not None and not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], not {strength}")
        sched = make_scheduler(s["scheduler"], self.scheduler_config)
        sched.set_timesteps(steps, device=self.device)
        timesteps = sched.timesteps
        if strength is not None:
            run = min(max(int(steps * strength), 1), steps)
            begin = (steps - run) * sched.order
            timesteps = timesteps[begin:]
            if hasattr(sched, "set_begin_index"):
                sched.set_begin_index(begin)
        return sched, timesteps

    def _run(self, net: Net, **inputs: torch.Tensor) -> torch.Tensor:
        """A stage's first output on the loop's device, its inputs by name: torch tensors straight
        through a ``run_torch`` stage, a host round trip through numpy for any other."""
        if hasattr(net, "run_torch"):
            return net.run_torch(**inputs)[0].float()
        out = net(**{name: x.cpu().numpy() for name, x in inputs.items()})[0]
        return torch.from_numpy(np.asarray(out, np.float32)).to(self.device)

    @torch.inference_mode()
    def restore(self, images: np.ndarray, **settings) -> np.ndarray:
        """Degraded faces NCHW in [-1, 1] -> restored faces NCHW in about [-1, 1]."""
        n, _, h, w = images.shape
        s = self.merged(settings)
        sched, timesteps = self.schedule(**settings)
        shape = (1, self.latent_channels, h // self.vae_scale, w // self.vae_scale)
        generators = [torch.Generator("cpu").manual_seed(int(s["seed"])) for _ in range(n)]
        noise = torch.cat([torch.randn(shape, generator=g) for g in generators]).to(self.device)
        control = torch.from_numpy(np.ascontiguousarray(images, np.float32)).to(self.device)   # uploaded once
        if s["strength"] is None:
            latents = noise * sched.init_noise_sigma
        else:
            z0 = self._run(self.vae_encoder, **{ENCODER_IMAGE.name: control})
            latents = sched.add_noise(z0, noise, timesteps[:1].repeat(n))
        step_kwargs = {"generator": generators} if "generator" in inspect.signature(sched.step).parameters else {}
        scale = torch.full((n,), float(s["conditioning_scale"]), dtype=torch.float32, device=self.device)
        for t in tqdm(timesteps, desc="authface", unit="step", leave=False, disable=None if self.progress else True):
            model_in = sched.scale_model_input(latents, t).float()
            noise_pred = self._run(self.unet_controlnet, **{SAMPLE.name: model_in, TIMESTEP.name: t.float().expand(n).contiguous(),
                                                            CONTROL_IMAGE.name: control, CONDITIONING_SCALE.name: scale})
            latents = sched.step(noise_pred, t, latents, return_dict=False, **step_kwargs)[0]
        return self._run(self.vae_decoder, **{DECODER_LATENT.name: latents.float()}).cpu().numpy()
