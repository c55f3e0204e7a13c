"""AuthFace architecture configs, written out in our code (docs/ARCHITECTURE.md: checkpoint configs live
beside the weights, but the architectures we support are named here).

- ``sdxl``: the real SDXL-base 1.0 UNet and VAE (diffusers format), ControlNet initialised from
  the UNet encoder (``ControlNetModel.from_unet``), null prompt of 77 x 2048 tokens plus a
  1280-d pooled embedding, SDXL micro-conditioning time ids for 512x512 faces.
- ``tiny``: the same diffusers classes and block types (SDXL-style ``text_time`` added
  embedding, cross-attention, linear projections) with small widths: 512x512 image ->
  64x64x4 latent like SDXL, but seconds on a CPU. For tests, CI and plumbing.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

# SDXL's training-time scheduler config (stabilityai/stable-diffusion-xl-base-1.0, scheduler/).
SDXL_SCHEDULER: dict = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "clip_sample": False,
    "set_alpha_to_one": False,
}

SDXL_UNET: dict = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "only_cross_attention": False,
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-05,
    "cross_attention_dim": 2048,
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "num_attention_heads": None,
    "dual_cross_attention": False,
    "use_linear_projection": True,
    "class_embed_type": None,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "num_class_embeds": None,
    "upcast_attention": None,
    "resnet_time_scale_shift": "default",
    "projection_class_embeddings_input_dim": 2816,   # 1280 pooled + 6 time ids x 256
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
}

SDXL_VAE: dict = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "force_upcast": True,
}

TINY_UNET: dict = {
    **SDXL_UNET,
    "sample_size": 64,
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "cross_attention_dim": 32,
    "transformer_layers_per_block": [1, 1, 1],
    "attention_head_dim": [2, 4, 4],
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 32 + 6 * 8,   # pooled 32 + 6 time ids x 8
}

TINY_VAE: dict = {
    **SDXL_VAE,
    "block_out_channels": [8, 16, 32, 32],
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "sample_size": 512,
}


@dataclass(frozen=True)
class AuthFaceConfig:
    """One architecture: diffusers configs of the three components plus the null-prompt shape."""

    name: str
    unet: dict
    vae: dict
    controlnet_embedding_channels: tuple[int, ...]   # ControlNet conditioning embedding (8x down)
    prompt_tokens: int                                # null prompt: tokens x unet.cross_attention_dim
    pooled_dim: int                                   # pooled text embedding (text_time)
    image_size: int = 512
    scheduler: dict = field(default_factory=lambda: dict(SDXL_SCHEDULER))

    @property
    def cross_attention_dim(self) -> int:
        return int(self.unet["cross_attention_dim"])

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.vae["block_out_channels"]) - 1)

    @property
    def time_ids(self) -> list[float]:
        """SDXL micro-conditioning: original size, crop top-left, target size (h, w each)."""
        s = float(self.image_size)
        return [s, s, 0.0, 0.0, s, s]

    def copy_unet(self) -> dict:
        return copy.deepcopy(self.unet)

    def copy_vae(self) -> dict:
        return copy.deepcopy(self.vae)


CONFIGS: dict[str, AuthFaceConfig] = {
    "sdxl": AuthFaceConfig("sdxl", SDXL_UNET, SDXL_VAE, (16, 32, 96, 256), prompt_tokens=77, pooled_dim=1280),
    "tiny": AuthFaceConfig("tiny", TINY_UNET, TINY_VAE, (8, 16, 32, 32), prompt_tokens=8, pooled_dim=32),
}


def get_config(name: str) -> AuthFaceConfig:
    """A config by name; ValueError listing the known names otherwise."""
    if name not in CONFIGS:
        raise ValueError(f"unknown AuthFace config '{name}'; choose one of {sorted(CONFIGS)}")
    return CONFIGS[name]
