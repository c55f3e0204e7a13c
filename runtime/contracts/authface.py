"""Contracts of the three AuthFace networks: VAE encoder, fused UNet+ControlNet, VAE decoder.

Shapes are those of 512x512 aligned faces (64x64x4 latents), the same for the ``tiny`` and
``sdxl`` configs. The VAE stays fp32 (SDXL's VAE overflows in fp16); the UNet+ControlNet is
built in fp16. ``build_module(None)`` is the seeded random-init ``tiny`` model.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runtime.contracts.base import BATCH, NetworkContract, TensorSpec

if TYPE_CHECKING:
    import torch

IMAGE_SIZE = 512
LATENT_SIZE = 64
LATENT_CHANNELS = 4
SAMPLE_TIMESTEPS = (999.0, 751.0, 501.0, 251.0, 21.0)   # cycled over the batch in the UNet samples


@lru_cache(maxsize=1)
def _real_faces() -> np.ndarray:
    """Aligned 512x512 faces of the sample photos (astronaut, Grace Hopper), NCHW in [-1, 1]."""
    from runtime.face import torch_face_pipeline
    from runtime.imageio import read_image
    from runtime.samples import ASTRONAUT, GRACE_HOPPER

    pipeline = torch_face_pipeline()
    faces = []
    for path in (ASTRONAUT, GRACE_HOPPER):
        photo = read_image(path)
        found, _ = pipeline.find(photo)
        faces.append(pipeline.align(photo, found).model_input())
    return np.concatenate(faces).astype(np.float32)


def _faces(batch: int) -> np.ndarray:
    faces = _real_faces()
    return np.ascontiguousarray(faces[np.arange(batch) % len(faces)])


@lru_cache(maxsize=1)
def _real_latents() -> np.ndarray:
    """The real faces through the tiny VAE encoder: latents as the UNet and decoder see them."""
    import torch

    from training.authface import make_random_checkpoint

    with torch.inference_mode():
        return make_random_checkpoint("tiny").vae_encoder()(torch.from_numpy(_real_faces())).numpy()


def _latents(batch: int) -> np.ndarray:
    latents = _real_latents()
    return np.ascontiguousarray(latents[np.arange(batch) % len(latents)])


def _encoder_samples(batch: int) -> tuple[np.ndarray, ...]:
    return (_faces(batch),)


def _unet_samples(batch: int) -> tuple[np.ndarray, ...]:
    """Real latents noised (seeded) to real timesteps, the real degraded faces as control."""
    import torch
    from diffusers import DDPMScheduler
    from training.authface.configs import SDXL_SCHEDULER

    timesteps = np.array([SAMPLE_TIMESTEPS[i % len(SAMPLE_TIMESTEPS)] for i in range(batch)], np.float32)
    noise = torch.randn((batch, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE), generator=torch.Generator().manual_seed(0))
    sched = DDPMScheduler.from_config(SDXL_SCHEDULER)
    sample = sched.add_noise(torch.from_numpy(_latents(batch)), noise, torch.from_numpy(timesteps).long()).numpy()
    scale = np.ones(batch, np.float32)
    return sample.astype(np.float32), timesteps, _faces(batch), scale


def _decoder_samples(batch: int) -> tuple[np.ndarray, ...]:
    return (_latents(batch),)


def _vae_encoder(checkpoint: Path | None = None) -> torch.nn.Module:
    from training.authface import load_or_default

    return load_or_default(checkpoint).vae_encoder()


def _unet_controlnet(checkpoint: Path | None = None) -> torch.nn.Module:
    from training.authface import load_or_default

    return load_or_default(checkpoint).unet_controlnet()


def _vae_decoder(checkpoint: Path | None = None) -> torch.nn.Module:
    from training.authface import load_or_default

    return load_or_default(checkpoint).vae_decoder()


_IMAGE = (BATCH, 3, IMAGE_SIZE, IMAGE_SIZE)
_LATENT = (BATCH, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE)

VAE_ENCODER = NetworkContract(
    name="vae_encoder",
    inputs=(TensorSpec("image", _IMAGE),),
    outputs=(TensorSpec("latent", _LATENT),),
    build_module=_vae_encoder, sample_inputs=_encoder_samples, opt_batch=1, max_batch=8, precision="fp32",
)

UNET_CONTROLNET = NetworkContract(
    name="unet_controlnet",
    inputs=(TensorSpec("sample", _LATENT), TensorSpec("timestep", (BATCH,), keep_fp32=True),
            TensorSpec("control_image", _IMAGE), TensorSpec("conditioning_scale", (BATCH,), keep_fp32=True)),
    outputs=(TensorSpec("noise_pred", _LATENT),),
    build_module=_unet_controlnet, sample_inputs=_unet_samples, opt_batch=1, max_batch=8, precision="fp16",
)

VAE_DECODER = NetworkContract(
    name="vae_decoder",
    inputs=(TensorSpec("latent", _LATENT),),
    outputs=(TensorSpec("image", _IMAGE),),
    build_module=_vae_decoder, sample_inputs=_decoder_samples, opt_batch=1, max_batch=8, precision="fp32",
    # 2.5 TF of fp32 convs + a 4096-token attention; the random tiny VAE amplifies rounding
    # (max rel 1.5e-4 seen on CPU, mean abs error 1e-5 of a +-10 output)
    parity_tolerance=5e-4,
)

AUTHFACE_CONTRACTS = (VAE_ENCODER, UNET_CONTROLNET, VAE_DECODER)
