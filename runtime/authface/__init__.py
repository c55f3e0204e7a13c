"""AuthFace inference: the restorer (denoising loop over three sessions) and its factory."""
from runtime.authface.factory import make_authface_restorer, scheduler_config
from runtime.authface.pipeline import SCHEDULERS, AuthFaceRestorer, make_scheduler

__all__ = ["AuthFaceRestorer", "SCHEDULERS", "make_authface_restorer", "make_scheduler",
           "scheduler_config"]
