"""AuthFace's options, declared once (its spec lists them; its restorer starts from their defaults)."""
from runtime.restorers.base import RestorerOption

# the diffusers samplers of runtime.restorers.authface.pipeline.SCHEDULERS (a test keeps the two equal)
SCHEDULER_NAMES = ("ddim", "dpmpp", "euler", "euler_a", "unipc")
DEFAULT_STEPS = 20
MAX_SERVED_STEPS = 200   # most denoising steps one served request may ask (each is a UNet call)
AUTHFACE_OPTIONS = (
    RestorerOption("scheduler", str, "ddim", "diffusers sampler", choices=SCHEDULER_NAMES),
    RestorerOption("steps", int, DEFAULT_STEPS, "denoising steps", minimum=1, maximum=1000, served="int32",
                   served_maximum=MAX_SERVED_STEPS),
    RestorerOption("seed", int, 0, "noise seed (per face)", minimum=0, served="int64"),
    RestorerOption("conditioning_scale", float, 1.0, "ControlNet weight", minimum=0.0),
    RestorerOption("strength", float, None, "start from the noised input latent (our extension); "
                                            "none = faithful mode, pure noise", minimum=0.0, maximum=1.0,
                   low_open=True, served="float32"),
)
