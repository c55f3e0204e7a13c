"""Checks of a served request, run by face_preprocess before any decode or network call, so a
client mistake is a 400 naming the input and the problem, and no work is spent on a request
that a later step would refuse. Pure Python (no Triton import): the python models, the client
and the tests share it.

A JSON client (KServe v2 JSON without binary tensors) can send the photo as a base64 string
(optionally a ``data:image/...;base64,`` URL); the restored photo then comes back base64 too,
so it is valid UTF-8 inside the JSON answer. Binary photo in, binary photo out.
"""
from __future__ import annotations

import base64
import binascii
import io
import re

from runtime import photo_options
from runtime.contracts.service import FACE, FACE_SIZE, FACE_TEMPLATE, MAX_FACE, MAX_OUTPUT_PIXELS, MAX_TIMEOUT_S, \
    MAX_UPLOAD_BYTES, MIN_FACE, TIMEOUT
from runtime.face.align import TEMPLATES
from runtime.restorers import RESTORERS
from runtime.restorers.base import RestorerOption
from runtime.imageio import ENCODERS, ImageError, pillow

_BASE64 = re.compile(rb"^[A-Za-z0-9+/\s]*={0,2}\s*$")
_DATA_URL = re.compile(rb"^data:[\w/+.-]*;base64,")
_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tiff"}

# every option a request may carry, by tensor name, from its one declaration: the photo options
# (runtime/photo_options.py), the request's TIMEOUT and the restorers' served options
# (runtime/restorers/<name>/)
SERVED_OPTIONS: dict[str, RestorerOption] = {
    **{o.tensor_name: o for o in photo_options.served()},
    TIMEOUT.name: RestorerOption("timeout", float, MAX_TIMEOUT_S, TIMEOUT.help, minimum=0.0, maximum=MAX_TIMEOUT_S,
                                 low_open=True),
    # set by the gate (face_restore_<restorer>) from its restorer: checked as a client's would be
    FACE_SIZE.name: RestorerOption("face_size", int, FACE, FACE_SIZE.help, minimum=MIN_FACE, maximum=MAX_FACE),
    FACE_TEMPLATE.name: RestorerOption("face_template", str, "ffhq", FACE_TEMPLATE.help, choices=tuple(TEMPLATES)),
    **{o.tensor_name: o for spec in RESTORERS.values() for o in spec.served_options()}}
RANGES = {name: o for name, o in SERVED_OPTIONS.items() if not o.choices and o.type is not bool}


def check_number(name: str, value) -> float:
    """A numeric option inside its range (RANGES), else ValueError naming it."""
    return float(RANGES[name].check(float(value), served=True))


def output_suffix(value) -> str:
    """OUTPUT_FORMAT ('png', '.JPG', b'webp', ...) -> an encoder suffix; ValueError if unknown."""
    return ENCODERS["." + photo_options.option("output_format").read(value, served=True)]


def check_options(options: dict[str, object]) -> None:
    """Every option a request sent (tensor name -> value; absent ones left out), checked at once;
    ValueError names the first bad one with its range or choices."""
    for name, value in options.items():
        option = SERVED_OPTIONS.get(name)
        if isinstance(option, photo_options.PhotoOption):
            option.read(value, served=True)
        elif option is not None:
            option.check(value.decode("utf-8", "replace") if isinstance(value, bytes) else
                         value if option.choices else float(value), served=True)


def photo_bytes(raw: bytes | str | None, limit: int = MAX_UPLOAD_BYTES) -> tuple[bytes, bool]:
    """The encoded photo of an IMAGE element and whether it came base64 (JSON clients).
    ImageError when missing, or larger than `limit` bytes once decoded."""
    if raw is None:
        raise ImageError("input IMAGE is required (the encoded photo)")
    data = raw.encode() if isinstance(raw, str) else bytes(raw)
    if len(data) > limit * 4 // 3 + 4096:   # room for base64 of a photo at the limit
        raise ImageError(f"IMAGE: upload of {len(data)} bytes exceeds the limit of {limit} bytes")
    encoded = data and image_suffix(data) is None and (_DATA_URL.match(data[:100]) or _BASE64.match(data))
    if encoded:
        try:
            data = base64.b64decode(_DATA_URL.sub(b"", data, count=1), validate=False)
        except (binascii.Error, ValueError):
            raise ImageError("IMAGE: not a readable image, nor valid base64") from None
    if len(data) > limit:
        raise ImageError(f"IMAGE: upload of {len(data)} bytes exceeds the limit of {limit} bytes")
    return data, bool(encoded)


def image_suffix(data: bytes) -> str | None:
    """The file suffix of encoded photo bytes ('.png', '.jpg', ...), None if unknown."""
    try:
        return _FORMATS.get(pillow().open(io.BytesIO(data)).format)
    except Exception:
        return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the photo's header, without decoding pixels; None if unreadable."""
    try:
        return pillow().open(io.BytesIO(data)).size
    except Exception:
        return None


def passes_through(data: bytes, faces: int, upscale: float, suffix: str) -> bool:
    """Whether the photo comes back as it was sent, byte for byte (no decode, paste or encode), as
    `facerestore restore` copies it: no face, scale 1, asked for in its own format (`suffix`)."""
    return faces == 0 and upscale == 1 and image_suffix(data) == suffix


def check_output_size(size: tuple[int, int] | None, upscale: float) -> None:
    """ImageError when the photo `size` scaled by `upscale` is empty or over MAX_OUTPUT_PIXELS."""
    if size is None:
        return
    w, h = size
    out_w, out_h = round(w * upscale), round(h * upscale)
    if out_w < 1 or out_h < 1:
        raise ImageError(f"{w}x{h} scaled by UPSCALE {upscale:g} is an empty photo")
    if out_w * out_h > MAX_OUTPUT_PIXELS:
        raise ImageError(f"{w}x{h} upscaled {upscale:g}x exceeds {MAX_OUTPUT_PIXELS} output pixels")


def answer_bytes(encoded: bytes, as_base64: bool) -> bytes:
    """The restored photo in the form the photo came in (base64 text for a base64 upload)."""
    return base64.b64encode(encoded) if as_base64 else encoded
