"""How the AuthFace restorer is made: its torch modules, its checkpoint's scheduler config and
provenance, and the restorer from one session per network (any backend)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.restorers.authface.contracts import UNET_CONTROLNET, VAE_DECODER, VAE_ENCODER
from runtime.restorers.authface.pipeline import AuthFaceRestorer
from runtime.restorers.base import Net
from training.provenance import Provenance

if TYPE_CHECKING:
    import torch


def torch_modules(checkpoint: Path | None) -> dict[str, torch.nn.Module]:
    """The three networks of a checkpoint folder (``python -m training.authface
    make-checkpoint``), loaded once; None = the seeded random-init ``tiny`` model (plumbing only:
    its output is not a face)."""
    from training.authface import load_or_default

    ckpt = load_or_default(checkpoint)
    return {VAE_ENCODER.name: ckpt.vae_encoder(), UNET_CONTROLNET.name: ckpt.unet_controlnet(),
            VAE_DECODER.name: ckpt.vae_decoder()}


def build(sessions: dict[str, Net], data: dict, device: str, progress: bool) -> AuthFaceRestorer:
    """AuthFace on its three sessions with the scheduler config of its weights (`data`, from
    weights_data), the denoising loop on `device` (runtime.restorers.authface.pipeline)."""
    return AuthFaceRestorer(sessions[VAE_ENCODER.name], sessions[UNET_CONTROLNET.name], sessions[VAE_DECODER.name],
                            data.get("scheduler") or scheduler_config(None), progress=progress, device=device)


def weights_data(checkpoint: Path | None) -> dict:
    """What AuthFace needs of its weights besides the networks: the checkpoint's scheduler config."""
    return {"scheduler": scheduler_config(checkpoint)}


def checkpoint_provenance(checkpoint: Path | None) -> Provenance:
    """What an AuthFace checkpoint folder's weights are (its config.json notes); None = random tiny."""
    from training.authface.checkpoint import provenance

    if checkpoint is None:
        return provenance({"weights": "random init, seed 0 (tiny)", "null_prompt": "random (not a text encoding)"})
    path = Path(checkpoint) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; not an AuthFace checkpoint folder")
    return provenance(json.loads(path.read_text()).get("notes", {}))


def scheduler_config(checkpoint: Path | None) -> dict:
    """The scheduler config stored in a checkpoint's config.json (SDXL's when None)."""
    from training.authface.configs import SDXL_SCHEDULER

    if checkpoint is None:
        return dict(SDXL_SCHEDULER)
    path = Path(checkpoint) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; not an AuthFace checkpoint folder")
    return json.loads(path.read_text()).get("scheduler") or dict(SDXL_SCHEDULER)
