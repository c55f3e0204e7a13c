"""Photos at the edges: decode (EXIF orientation, grayscale, alpha, 16-bit), encode, atomic writes.

Inside the pipeline a photo is its decoded samples, uint8 RGB (uint16 for a 16-bit PNG), plus
what is needed to give it back in its own form: grayscale stays grayscale, alpha is kept,
16-bit PNG keeps 16 bits. No step makes a float copy of the whole frame: the face pipeline
reads 8-bit pixels, and only each face's own region is colour-fixed and pasted in float
(runtime/face/paste.py), so a photo costs a small multiple of its decoded size. Decoding is
two steps: the decoded samples (`decode_frame`, uint8 or uint16, gray/alpha channels as stored:
the served job hands them from its first step to its last as bytes, `frame_bytes`), then
their Photo (`frame_photo`); a frame gives the same Photo wherever it is made. What encoding
keeps of the input file (`source_format`: a JPEG's quantisation tables and chroma subsampling,
EXIF, ICC profile) is read from its header, so a JPEG comes back with its own tables and outside
the faces its pixels stay within JPEG rounding of the input's.
"""
from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from runtime.files import write_atomic
from runtime.png import encode_png, exif_in_text, icc_profile, png_chunks

# A decompression bomb is refused before its pixels are decoded.
DEFAULT_MAX_PIXELS = 80_000_000

ENCODERS = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg", ".webp": ".webp", ".bmp": ".bmp",
            ".tif": ".tiff", ".tiff": ".tiff"}


class ImageError(ValueError):
    """A photo that cannot be read or written; the message names the file and the cause."""


