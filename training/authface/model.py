"""The exported AuthFace networks, as thin modules over diffusers building blocks.

- ``UNetControlNet``: ControlNet (conditioned on the degraded face) then the frozen UNet with
  the ControlNet residuals, in one graph so the residuals never leave the device (the
  TensorRT diffusion demo fuses them the same way). The null prompt's embeddings and SDXL's
  time ids are buffers, batch-expanded inside ``forward``: the served graph has no text encoder.
- ``VaeEncoder``: image in [-1, 1] -> latent mean x scaling factor (deterministic).
- ``VaeDecoder``: latent -> image in [-1, 1] (not clipped).

All three are exportable with the TorchScript ONNX exporter: no Python branch on tensor
values, per-sample ``timestep`` and ``conditioning_scale`` tensors of shape [B].
"""
from __future__ import annotations

import torch
from torch import nn


class UNetControlNet(nn.Module):
    """forward(sample [B,4,h,w], timestep [B], control_image [B,3,H,W] in [-1,1],
    conditioning_scale [B]) -> noise prediction [B,4,h,w].

    The control image is given in [-1, 1] (our convention at every model seam) and mapped to
    [0, 1] inside, the range diffusers' ControlNet training scripts feed, so a ControlNet
    trained with them plugs in unchanged."""

    def __init__(self, unet: nn.Module, controlnet: nn.Module, prompt_embeds: torch.Tensor,
                 pooled_prompt_embeds: torch.Tensor, time_ids: torch.Tensor) -> None:
        super().__init__()
        self.unet, self.controlnet = unet, controlnet
        self.register_buffer("prompt_embeds", prompt_embeds.reshape(1, *prompt_embeds.shape[-2:]).float().clone())
        self.register_buffer("pooled_prompt_embeds", pooled_prompt_embeds.reshape(1, -1).float().clone())
        self.register_buffer("time_ids", time_ids.reshape(1, -1).float().clone())

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, control_image: torch.Tensor,
                conditioning_scale: torch.Tensor) -> torch.Tensor:
        b = sample.shape[0]
        dtype = sample.dtype
        encoder_hidden_states = self.prompt_embeds.expand(b, -1, -1).to(dtype)
        added = {"text_embeds": self.pooled_prompt_embeds.expand(b, -1).to(dtype),
                 "time_ids": self.time_ids.expand(b, -1).to(dtype)}
        control = (control_image.to(dtype) + 1.0) * 0.5
        down, mid = self.controlnet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                                    controlnet_cond=control, conditioning_scale=1.0,
                                    added_cond_kwargs=added, return_dict=False)
        scale = conditioning_scale.to(dtype).reshape(-1, 1, 1, 1)
        down = [d * scale for d in down]
        mid = mid * scale
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, added_cond_kwargs=added,
                         down_block_additional_residuals=down, mid_block_additional_residual=mid,
                         return_dict=False)[0]


class VaeEncoder(nn.Module):
    """image [B,3,H,W] in [-1,1] -> latent mean [B,C,H/8,W/8], scaled (and shifted) as the UNet
    expects. The posterior mean, not a sample: restoration is deterministic."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae
        self.latent_channels = int(vae.config.latent_channels)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = float(vae.config.get("shift_factor") or 0.0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        moments = self.vae.encoder(image)
        if self.vae.quant_conv is not None:
            moments = self.vae.quant_conv(moments)
        mean = moments[:, : self.latent_channels]
        return (mean - self.shift_factor) * self.scaling_factor


class VaeDecoder(nn.Module):
    """latent [B,C,h,w] (scaled as the UNet sees it) -> image [B,3,8h,8w] in about [-1,1]."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = float(vae.config.get("shift_factor") or 0.0)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        z = latent / self.scaling_factor + self.shift_factor
        return self.vae.decode(z, return_dict=False)[0]
