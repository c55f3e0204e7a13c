"""The AuthFace diffusion restorer (AuthFace: Towards Authentic Blind Face Restoration with
Face-Oriented Generative Diffusion Prior): VAE encoder, fused UNet+ControlNet run once per
denoising step, VAE decoder; the loop and the diffusers scheduler in
runtime/restorers/authface/pipeline.py."""
from runtime.restorers.authface.contracts import AUTHFACE_CONTRACTS, UNET_CONTROLNET, VAE_DECODER, VAE_ENCODER
from runtime.restorers.authface.options import AUTHFACE_OPTIONS, SCHEDULER_NAMES
from runtime.restorers.base import RestorerSpec


def _impl():
    """The restorer's code, loaded on first use (the spec itself stays light: no torch)."""
    from runtime.restorers.authface import restorer

    return restorer


AUTHFACE_RESTORER = RestorerSpec(
    name="authface",
    summary="the AuthFace diffusion restorer: --checkpoint DIR from `python -m training.authface make-checkpoint`; "
            "without one, random-init tiny (loud warning).",
    networks=AUTHFACE_CONTRACTS,
    options=AUTHFACE_OPTIONS,
    build=lambda *a, **k: _impl().build(*a, **k), weights_data=lambda c: _impl().weights_data(c),
    torch_modules=lambda c: _impl().torch_modules(c), provenance=lambda c: _impl().checkpoint_provenance(c),
    fp32_networks=(VAE_ENCODER.name, VAE_DECODER.name), cuda_graph_networks=(UNET_CONTROLNET.name,),
    served_gpu=True,
)

__all__ = ["AUTHFACE_RESTORER", "SCHEDULER_NAMES"]
