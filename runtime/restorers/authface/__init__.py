"""The AuthFace diffusion restorer (AuthFace: Towards Authentic Blind Face Restoration with
Face-Oriented Generative Diffusion Prior): VAE encoder, fused UNet+ControlNet run once per
denoising step, VAE decoder; the loop and the diffusers scheduler in
runtime/restorers/authface/pipeline.py."""
from runtime.restorers.authface.contracts import AUTHFACE_CONTRACTS, UNET_CONTROLNET, VAE_DECODER, VAE_ENCODER
from runtime.restorers.base import RestorerOption, RestorerSpec

# the diffusers samplers of runtime.restorers.authface.pipeline.SCHEDULERS (a test keeps the two equal)
SCHEDULER_NAMES = ("ddim", "dpmpp", "euler", "euler_a", "unipc")
DEFAULT_STEPS = 20
MAX_SERVED_STEPS = 200   # most denoising steps one served request may ask (each is a UNet call)


def _build(*args, **kwargs):
    from runtime.restorers.authface.restorer import build

    return build(*args, **kwargs)


def _torch_modules(checkpoint):
    from runtime.restorers.authface.restorer import torch_modules

    return torch_modules(checkpoint)


def _provenance(checkpoint):
    from runtime.restorers.authface.restorer import checkpoint_provenance

    return checkpoint_provenance(checkpoint)


AUTHFACE_RESTORER = RestorerSpec(
    name="authface",
    summary="the AuthFace diffusion restorer: --checkpoint DIR from `python -m training.authface make-checkpoint`; "
            "without one, random-init tiny (loud warning).",
    networks=AUTHFACE_CONTRACTS,
    options=(
        RestorerOption("scheduler", str, "ddim", "diffusers sampler", choices=SCHEDULER_NAMES),
        RestorerOption("steps", int, DEFAULT_STEPS, "denoising steps", minimum=1, maximum=1000, served="int32",
                       served_maximum=MAX_SERVED_STEPS),
        RestorerOption("seed", int, 0, "noise seed (per face)", minimum=0, served="int64"),
        RestorerOption("conditioning_scale", float, 1.0, "ControlNet weight", minimum=0.0),
        RestorerOption("strength", float, None, "start from the noised input latent (our extension); "
                                                "none = faithful mode, pure noise", minimum=0.0, maximum=1.0,
                       low_open=True, served="float32"),
    ),
    build=_build, torch_modules=_torch_modules, provenance=_provenance,
    fp32_networks=(VAE_ENCODER.name, VAE_DECODER.name), cuda_graph_networks=(UNET_CONTROLNET.name,),
    served_parameters=(("scheduler", "ddim"), ("steps", str(DEFAULT_STEPS))), served_gpu=True,
)
