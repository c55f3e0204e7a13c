"""Contracts of the three AuthFace networks: VAE encoder, fused UNet+ControlNet, VAE decoder.

Shapes are those of 512x512 aligned faces (64x64x4 latents), the same for the ``tiny`` and
``sdxl`` configs. The VAE stays fp32 (SDXL's VAE overflows in fp16); the UNet+ControlNet is
built in fp16.
"""
from __future__ import annotations

from runtime.contracts.base import BATCH, NetworkContract, TensorSpec

IMAGE_SIZE = 512
LATENT_SIZE = 64
LATENT_CHANNELS = 4

_IMAGE = (BATCH, 3, IMAGE_SIZE, IMAGE_SIZE)
_LATENT = (BATCH, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE)

# the inputs the denoising loop names (runtime/restorers/authface/pipeline.py)
ENCODER_IMAGE = TensorSpec("image", _IMAGE)
SAMPLE = TensorSpec("sample", _LATENT)
TIMESTEP = TensorSpec("timestep", (BATCH,), keep_fp32=True)
CONTROL_IMAGE = TensorSpec("control_image", _IMAGE)
CONDITIONING_SCALE = TensorSpec("conditioning_scale", (BATCH,), keep_fp32=True)
DECODER_LATENT = TensorSpec("latent", _LATENT)

VAE_ENCODER = NetworkContract(
    name="vae_encoder",
    inputs=(ENCODER_IMAGE,),
    outputs=(TensorSpec("latent", _LATENT),),
    opt_batch=1, max_batch=8, precision="fp32",
)

# Called once per denoising step (per_step: no batching delay, the Triton configs render none).
# opt_batch 4: the gpu rendering runs 4 authface_faces instances, each with one step in flight,
# so under load the dynamic batcher merges up to 4 photos' steps; the TensorRT profile is tuned
# for that batch and the batcher prefers it (export/triton_repo.py: preferred_batch_sizes).
UNET_CONTROLNET = NetworkContract(
    name="unet_controlnet",
    inputs=(SAMPLE, TIMESTEP, CONTROL_IMAGE, CONDITIONING_SCALE),
    outputs=(TensorSpec("noise_pred", _LATENT),),
    opt_batch=4, max_batch=8, precision="fp16", per_step=True,
)

VAE_DECODER = NetworkContract(
    name="vae_decoder",
    inputs=(DECODER_LATENT,),
    outputs=(TensorSpec("image", _IMAGE),),
    opt_batch=1, max_batch=8, precision="fp32",
    # 2.5 TF of fp32 convs + a 4096-token attention; the random tiny VAE amplifies rounding
    # (max rel 1.5e-4 seen on CPU, mean abs error 1e-5 of a +-10 output)
    parity_tolerance=5e-4,
)

AUTHFACE_CONTRACTS = (VAE_ENCODER, UNET_CONTROLNET, VAE_DECODER)
