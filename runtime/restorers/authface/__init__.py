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


def _impl():
    """The restorer's code, loaded on first use (the spec itself stays light: no torch)."""
    from runtime.restorers.authface import restorer

    return restorer


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
    build=lambda *a, **k: _impl().build(*a, **k), torch_modules=lambda c: _impl().torch_modules(c),
    provenance=lambda c: _impl().checkpoint_provenance(c),
    fp32_networks=(VAE_ENCODER.name, VAE_DECODER.name), cuda_graph_networks=(UNET_CONTROLNET.name,),
    served_parameters=(("scheduler", "ddim"), ("steps", str(DEFAULT_STEPS))), served_gpu=True,
)
