"""The per-photo options of the restore job (which faces, how they are pasted back, the output),
declared once, as the restorers declare theirs (`RestorerOption`): name, type, default, range or
choices, help, the served ensemble input (upper-cased name, `served` dtype) and the front ends
that offer it (`offered`: the `restore` / `evaluate` / `client` flags and the page's controls).
The CLI's flags and checks, the server's request checks (runtime/serving/request_checks.py), the
served ensemble inputs (runtime/contracts/service.py), the client and the page are made from
`PHOTO_OPTIONS`. Kept free of torch."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from runtime.face.paste import COLOUR_FIXES, PASTE_MASKS
from runtime.face.pipeline import FaceOptions
from runtime.imageio import ENCODERS
from runtime.restorers.base import RestorerOption

_FACE = FaceOptions()
FRONT_ENDS = ("restore", "evaluate", "client", "page")


@dataclass(frozen=True)
class PhotoOption(RestorerOption):
    """A `RestorerOption` of the job rather than of a restorer: `offered` names the front ends
    that show it (FRONT_ENDS), `aliases` more flags, `step` the page slider's step, `suffix`: a file
    suffix (case and a leading dot ignored)."""

    offered: tuple[str, ...] = FRONT_ENDS
    aliases: tuple[str, ...] = ()
    step: float | None = None
    suffix: bool = False

    def read(self, value: Any, served: bool = False) -> Any:
        """A given value (bytes, text, a number) as this option's type, checked."""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            value = value.strip().lower().lstrip(".") if self.suffix else value.strip()
        if self.type is bool and isinstance(value, str):
            raise ValueError(f"{self.tensor_name if served else self.name} must be true or false, not {value!r}")
        try:
            typed = self.type(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.tensor_name if served else self.name} must be a {self.type.__name__}, "
                             f"not {value!r}") from None
        return self.check(typed, served)


PHOTO_OPTIONS: tuple[PhotoOption, ...] = (
    PhotoOption("only_center_face", bool, _FACE.only_center_face, "restore only the face nearest the centre",
                served="bool"),
    PhotoOption("upscale", float, _FACE.upscale, "output photo scale factor", minimum=0.125, maximum=8.0,
                served="float32", offered=("restore", "client", "page"), step=0.125),
    PhotoOption("output_format", str, "png", "format of the restored photo (the client and the page: the input's own)",
                choices=tuple(sorted(s[1:] for s in ENCODERS)), served="bytes", offered=(), suffix=True),
    PhotoOption("paste_mask", str, _FACE.paste_mask,
                "paste each face back through a soft mask shaped from the face mesh (face) or the whole aligned "
                "square (square); outside the mask the photo is untouched (square for --aligned inputs)",
                choices=PASTE_MASKS, served="bytes"),
    PhotoOption("colour_fix", str, _FACE.colour_fix,
                "give restored faces the input's colours: wavelet (low frequencies from the input, detail from the "
                "restorer), adain (per-channel mean/std) or none", choices=COLOUR_FIXES, served="bytes",
                aliases=("--color-fix",)),
    PhotoOption("min_face_size", float, _FACE.min_face_size, "skip faces narrower than this many photo pixels",
                minimum=0.0, served="float32"),
    PhotoOption("min_score", float, _FACE.min_score, "face detector score threshold", minimum=0.0, maximum=1.0,
                served="float32", step=0.05),
    PhotoOption("size", int, None, "aligned crop side in pixels (default: the restorer's face size, 512 for most)",
                minimum=64, offered=("restore", "evaluate")),
    PhotoOption("aligned", bool, _FACE.aligned, "inputs are already aligned faces: skip detection",
                offered=("restore", "evaluate")),
)


def offered(front_end: str) -> tuple[PhotoOption, ...]:
    """The options `front_end` (one of FRONT_ENDS) shows."""
    return tuple(o for o in PHOTO_OPTIONS if front_end in o.offered)


def served() -> tuple[PhotoOption, ...]:
    """The options a served request may carry (ensemble inputs)."""
    return tuple(o for o in PHOTO_OPTIONS if o.served)


def option(name: str) -> PhotoOption:
    return next(o for o in PHOTO_OPTIONS if o.name == name)


def photo_settings(given: dict[str, Any], served_names: bool = False) -> dict[str, Any]:
    """Every photo option: the `given` values (None = not given), checked, over the defaults
    (paste_mask: square for aligned inputs). ValueError names the first bad one (its served
    name when `served_names`), with its range or choices."""
    settings = {}
    for o in PHOTO_OPTIONS:
        value = given.get(o.tensor_name if served_names else o.name)
        settings[o.name] = o.default if value is None else o.read(value, served_names)
    if given.get("paste_mask") is None and given.get("PASTE_MASK") is None and settings["aligned"]:
        settings["paste_mask"] = "square"
    return settings


def face_options(settings: dict[str, Any], face_size: int = _FACE.size, template: str = _FACE.template) -> FaceOptions:
    """The face pipeline's options from photo settings; the crop side is `size`, else `face_size`,
    aligned on `template` (the restorer's: RestorerSpec.face_crop)."""
    known = {f.name for f in fields(FaceOptions)}
    return FaceOptions(**{**{k: v for k, v in settings.items() if k in known},
                          "size": settings.get("size") or face_size, "template": template})