def pillow():
    """PIL.Image, imported where it is used (a PNG in and out needs none of it: 27 ms of a cold
    start with its plugins), with Pillow's own pixel cap off: ours comes first, with a clear message."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    return Image


@dataclass
class SourceFormat:
    """What re-encoding keeps of the input file: a JPEG's quantisation tables and chroma
    subsampling (PIL's: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0), its EXIF (orientation reset to 1: the
    decoded pixels are upright) and ICC profile. JPEG outputs carry all four; other formats none."""

    qtables: dict[int, list[int]] | None = None
    subsampling: int | None = None
    exif: bytes | None = None
    icc: bytes | None = None


def source_format(data: bytes) -> SourceFormat:
    """The SourceFormat of encoded image bytes, from the header only (an unreadable file: empty).
    A PNG's from its chunks: the EXIF of its eXIf chunk (Pillow would decode the whole photo to
    look for one after the pixels) and its ICC profile."""
    png = png_chunks(data)
    if png is not None:
        return SourceFormat(exif=_upright_exif(bytes(png[b"eXIf"][0])) if b"eXIf" in png else None,
                            icc=icc_profile(png))
    from PIL import JpegImagePlugin

    try:
        pil = pillow().open(io.BytesIO(data))
        exif = pil.getexif()
    except Exception:   # decode_frame names the file and the cause; nothing to keep here
        return SourceFormat()
    jpeg = pil.format == "JPEG"
    sampling = JpegImagePlugin.get_sampling(pil) if jpeg else -1
    return SourceFormat(qtables={k: list(v) for k, v in pil.quantization.items()} if jpeg else None,
                        subsampling=sampling if sampling >= 0 else None, exif=_upright_exif(exif),
                        icc=pil.info.get("icc_profile") or None)


def _upright_exif(exif) -> bytes | None:
    """EXIF (a Pillow Exif, or the bytes of a PNG's eXIf chunk) with its orientation reset to 1,
    as bytes; None when it holds no tag."""
    if isinstance(exif, bytes):
        exif = _load_exif(exif)
    if 0x0112 in exif:
        exif[0x0112] = 1
    return exif.tobytes() if len(exif) else None


def _load_exif(data: bytes):
    """A Pillow Exif of EXIF bytes (TIFF header first, as in a PNG's eXIf chunk)."""
    exif = pillow().Exif()
    exif.load(data)
    return exif


@dataclass
class Photo:
    """A decoded photo: RGB samples HxWx3, uint8 (uint16: 16 bits), plus the facts needed to
    restore its form."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None   # HxW, pixels' dtype, or None
    grayscale: bool = False
    source: SourceFormat | None = field(default=None, repr=False, compare=False)  # what encoding keeps of the input
    pixels8: np.ndarray | None = field(default=None, repr=False, compare=False)  # a 16-bit photo's rgb8(), once made

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def bit_depth(self) -> int:
        """8 or 16."""
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def rgb(self) -> np.ndarray:
        """A float32 [0, 1] copy of the whole frame (4x an 8-bit photo's size): for tests and
        analysis; the restore path never makes one."""
        return to_float(self.pixels)

    def rgb8(self) -> np.ndarray:
        """uint8 RGB HxWx3, the form the face networks read: an 8-bit photo's pixels themselves,
        a 16-bit photo's rounded to 8 bits once and kept (read-only: `pixels` is the master)."""
        if self.pixels.dtype == np.uint8:
            return self.pixels
        if self.pixels8 is None:
            self.pixels8 = to_8bit(self.pixels)
        return self.pixels8


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8 with rounding."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 or uint16 samples -> float32 in [0, 1] (to_uint8's inverse for uint8)."""
    return x.astype(np.float32) / float(np.iinfo(x.dtype).max)


def from_float(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float [0, 1] -> uint8 or uint16 samples, clipped and rounded (to_float's inverse). float32 ->
    uint8 in one OpenCV pass over the non-negative part (the same float32 product x * 255,
    rounded half to even and saturated: the same samples, 2.5x faster than NumPy's four passes)."""
    if np.dtype(dtype) == np.uint8 and x.dtype == np.float32 and x.ndim > 1 and x.size:
        positive = np.maximum(x, 0.0)
        return cv2.convertScaleAbs(positive.reshape(len(x), -1), alpha=255.0).reshape(x.shape)
    top = float(np.iinfo(dtype).max)
    return np.clip(np.rint(x * top), 0, top).astype(dtype)


def to_8bit(x: np.ndarray) -> np.ndarray:
    """uint8 or uint16 samples -> uint8, a uint16 sample x rounded to x / 257 (as through float:
    to_uint8(to_float(x)), all 65536 values alike) without a float copy of the frame."""
    return x if x.dtype == np.uint8 else cv2.convertScaleAbs(x, alpha=1 / 257)


def _decoded_by_opencv(data: bytes, png: dict | None) -> bool:
    """Whether a file is a PNG (its chunks: `png`) that OpenCV decodes to the samples Pillow gives,
    faster and without Pillow's copy of the frame: 16 bits (Pillow has no 16-bit RGB) and 8-bit
    gray, RGB, gray + alpha and RGBA (IHDR's bit depth, byte 24, and colour type, byte 25) with
    no tRNS chunk (palettes and colour keys stay Pillow's)."""
    return png is not None and (data[24] == 16 or (data[24] == 8 and data[25] in (0, 2, 4, 6) and b"tRNS" not in png))


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Decode encoded image bytes into a Photo (with its SourceFormat); raise ImageError naming
    `name` and the cause."""
    photo = frame_photo(decode_frame(data, name, max_pixels))
    photo.source = source_format(data)
    return photo


def decode_frame(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes into their samples, EXIF orientation applied: uint8 (uint16 for
    a 16-bit PNG) [H, W, C], C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA. All a Photo holds, in
    its own bit depth (frame_photo); ImageError naming `name` and the cause."""
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    png = png_chunks(data)
    if _decoded_by_opencv(data, png):   # the header from the chunks: no Pillow
        width, height = struct.unpack_from(">II", png[b"IHDR"][0])
        _refuse_bombs_and_animations(name, width, height, struct.unpack_from(">I", png[b"acTL"][0])[0]
                                     if b"acTL" in png else 1, max_pixels)
        orientation = _png_orientation(data, png)
        grayscale = data[25] == 0 or (data[25] == 4 and data[24] == 8)   # as Pillow: 16-bit gray + alpha is RGBA
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise ImageError(f"{name}: truncated or corrupt image data (OpenCV could not decode the PNG)")
        if arr.ndim == 3:   # OpenCV gives BGR(A), gray + alpha as BGRA
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB if arr.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    else:
        try:
            pil = pillow().open(io.BytesIO(data))
        except Exception as exc:  # PIL raises several types for non-images
            reason = re.sub(r" ?<[^<>]* at 0x[0-9a-fA-F]+>", "", str(exc))  # no Python object addresses
            raise ImageError(f"{name}: not a readable image ({type(exc).__name__}: {reason})") from None
        _refuse_bombs_and_animations(name, *pil.size, getattr(pil, "n_frames", 1), max_pixels)
        try:
            pil.load()
        except Exception as exc:
            raise ImageError(f"{name}: truncated or corrupt image data ({exc})") from None
        orientation = pil.getexif().get(0x0112, 1)
        grayscale = pil.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
        has_alpha = pil.mode in ("LA", "RGBA", "PA") or (pil.mode == "P" and "transparency" in pil.info)
        mode = ("LA" if has_alpha else "L") if grayscale else ("RGBA" if has_alpha else "RGB")
        arr = np.asarray(pil if pil.mode == mode else pil.convert(mode))   # no copy of a photo in its mode
    arr = _apply_orientation(arr if arr.ndim == 3 else arr[..., None], orientation)
    if grayscale and arr.shape[2] > 2:   # gray samples given as RGB(A): one channel (and alpha) is all of them
        arr = arr[..., [0, 3] if arr.shape[2] == 4 else [0]]
    return np.ascontiguousarray(arr)


def _refuse_bombs_and_animations(name: str, width: int, height: int, frames: int, max_pixels: int) -> None:
    """ImageError for a photo over the pixel cap (before its pixels are decoded) or of several frames."""
    if width * height > max_pixels:
        raise ImageError(f"{name}: {width}x{height} = {width * height} pixels exceeds the cap of "
                         f"{max_pixels} (decompression-bomb guard: --max-pixels of facerestore restore / serve)")
    if frames > 1:
        raise ImageError(f"{name}: an animated image ({frames} frames); only still images are restored "
                         "(send one frame)")


def _png_orientation(data: bytes, png: dict) -> int:
    """A PNG's EXIF orientation (1 without EXIF): from its eXIf chunk, wherever it is; EXIF in a
    text chunk (ImageMagick's) as Pillow reads it, after decoding the pixels (those are rare)."""
    if b"eXIf" in png:
        return _load_exif(bytes(png[b"eXIf"][0])).get(0x0112, 1)
    if exif_in_text(png):
        try:
            pil = pillow().open(io.BytesIO(data))
            pil.load()
            return pil.getexif().get(0x0112, 1)
        except Exception:   # OpenCV's decode names what is wrong with the file
            return 1
    return 1


def frame_photo(frame: np.ndarray) -> Photo:
    """The Photo of decoded samples (decode_frame's [H, W, C], uint8 or uint16): RGB and alpha
    in the frame's own dtype (no float copy), grayscale when C is 1 or 2."""
    gray = frame.shape[2] in (1, 2)
    color = np.ascontiguousarray(np.repeat(frame[..., :1], 3, axis=2) if gray else frame[..., :3])
    alpha = np.ascontiguousarray(frame[..., -1]) if frame.shape[2] in (2, 4) else None
    return Photo(pixels=color, alpha=alpha, grayscale=gray)


def frame_bytes(frame: np.ndarray) -> np.ndarray:
    """Decoded samples [H, W, C] as uint8 [H, W, C, B], B bytes per sample (1: uint8, 2: uint16
    little-endian): one tensor type for both bit depths, 8-bit frames at one byte a sample
    (runtime/contracts/service.py FRAME). bytes_frame gives the samples back."""
    if frame.dtype == np.uint8:
        return frame[..., None]
    return np.ascontiguousarray(frame, "<u2").view(np.uint8).reshape(*frame.shape, 2)


def bytes_frame(wire: np.ndarray) -> np.ndarray:
    """frame_bytes' inverse: uint8 [H, W, C, B] -> the samples [H, W, C], uint8 or uint16."""
    return wire[..., 0] if wire.shape[-1] == 1 else np.ascontiguousarray(wire).view("<u2")[..., 0]


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation tag (1..8) to an HxWxC array."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
           7: lambda a: np.rot90(a, 1)[::-1], 8: lambda a: np.rot90(a, 1)}
    return np.ascontiguousarray(ops[orientation](arr)) if orientation in ops else arr


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Read and decode a photo file; raise ImageError naming the file and the cause."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, str(path), max_pixels)


def encode_image(photo: Photo, suffix: str, jpeg_quality: int | None = None) -> bytes:
    """Encode a Photo in its own form (gray/alpha/bit depth) for a file suffix such as '.png'.
    JPEG: with the input's quantisation tables, subsampling, EXIF and ICC (photo.source), or at
    `jpeg_quality` (1-100) when given; quality 95 for a photo that was no JPEG."""
    ext = ENCODERS.get(suffix.lower())
    if ext is None:
        raise ImageError(f"cannot write '{suffix}' files; use one of {sorted(ENCODERS)}")
    eight = ext not in (".png", ".tiff") or photo.bit_depth == 8
    rgb = to_8bit(photo.pixels) if eight else photo.pixels
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if photo.grayscale else None
    if ext == ".jpg":   # the samples themselves, no copy
        return _encode_jpeg(rgb if gray is None else gray, photo.source or SourceFormat(), jpeg_quality)
    alpha = None
    if photo.alpha is not None and ext in (".png", ".tiff", ".webp"):
        alpha = (to_8bit(photo.alpha) if eight else photo.alpha)[..., None]
    if ext == ".png":   # RGB(A) or gray(+alpha) in 8 or 16 bits, the samples as they are
        samples = rgb if gray is None else gray[..., None]
        return encode_png(samples if alpha is None else np.concatenate([samples, alpha], axis=2))
    out = np.concatenate([rgb[..., ::-1] if gray is None else gray[..., None]] + ([] if alpha is None else [alpha]),
                         axis=2)   # BGR(A)
    if out.shape[2] == 2:   # gray + alpha: OpenCV writes no two-channel image
        if eight:     # PIL does: LA in TIFF (WebP has no gray: RGBA)
            buf = io.BytesIO()
            pillow().fromarray(out, "LA").save(buf, {".tiff": "TIFF", ".webp": "WEBP"}[ext])
            return buf.getvalue()
        out = out[..., [0, 0, 0, 1]]   # 16-bit TIFF: neither writes 16-bit LA; RGBA of the same samples
    ok, buf = cv2.imencode(ext, out)
    if not ok:
        raise ImageError(f"OpenCV could not encode a {out.shape} {out.dtype} image as {ext}")
    return buf.tobytes()


def _encode_jpeg(samples: np.ndarray, source: SourceFormat, quality: int | None) -> bytes:
    """uint8 gray [H, W] or RGB [H, W, 3] as JPEG (Pillow): `quality` when given, else the
    source's quantisation tables (95 without), its chroma subsampling, EXIF and ICC."""
    if quality is not None and not 1 <= quality <= 100:
        raise ImageError(f"JPEG quality must be in [1, 100], got {quality}")
    options: dict = {"quality": quality} if quality is not None else (
        {"qtables": source.qtables} if source.qtables else {"quality": 95})
    if source.subsampling is not None and samples.ndim == 3:
        options["subsampling"] = source.subsampling
    options.update({k: v for k, v in (("exif", source.exif), ("icc_profile", source.icc)) if v})
    buf = io.BytesIO()
    pillow().fromarray(np.ascontiguousarray(samples), "L" if samples.ndim == 2 else "RGB").save(buf, "JPEG", **options)
    return buf.getvalue()


def write_image(path: Path, photo: Photo) -> None:
    """Encode a Photo by the path's suffix and write it atomically."""
    write_atomic(path, encode_image(photo, Path(path).suffix))

