"""The three AuthFace networks for export: VAE encoder, fused UNet+ControlNet, VAE decoder.
``build_module(None)`` is the seeded random-init ``tiny`` model; the samples are real faces,
their latents through the tiny VAE and those noised to real timesteps."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from export.networks.base import restorer_network
from runtime.restorers.authface.contracts import LATENT_CHANNELS, LATENT_SIZE, UNET_CONTROLNET, VAE_DECODER, VAE_ENCODER
from runtime.restorers.authface import AUTHFACE_RESTORER

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


def real_faces(batch: int) -> np.ndarray:
    """`batch` real aligned faces (the sample photos' faces, cycled), NCHW in [-1, 1]."""
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
    return (real_faces(batch),)


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
    return sample.astype(np.float32), timesteps, real_faces(batch), scale


def _decoder_samples(batch: int) -> tuple[np.ndarray, ...]:
    return (_latents(batch),)


# each built as the restorer's torch backend builds it (the checkpoint loaded, one network kept)
AUTHFACE_NETWORKS = (restorer_network(AUTHFACE_RESTORER, VAE_ENCODER, _encoder_samples),
                     restorer_network(AUTHFACE_RESTORER, UNET_CONTROLNET, _unet_samples),
                     restorer_network(AUTHFACE_RESTORER, VAE_DECODER, _decoder_samples))
