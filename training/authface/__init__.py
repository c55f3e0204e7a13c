"""AuthFace (the AuthFace paper): SDXL-architecture UNet as a frozen face prior, a ControlNet
initialised from its encoder and conditioned on the degraded face, null prompt, 512x512 faces.
Built from diffusers' UNet2DConditionModel, ControlNetModel and AutoencoderKL."""
from training.authface.checkpoint import (AuthFaceCheckpoint, CheckpointError, load_checkpoint, load_or_default,
                                          make_checkpoint_from_diffusers, make_random_checkpoint)
from training.authface.configs import CONFIGS, AuthFaceConfig, get_config
from training.authface.model import UNetControlNet, VaeDecoder, VaeEncoder

__all__ = ["AuthFaceCheckpoint", "AuthFaceConfig", "CONFIGS", "CheckpointError", "UNetControlNet", "VaeDecoder",
           "VaeEncoder", "get_config", "load_checkpoint", "load_or_default", "make_checkpoint_from_diffusers",
           "make_random_checkpoint"]
