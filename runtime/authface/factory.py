"""Build the AuthFace restorer on a backend: torch (in-process) or onnxruntime (exported graphs)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from runtime.authface.pipeline import SCHEDULERS, AuthFaceRestorer
from runtime.contracts.authface import UNET_CONTROLNET, VAE_DECODER, VAE_ENCODER
from runtime.sessions import DTYPES, TorchSession
from training.provenance import Provenance

def make_authface_restorer(checkpoint: Path | None = None, backend: str = "torch", onnx_dir: Path | None = None,
                           device: str = "cpu", precision: str = "fp32", scheduler: str = "ddim", steps: int = 20,
                           seed: int = 0, conditioning_scale: float = 1.0, strength: float | None = None,
                           fp16_vae: bool = False, progress: bool = True, channels_last: bool = True) -> AuthFaceRestorer:
    """The AuthFace restorer (``name = "authface"``), ready for ``restore_photo``.

    checkpoint: AuthFace checkpoint folder (``python -m training.authface make-checkpoint``);
        None = the seeded random-init ``tiny`` model (plumbing only: its output is not a face).
        With backend onnxruntime only its scheduler config is read (default: SDXL's).
    backend: "torch" runs the modules in-process; "onnxruntime" runs
        ``<onnx_dir>/vae_encoder.onnx``, ``unet_controlnet.onnx``, ``vae_decoder.onnx``
        (``python -m export onnx --model authface``); "tensorrt" runs the ``.plan`` engines
        there (``python -m export build-engines --model authface``). Files exported from other
        weights than `checkpoint` are refused.
    onnx_dir: folder of the ONNX files / engines (default ``engines``).
    device: "cpu", "cuda", "cuda:N", or "auto" (cuda when available).
    precision: UNet+ControlNet precision on torch: "fp32", "fp16" or "bf16" (fp16/bf16 need
        CUDA; bf16 also runs on CPU, slowly), or "auto" (fp16 on CUDA, fp32 on CPU).
    scheduler: diffusers sampler: "ddim", "dpmpp" (DPM-Solver++ 2M), "euler", "euler_a"
        (ancestral), "unipc".
    steps: number of denoising steps of the full schedule.
    seed: noise seed; each face gets its own generator with this seed, so results do not
        depend on the other faces of the photo.
    conditioning_scale: weight of the ControlNet residuals (0 = unconditioned prior, 1 = as trained).
    strength: None = faithful mode of the paper (start from pure noise). A value in (0, 1]
        (our extension) starts from the degraded face's latent noised to that strength and
        runs only the last int(steps * strength) steps: faster, closer to the input.
    fp16_vae: run the VAE at `precision` too. Only for an fp16-safe VAE: SDXL's VAE overflows
        in fp16 (NaN / black faces), so by default it stays fp32.
    progress: show a per-step progress bar (only on a terminal).
    channels_last: torch backend: run the networks in the NHWC memory layout (faster
        convolutions; benchmarks/NOTES.md); False keeps the layout they were written in.
    """
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler '{scheduler}'; choose one of {sorted(SCHEDULERS)}")
    settings = dict(scheduler=scheduler, steps=steps, seed=seed, conditioning_scale=conditioning_scale,
                    strength=strength, progress=progress)
    if backend not in ("torch", "onnxruntime", "tensorrt"):
        raise ValueError(f"unknown backend '{backend}'; choose torch, onnxruntime or tensorrt")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if backend == "torch":
        from training.authface import load_or_default

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: no CUDA device here; use device='cpu'")
        if precision == "auto":
            precision = "fp16" if device.startswith("cuda") else "fp32"
        if precision not in DTYPES:
            raise ValueError(f"unknown precision '{precision}'; choose one of {sorted(DTYPES)} or auto")
        if precision == "fp16" and not device.startswith("cuda"):
            raise ValueError("precision fp16 needs a CUDA device; on CPU use fp32 (or bf16)")
        dtype = DTYPES[precision]
        vae_dtype = dtype if fp16_vae else torch.float32
        ckpt = load_or_default(checkpoint)
        return AuthFaceRestorer(TorchSession(ckpt.vae_encoder(), device, vae_dtype, channels_last=channels_last),
                                TorchSession(ckpt.unet_controlnet(), device, dtype, UNET_CONTROLNET.fp32_inputs,
                                             channels_last),
                                TorchSession(ckpt.vae_decoder(), device, vae_dtype, channels_last=channels_last),
                                ckpt.scheduler, latent_channels=int(ckpt.vae.config.latent_channels),
                                provenance=checkpoint_provenance(checkpoint), **settings)
    onnx_dir = Path("engines") if onnx_dir is None else Path(onnx_dir)
    if backend == "onnxruntime":
        from runtime.sessions import onnx_session

        stages = [onnx_session(c, onnx_dir, checkpoint, device) for c in (VAE_ENCODER, UNET_CONTROLNET, VAE_DECODER)]
    else:
        from runtime.tensorrt_session import tensorrt_session

        # the UNet runs every step with the same shapes: CUDA graphs pay off there
        stages = [tensorrt_session(c, onnx_dir, checkpoint, use_cuda_graph=c is UNET_CONTROLNET)
                  for c in (VAE_ENCODER, UNET_CONTROLNET, VAE_DECODER)]
    # TensorRT stages take CUDA tensors (run_torch): the loop then stays on the GPU between steps
    return AuthFaceRestorer(*stages, scheduler_config(checkpoint), device="cuda" if backend == "tensorrt" else "cpu",
                            provenance=checkpoint_provenance(checkpoint), **settings)


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
