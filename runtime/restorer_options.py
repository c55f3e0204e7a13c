"""The user-facing options of each restorer, declared once: `facerestore restore` makes its
flags from them and the web page (runtime/ui) its controls. Kept free of torch so that reading
them costs nothing at start-up.

The option names are the keyword names of the restorer factories (make_safm_restorer,
make_authface_restorer) and, for the served options, the lower-cased names of the ensemble
inputs (runtime/contracts/service.py: FIDELITY, STEPS, SEED, STRENGTH).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# the diffusers samplers of runtime.authface.pipeline.SCHEDULERS (a test keeps the two equal)
AUTHFACE_SCHEDULERS = ("ddim", "dpmpp", "euler", "euler_a", "unipc")


@dataclass(frozen=True)
class RestorerOption:
    """One option of a restorer: its name, type, default, range or choices, and help."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. --conditioning-scale."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> None:
        """ValueError (naming the option) unless `value` is allowed; None is allowed when the default is None."""
        if value is None and self.default is None:
            return
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {list(self.choices)}, not {value!r}")
        if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
            raise ValueError(f"{self.name} must be in [{self.minimum}, {self.maximum}], not {value}")


RESTORER_OPTIONS: dict[str, tuple[RestorerOption, ...]] = {
    "identity": (),
    "safm": (
        RestorerOption("fidelity", float, 0.5, "fidelity weight in [0, 1]: local detail from the input's features",
                       minimum=0.0, maximum=1.0),
    ),
    "authface": (
        RestorerOption("scheduler", str, "ddim", "diffusers sampler", choices=AUTHFACE_SCHEDULERS),
        RestorerOption("steps", int, 20, "denoising steps", minimum=1, maximum=1000),
        RestorerOption("seed", int, 0, "noise seed (per face)", minimum=0),
        RestorerOption("conditioning_scale", float, 1.0, "ControlNet weight", minimum=0.0),
        RestorerOption("strength", float, None, "start from the noised input latent (our extension); "
                                                "none = faithful mode, pure noise", minimum=1e-3, maximum=1.0),
    ),
}
