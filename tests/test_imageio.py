"""Decoding and encoding at the edges: formats, orientation, bombs, corrupt files, atomic writes."""
from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from runtime.files import write_atomic
from runtime.imageio import ImageError, bytes_frame, decode_frame, decode_image, encode_image, frame_bytes, \
    frame_photo, from_float, read_image
from runtime.png import encode_png
from runtime.samples import ASTRONAUT, CAMERA, GRACE_HOPPER, large_photo, read_rgb8
from tests.conftest import subprocess_env


def _png(arr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", arr)
    assert ok
    return buf.tobytes()


def test_rgb_png_round_trip_is_exact():
    data = ASTRONAUT.read_bytes()
    photo = decode_image(data)
    assert photo.rgb.shape == (512, 512, 3) and not photo.grayscale and photo.bit_depth == 8
    again = decode_image(encode_image(photo, ".png"))
    np.testing.assert_array_equal(again.rgb8(), photo.rgb8())


def test_grayscale_stays_grayscale():
    photo = read_image(CAMERA)
    assert photo.grayscale and photo.rgb.shape[2] == 3
    out = Image.open(io.BytesIO(encode_image(photo, ".png")))
    assert out.mode == "L"
    np.testing.assert_array_equal(np.asarray(out), np.asarray(Image.open(CAMERA)))


def test_alpha_is_kept():
    rgba = np.dstack([cv2.imread(str(ASTRONAUT)), np.tile(np.arange(512, dtype=np.uint8)[None] // 2, (512, 1))])
    photo = decode_image(_png(rgba))
    assert photo.alpha is not None
    out = cv2.imdecode(np.frombuffer(encode_image(photo, ".png"), np.uint8), cv2.IMREAD_UNCHANGED)
    assert out.shape == (512, 512, 4)
    np.testing.assert_array_equal(out, rgba)



@pytest.mark.parametrize("suffix,mode", [(".png", "LA"), (".tiff", "LA"), (".webp", "RGBA")])
def test_gray_with_alpha_is_written(suffix, mode):
    """A gray + alpha photo (an LA PNG) comes back gray + alpha where the format has it (WebP has
    no gray: RGBA of the same samples), instead of OpenCV's two-channel error."""
    gray = np.asarray(Image.open(CAMERA).convert("L"))
    la = np.dstack([gray, np.tile(np.arange(512, dtype=np.uint8)[None] // 2, (512, 1))])
    buf = io.BytesIO()
    Image.fromarray(la, "LA").save(buf, "PNG")
    photo = decode_image(buf.getvalue())
    assert photo.grayscale and photo.alpha is not None
    out = Image.open(io.BytesIO(encode_image(photo, suffix)))
    assert out.mode == mode
    if suffix != ".webp":   # lossy
        np.testing.assert_array_equal(np.asarray(out), la)

def test_16_bit_png_keeps_16_bits():
    rgb16 = (cv2.imread(str(ASTRONAUT)).astype(np.uint16) * 257 + 3).astype(np.uint16)
    photo = decode_image(_png(rgb16))
    assert photo.bit_depth == 16
    out = cv2.imdecode(np.frombuffer(encode_image(photo, ".png"), np.uint8), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, rgb16)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_writer_stores_the_samples_exactly(bits, channels):
    """runtime/png.py on a real photo in every PNG colour type and depth: Pillow (8 bits),
    OpenCV and decode_frame read back the very samples (a 16-bit gray + alpha file reads as
    RGBA of the gray, as Pillow opens it)."""
    rgb = read_rgb8(ASTRONAUT)
    ramp = np.tile(np.arange(512, dtype=np.uint8)[None] // 2, (512, 1))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    samples = {1: gray[..., None], 2: np.dstack([gray, ramp]), 3: rgb, 4: np.dstack([rgb, ramp])}[channels]
    if bits == 16:   # samples between the 8-bit steps
        samples = samples.astype(np.uint16) * 257 + np.random.default_rng(0).integers(0, 257, samples.shape, np.uint16)
    data = encode_png(samples)
    frame = decode_frame(data)
    np.testing.assert_array_equal(frame, samples[..., [0, 0, 0, 1]] if (bits, channels) == (16, 2) else samples)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    order = {1: [0], 2: [0, 0, 0, 1], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[channels]   # OpenCV: BGR(A)
    np.testing.assert_array_equal(bgr, samples[..., order].squeeze(2) if channels == 1 else samples[..., order])
    if bits == 8:
        pil = Image.open(io.BytesIO(data))
        assert pil.mode == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        np.testing.assert_array_equal(np.asarray(pil), samples[..., 0] if channels == 1 else samples)


@pytest.mark.parametrize("sample", [ASTRONAUT, GRACE_HOPPER, CAMERA])
def test_png_writer_files_are_no_larger_than_opencvs(sample):
    """The Up filter with ISA-L level 1 against OpenCV's default PNG writer (libpng's adaptive
    filters, zlib level 1): 461 / 488 / 287 kB against 465 / 583 / 409 kB on the samples."""
    rgb = read_rgb8(sample)
    assert len(encode_png(rgb)) <= len(cv2.imencode(".png", rgb[..., ::-1])[1])


def test_png_writer_cuts_the_pixels_into_chunks_readers_accept():
    """A 12 MP photo's pixels in IDAT chunks of at most 1 MiB (libpng caps a chunk's memory at
    8 MB; OpenCV warned of one 8.7 MB chunk), each with its CRC, read back exactly."""
    rgb = large_photo()
    data = encode_png(rgb)
    chunks, at = [], 8
    while at < len(data):
        (length,), kind = struct.unpack(">I", data[at:at + 4]), data[at + 4:at + 8]
        body, (crc,) = data[at + 8:at + 8 + length], struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, length))
        at += 12 + length
    idat = [n for kind, n in chunks if kind == b"IDAT"]
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", 0) and len(idat) == len(chunks) - 2
    assert len(idat) > 2 and max(idat) == 1 << 20
    np.testing.assert_array_equal(decode_frame(data), rgb)


def test_png_writer_refuses_what_png_cannot_hold():
    with pytest.raises(ValueError, match=r"uint8 or uint16 samples \[H, W, 1-4\], got \(4, 4, 5\) uint8"):
        encode_png(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        encode_png(np.zeros((4, 4, 3), np.float32))


def test_from_float_rounds_as_numpy():
    """from_float's OpenCV pass for float32 -> uint8 gives NumPy's clip(rint(x * 255)) on every
    half step and its neighbours, negatives and values over 1, in 2-D, 3-D and 4-D arrays."""
    steps = (np.arange(-64, 256 * 64 + 64) / 64 / 255).astype(np.float32)
    x = np.concatenate([steps, np.nextafter(steps, np.float32(2)), np.nextafter(steps, np.float32(-2)),
                        np.float32([-3.0, 7.0, 0.5 / 255, 1.5 / 255, 254.5 / 255])])
    x = x[: len(x) // 12 * 12]
    for shape in ((-1, 12), (-1, 4, 3), (-1, 2, 2, 3)):
        got = from_float(x.reshape(shape), np.uint8)
        assert got.dtype == np.uint8 and got.shape == x.reshape(shape).shape
        np.testing.assert_array_equal(got.ravel(), np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("orientation,expect", [(6, lambda a: np.rot90(a, -1)), (3, lambda a: a[::-1, ::-1]),
                                                (8, lambda a: np.rot90(a, 1)), (2, lambda a: a[:, ::-1])])
def test_exif_orientation_is_honoured(orientation, expect):
    pil = Image.open(GRACE_HOPPER)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    pil.save(buf, format="PNG", exif=exif)
    photo = decode_image(buf.getvalue())
    np.testing.assert_array_equal(photo.rgb8(), expect(np.asarray(pil.convert("RGB"))))


def _forms() -> dict[str, bytes]:
    """One photo in every form a Photo holds: 8 and 16 bits, gray, alpha, EXIF-rotated."""
    bgr = cv2.imread(str(ASTRONAUT))
    ramp = np.tile(np.arange(512, dtype=np.uint8)[None] // 2, (512, 1))
    deep = bgr.astype(np.uint16) * 257 + np.random.default_rng(0).integers(0, 257, bgr.shape, np.uint16)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = io.BytesIO()
    Image.open(GRACE_HOPPER).save(rotated, format="PNG", exif=exif)
    return {"rgb": _png(bgr), "rgba": _png(np.dstack([bgr, ramp])), "gray": _png(gray),
            "gray+alpha": _pil_png(Image.fromarray(np.dstack([gray, ramp]), "LA")), "16-bit rgb": _png(deep),
            "16-bit rgba": _png(np.dstack([deep, deep[..., 0]])), "16-bit gray": _png(deep[..., 0]),
            "jpeg": GRACE_HOPPER.read_bytes(), "exif 6": rotated.getvalue()}


def _pil_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


FORMS = _forms()


@pytest.mark.parametrize("form", list(FORMS))
def test_decoded_frame_is_the_photo_losslessly(form):
    """What face_preprocess hands to face_postprocess (FRAME): the decoded samples as bytes,
    one a sample for 8 bits, two for 16; the Photo made from them is the decoded photo."""
    data = FORMS[form]
    frame = decode_frame(data)
    wire = frame_bytes(frame)
    assert wire.dtype == np.uint8 and wire.shape == (*frame.shape, frame.dtype.itemsize)
    photo, again = decode_image(data), frame_photo(bytes_frame(wire))
    assert (again.grayscale, again.bit_depth, again.size) == (photo.grayscale, photo.bit_depth, photo.size)
    assert frame.shape[2] == (1 if photo.grayscale else 3) + (photo.alpha is not None)
    np.testing.assert_array_equal(again.rgb, photo.rgb)
    np.testing.assert_array_equal(again.rgb8(), photo.rgb8())
    assert (again.alpha is None) == (photo.alpha is None)
    if photo.alpha is not None:
        np.testing.assert_array_equal(again.alpha, photo.alpha)


def test_empty_file_is_refused(tmp_path):
    f = tmp_path / "empty.jpg"
    f.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty.jpg: empty file"):
        read_image(f)


def test_non_image_is_refused(tmp_path):
    f = tmp_path / "notes.png"
    f.write_text("this is not a picture")
    with pytest.raises(ImageError, match=r"notes.png: not a readable image") as info:
        read_image(f)
    assert " at 0x" not in str(info.value)  # no Python object address in the message


def test_truncated_file_is_refused(tmp_path):
    f = tmp_path / "cut.jpg"
    f.write_bytes(GRACE_HOPPER.read_bytes()[:20000])
    with pytest.raises(ImageError, match=r"cut.jpg: truncated or corrupt"):
        read_image(f)


@pytest.mark.parametrize("form", ["rgb", "rgba", "gray", "gray+alpha"])
def test_png_read_by_opencv_is_pillows_picture(form):
    """The 8-bit PNGs OpenCV decodes (gray, RGB, gray + alpha, RGBA), written by OpenCV, Pillow and
    runtime/png.py: the samples Pillow gives, in Pillow's mode."""
    pil = Image.open(io.BytesIO(FORMS[form]))
    expected = np.asarray(pil.convert(pil.mode))
    for data in (FORMS[form], _pil_png(pil), encode_png(expected if expected.ndim == 3 else expected[..., None])):
        frame = decode_frame(data)
        np.testing.assert_array_equal(frame, expected if expected.ndim == 3 else expected[..., None])


def _with_chunk(png: bytes, kind: bytes, body: bytes, after_pixels: bool) -> bytes:
    """A PNG file with one more chunk, after IHDR or just before IEND."""
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    at = len(png) - 12 if after_pixels else 8 + 25
    return png[:at] + chunk + png[at:]


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("after_pixels", [False, True])
def test_png_exif_orientation_is_honoured_wherever_the_chunk_is(bits, after_pixels):
    """An eXIf chunk (orientation 6) before or after the pixels of an 8- or 16-bit PNG: the photo
    comes out rotated."""
    rgb = read_rgb8(GRACE_HOPPER)
    samples = rgb if bits == 8 else rgb.astype(np.uint16) * 257 + 5
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = decode_image(_with_chunk(encode_png(samples), b"eXIf", exif.tobytes()[6:], after_pixels))
    np.testing.assert_array_equal(photo.pixels, np.rot90(samples, -1))


@pytest.mark.parametrize("bits", [8, 16])
def test_png_exif_in_a_text_chunk_is_honoured(bits):
    """ImageMagick's EXIF in a PNG ("Raw profile type exif" text, hex): orientation 6 turns the
    photo, as Pillow reads it."""
    rgb = read_rgb8(GRACE_HOPPER)
    samples = rgb if bits == 8 else rgb.astype(np.uint16) * 257 + 5
    exif = Image.Exif()
    exif[0x0112] = 6
    raw = exif.tobytes()
    text = b"Raw profile type exif\0" + f"\nexif\n{len(raw):8d}\n{raw.hex()}\n".encode()
    photo = decode_image(_with_chunk(encode_png(samples), b"tEXt", text, after_pixels=False))
    np.testing.assert_array_equal(photo.pixels, np.rot90(samples, -1))


def test_png_source_format_is_read_from_its_chunks():
    """A PNG's ICC profile (iCCP) and EXIF (eXIf, orientation reset to 1) as Pillow gives them."""
    exif = Image.Exif()
    exif[0x0112] = 8
    exif[0x013B] = "NASA"   # Artist
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.open(ASTRONAUT).save(buf, "PNG", icc_profile=icc, exif=exif)
    source = decode_image(buf.getvalue()).source
    assert source.icc == icc and source.qtables is None
    kept = Image.Exif()
    kept.load(source.exif)
    assert kept[0x0112] == 1 and kept[0x013B] == "NASA"


def test_png_in_and_out_imports_no_pillow(tmp_path):
    """Decoding and encoding a plain PNG needs no Pillow (27 ms of a cold start with its plugins)."""
    code = ("import sys\nfrom runtime.imageio import decode_image, encode_image\n"
            f"encode_image(decode_image(open({str(ASTRONAUT)!r}, 'rb').read()), '.png')\n"
            "assert 'PIL' not in sys.modules, sorted(m for m in sys.modules if m.startswith('PIL'))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.parametrize("form", ["rgb", "16-bit rgb"])
def test_truncated_png_is_refused(form):
    with pytest.raises(ImageError, match=r"cut.png: truncated or corrupt"):
        decode_image(FORMS[form][:len(FORMS[form]) // 2], "cut.png")


def test_decompression_bomb_is_refused_before_decoding():
    buf = io.BytesIO()
    Image.new("L", (12000, 12000)).save(buf, format="PNG")
    with pytest.raises(ImageError, match=r"144000000 pixels exceeds the cap of 80000000"):
        decode_image(buf.getvalue(), "bomb.png")


def test_unknown_output_format_is_refused():
    with pytest.raises(ImageError, match=r"cannot write '.gif'"):
        encode_image(read_image(CAMERA), ".gif")


def test_write_atomic_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.bin"
    write_atomic(target, b"first")

    with pytest.raises(TypeError):  # the write fails half-way: str into a binary file
        write_atomic(target, "second")
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_animated_images_are_refused_not_cut_to_their_first_frame():
    frames = [Image.fromarray(np.roll(read_rgb8(CAMERA), 30 * i, axis=1)) for i in range(4)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=80)
    with pytest.raises(ImageError, match=r"clip\.gif: an animated image \(4 frames\); only still images"):
        decode_image(buf.getvalue(), "clip.gif")
    buf = io.BytesIO()
    frames[0].save(buf, "GIF")
    assert decode_image(buf.getvalue(), "still.gif").size == frames[0].size   # one frame is fine
