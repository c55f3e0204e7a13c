"""A JPEG comes back as the JPEG it was: the input's quantisation tables and chroma subsampling,
its EXIF and ICC profile, so outside the faces its pixels stay within JPEG rounding of the input's
(`restore`; the served job in tests/test_triton.py). Measured on the astronaut as a q99 4:4:4 JPEG
with the demo SaFM: 56.2 dB outside the faces (297 -> 299 kB); the former quality-95 4:2:0
re-encode gave 37.8 dB (101 kB)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, JpegImagePlugin

from facerestore.cli import main
from runtime.face.paste import paste_faces
from runtime.imageio import decode_image, to_uint8
from runtime.samples import ASTRONAUT, GRACE_HOPPER, read_rgb8
from training.metrics import psnr

ARTIST = 0x013B   # an EXIF tag that must survive


def q99_444_jpeg(path: Path = ASTRONAUT) -> bytes:
    """A real photo as a quality-99 4:4:4 JPEG with EXIF (artist, orientation 1) and an sRGB ICC profile."""
    exif = Image.Exif()
    exif[ARTIST] = "NASA"
    exif[0x0112] = 1
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.fromarray(read_rgb8(path)).save(buf, "JPEG", quality=99, subsampling=0, exif=exif.tobytes(), icc_profile=icc)
    return buf.getvalue()


def outside_faces(pipeline, data: bytes) -> np.ndarray:
    """Pixels (bool HxW) no paste mask of the photo's faces reaches."""
    photo = decode_image(data)
    batch = pipeline.align(photo, pipeline.find(photo)[0])
    touched = paste_faces(np.zeros((*photo.rgb.shape[:2], 1), np.float32), np.ones((len(batch), 512, 512, 1), np.float32),
                          batch.affines, pipeline.paste_masks(batch))[..., 0]
    return touched == 0


def check_kept(data: bytes, out: bytes, pipeline) -> float:
    """Asserts the output JPEG keeps the input's tables, subsampling, EXIF and ICC; returns the PSNR
    outside the faces against the input's pixels."""
    src, dst = Image.open(io.BytesIO(data)), Image.open(io.BytesIO(out))
    assert JpegImagePlugin.get_sampling(dst) == JpegImagePlugin.get_sampling(src) == 0
    assert dst.quantization == src.quantization
    assert dst.getexif()[ARTIST] == "NASA" and dst.info["icc_profile"] == src.info["icc_profile"]
    outside = outside_faces(pipeline, data)
    a, b = to_uint8(decode_image(data).rgb), to_uint8(decode_image(out).rgb)
    assert not np.array_equal(a[~outside], b[~outside])   # the face was restored
    return psnr(b[outside], a[outside])


def test_restore_keeps_the_jpeg_tables_subsampling_exif_and_icc(tmp_path, pipeline, capsys):
    data = q99_444_jpeg()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "astronaut.jpg").write_bytes(data)
    assert main(["restore", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 0
    out = (tmp_path / "out" / "astronaut.jpg").read_bytes()
    kept = check_kept(data, out, pipeline)
    print(f"outside the faces: {kept:.1f} dB against the input ({len(data)} -> {len(out)} bytes)")
    assert kept >= 45.0, kept
    assert len(out) > 0.8 * len(data)   # not re-encoded at a lower quality
    # --jpeg-quality: the quality asked for (other tables), EXIF and ICC still kept
    assert main(["restore", str(tmp_path / "in"), "--out", str(tmp_path / "q80"), "--jpeg-quality", "80"]) == 0
    q80 = Image.open(tmp_path / "q80" / "astronaut.jpg")
    assert q80.quantization != Image.open(io.BytesIO(data)).quantization and q80.getexif()[ARTIST] == "NASA"
    assert main(["restore", str(tmp_path / "in"), "--out", str(tmp_path / "bad"), "--jpeg-quality", "0"]) == 2
    assert "error: --jpeg-quality must be in [1, 100], got 0" in capsys.readouterr().err


def test_a_rotated_jpeg_keeps_its_exif_upright(tmp_path):
    """EXIF orientation is applied on reading, so the output's says 1 (upright) and it is not turned twice."""
    exif = Image.Exif()
    exif[0x0112] = 6   # rotate 90 CW to display
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.rot90(read_rgb8(GRACE_HOPPER), 1))).save(buf, "JPEG", quality=95,
                                                                                    exif=exif.tobytes())
    (tmp_path / "grace.jpg").write_bytes(buf.getvalue())
    assert main(["restore", str(tmp_path / "grace.jpg"), "--out", str(tmp_path / "out")]) == 0
    out = Image.open(tmp_path / "out" / "grace.jpg")
    assert out.getexif()[0x0112] == 1 and out.size == (512, 600)
