"""The background upsampler: both Real-ESRGAN-class architectures through the published-weights
loader (random weights in the released files' layouts), torch vs ONNX Runtime parity of the
export, tiles that leave no seams, and faces pasted on the upsampled photo."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.face.pipeline import paste_masks
from runtime.imageio import read_image
from runtime.samples import ASTRONAUT, NO_FACE, read_rgb8
from runtime.upsampler import BackgroundUpsampler, onnx_upsampler, torch_upsampler
from training.published.upsamplers import RRDBNet, SRVGGNetCompact, UpsamplerConfig, load_upsampler
from training.published.weights import PublishedWeightsError

# (module, wrapper key of the released file, overlap that covers its receptive field in input pixels)
ARCHS = {
    "rrdbnet_x4": (lambda: RRDBNet(4, 16, 2, 8), "params_ema", 40),       # RealESRGAN_x4plus layout
    "rrdbnet_x2": (lambda: RRDBNet(2, 16, 1, 8), "params_ema", 24),       # RealESRGAN_x2plus layout
    "srvgg_x4": (lambda: SRVGGNetCompact(4, 16, 6), "params", 8),         # realesr-general-x4v3 layout
}


def random_weights(name: str, folder: Path) -> tuple[Path, torch.nn.Module]:
    """A seeded random instance saved as the released .pth files are (a dict under their key)."""
    build, key, _ = ARCHS[name]
    torch.manual_seed(0)
    module = build().eval()
    for p in module.parameters():
        p.data.normal_(0, 0.05)
    path = folder / f"{name}.pth"
    torch.save({key: module.state_dict()}, path)
    return path, module


def photo_tile(h: int = 72, w: int = 88) -> np.ndarray:
    """A real photo's corner (scikit-image's coffee), float32 RGB [0, 1]."""
    return read_rgb8(NO_FACE)[100:100 + h, 150:150 + w].astype(np.float32) / 255


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_loader_infers_the_architecture_and_loads_every_tensor(name, tmp_path):
    path, module = random_weights(name, tmp_path)
    loaded, config = load_upsampler(path)
    expected = {"rrdbnet_x4": UpsamplerConfig("rrdbnet", 4, 16, 2, 8), "rrdbnet_x2": UpsamplerConfig("rrdbnet", 2, 16, 1, 8),
                "srvgg_x4": UpsamplerConfig("srvgg", 4, 16, 6)}[name]
    assert config == expected
    x = torch.from_numpy(photo_tile(24, 32).transpose(2, 0, 1))[None]
    with torch.no_grad():
        assert torch.equal(loaded(x), module(x))
        assert loaded(x).shape[-2:] == (24 * config.scale, 32 * config.scale)


def test_loader_names_the_file_and_the_misfit(tmp_path):
    path, module = random_weights("srvgg_x4", tmp_path)
    state = module.state_dict()
    state["body.2.weight"] = state["body.2.weight"][:, :8]
    bad = tmp_path / "bad.pth"
    torch.save({"params": state}, bad)
    with pytest.raises(PublishedWeightsError, match=r"bad\.pth.*body\.2\.weight.*shape"):
        load_upsampler(bad)
    other = tmp_path / "other.pth"
    torch.save({"params": {"conv.weight": torch.zeros(3, 3, 3, 3)}}, other)
    with pytest.raises(PublishedWeightsError, match=r"other\.pth: neither RRDBNet"):
        load_upsampler(other)


@pytest.mark.parametrize("name", ["rrdbnet_x2", "srvgg_x4"])
def test_onnx_runtime_matches_torch(name, tmp_path):
    from export.onnx_export import export_onnx
    from export.verify import verify_onnx
    from runtime.contracts.upsampler import BG_UPSAMPLER

    path, _ = random_weights(name, tmp_path)
    report = export_onnx(BG_UPSAMPLER, tmp_path / "onnx", path)
    rows = verify_onnx(BG_UPSAMPLER, report.path, path)
    assert rows and all(r.ok for r in rows), rows
    rgb = photo_tile(40, 52)   # another size than the export's sample: height and width are dynamic
    on_torch = torch_upsampler(path).network(rgb)
    on_ort = onnx_upsampler(tmp_path / "onnx", path)
    assert on_ort.scale == on_torch.shape[0] // 40
    np.testing.assert_allclose(on_ort.network(rgb), on_torch, atol=1e-5)


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_tiles_are_seamless(name, tmp_path):
    """Tiled with an overlap covering the receptive field, the output equals the untiled one up
    to float rounding (bound 1e-5); without overlap it does not (the test can fail)."""
    path, _ = random_weights(name, tmp_path)
    whole = torch_upsampler(path).network(photo_tile())
    overlap = ARCHS[name][2]
    tiled = torch_upsampler(path, tile=32, overlap=overlap).network(photo_tile())
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).max() < 1e-5
    seams = torch_upsampler(path, tile=32, overlap=0).network(photo_tile())
    assert np.abs(seams - whole).max() > 1e-3


def test_faces_are_pasted_on_the_upsampled_photo(pipeline, tmp_path):
    """restore_photo with an upsampler: the output is the upsampler's picture outside the face
    masks, and the restored face inside them."""
    from runtime.restore import restore_photo
    from runtime.restorers.factory import make_restorer

    path, _ = random_weights("srvgg_x4", tmp_path)
    photo = read_image(ASTRONAUT)
    upsampler = torch_upsampler(path, tile=128)
    pipeline.options.upscale = 2
    try:
        out, batch, restored, _ = restore_photo(photo, pipeline, make_restorer("identity"), upsampler)
        masks = paste_masks(batch, pipeline.options)
    finally:
        pipeline.options.upscale = 1
    background = upsampler(photo.pixels, 2)
    assert out.size == (photo.size[0] * 2, photo.size[1] * 2) and len(batch) == 1
    import cv2

    affine = batch.affines[0].copy()
    affine[:, :2] /= 2
    inside = cv2.warpAffine(masks[0], cv2.invertAffineTransform(affine), out.size) > 0
    assert out.pixels.dtype == background.dtype == np.uint8
    assert np.array_equal(out.pixels[~inside], background[~inside])
    assert np.abs(out.rgb[inside] - background[inside] / 255).mean() > 1e-3   # the face was pasted there


def test_restore_cli_pastes_faces_on_the_demo_upsampler(tmp_path, capsys):
    """`restore --bg-upsampler demo` (the shipped compact x4, on ONNX Runtime, exported once into
    the cache) at --upscale 2 in 128-px tiles; weights that are no upsampler are refused by name."""
    from facerestore.cli import main

    out = tmp_path / "out"
    assert main(["restore", str(ASTRONAUT), "--model", "identity", "--bg-upsampler", "demo", "--upscale", "2",
                 "--tile", "128", "--out", str(out)]) == 0
    photo, restored = read_image(ASTRONAUT), read_image(out / "astronaut.png")
    assert restored.size == (photo.size[0] * 2, photo.size[1] * 2)
    bad = tmp_path / "bad.pth"
    torch.save({"params": {"conv.weight": torch.zeros(3, 3, 3, 3)}}, bad)
    assert main(["restore", str(ASTRONAUT), "--bg-upsampler", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert f"{bad}: neither RRDBNet" in capsys.readouterr().err


def test_precision_is_chosen_as_the_restorers_choose_it(tmp_path):
    """fp16 is what CUDA gets by default (torch_precision "auto"); a CPU gets fp32 and refuses
    fp16. Both architectures run in half precision end to end (checked here on the CPU's fp16
    kernels, within fp16 rounding of fp32); the next test runs the default session on CUDA."""
    from runtime.contracts.upsampler import BG_UPSAMPLER
    from runtime.restorers.factory import torch_precision
    from runtime.sessions import TorchSession

    assert torch_precision("cuda", "auto") == "fp16" and torch_precision("cpu", "auto") == "fp32"
    for name in ("rrdbnet_x2", "srvgg_x4"):
        path, module = random_weights(name, tmp_path)
        on_cpu = torch_upsampler(path)
        assert on_cpu.session.dtype == torch.float32
        half = BackgroundUpsampler(TorchSession(load_upsampler(path)[0], BG_UPSAMPLER, "cpu", torch.float16),
                                   on_cpu.scale)
        assert next(half.session.module.parameters()).dtype == torch.float16
        rgb = photo_tile(24, 32)
        out = half.network(rgb)
        assert out.dtype == np.float32 and np.abs(out - on_cpu.network(rgb)).max() < 2e-2, name
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        torch_upsampler(path, "cpu", "fp16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the fp16 session on a GPU is not run")
def test_cuda_runs_the_upsampler_in_fp16(tmp_path):
    path, _ = random_weights("srvgg_x4", tmp_path)
    on_gpu, on_cpu = torch_upsampler(path, "cuda"), torch_upsampler(path)
    assert on_gpu.session.dtype == torch.float16
    assert np.abs(on_gpu.network(photo_tile(24, 32)) - on_cpu.network(photo_tile(24, 32))).max() < 2e-2


def test_engine_profile_spans_the_tiles(tmp_path):
    """The upsampler's TensorRT profile comes from the tile size: 1 to tile + 2 x overlap pixels a
    side, optimized for the full tile; the manifest and polygraphy's build config carry it (the
    build itself needs TensorRT and a GPU: not run here)."""
    from export.cli import engine_axes
    from export.tensorrt_build import polygraphy_build, wanted_manifest
    from runtime.contracts.face import FACE_MESH
    from runtime.contracts.upsampler import BG_UPSAMPLER, DEFAULT_OVERLAP, DEFAULT_TILE, tile_axes
    from runtime.engines import BuildTarget

    assert (DEFAULT_TILE, DEFAULT_OVERLAP) == (400, 16)
    assert tile_axes() == {"height": (1, 432, 432), "width": (1, 432, 432)}
    assert BG_UPSAMPLER.profile(2, tile_axes(128, 8)) == {
        "image": ((1, 3, 1, 1), (1, 3, 144, 144), (2, 3, 144, 144))}
    with pytest.raises(ValueError, match="open axes"):
        BG_UPSAMPLER.profile()
    with pytest.raises(ValueError, match="tile side >= 1"):
        tile_axes(0)
    assert engine_axes(FACE_MESH, 0) is None and engine_axes(BG_UPSAMPLER, 256) == tile_axes(256)
    # the biggest tile the runtime feeds (an interior one, with its overlap) is the profile's max
    sizes = []
    upsampler = BackgroundUpsampler(lambda image: (sizes.append(image.shape[2:]) or np.repeat(np.repeat(
        image, 2, 2), 2, 3),), 2, tile=64, overlap=DEFAULT_OVERLAP)
    upsampler.network(np.zeros((150, 200, 3), np.float32))
    low, _, high = tile_axes(64)["height"]
    assert max(max(s) for s in sizes) == high and min(min(s) for s in sizes) >= low
    onnx = tmp_path / "bg_upsampler.onnx"
    onnx.write_bytes(b"onnx")
    target = BuildTarget(tensorrt="10.13.0", gpu="NVIDIA H100 80GB HBM3", compute_capability="9.0")
    manifest = wanted_manifest(BG_UPSAMPLER, onnx, None, target, None, 3, False, tile_axes())
    assert manifest.profiles == {"image": [[1, 3, 1, 1], [1, 3, 432, 432], [4, 3, 432, 432]]}
    config = polygraphy_build(onnx, manifest, tmp_path / "timing.cache")._config
    assert [list(s) for s in config.profiles[0]["image"]] == manifest.profiles["image"] and config.fp16


def test_build_engines_exports_open_height_and_width(tmp_path, capsys):
    """`build-engines --model bg_upsampler --onnx-only`: the demo upsampler's ONNX has symbolic
    height and width and matches torch at two other sizes; --tile 0 is refused before any work."""
    import onnx

    from export.cli import main as export_main
    from training.shipped import DEMO_UPSAMPLER

    assert export_main(["build-engines", "--model", "bg_upsampler", "--onnx-only", "--tile", "0",
                        "--out", str(tmp_path / "none")]) == 2
    assert "tile side >= 1" in capsys.readouterr().err and not (tmp_path / "none").exists()
    assert export_main(["build-engines", "--model", "bg_upsampler", "--onnx-only", "--out", str(tmp_path)]) == 0
    dims = onnx.load(str(tmp_path / "bg_upsampler.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    on_ort, on_torch = onnx_upsampler(tmp_path, None), torch_upsampler(DEMO_UPSAMPLER)   # None: the default weights
    for h, w in ((17, 23), (96, 64)):
        rgb = photo_tile(h, w)
        got, ref = on_ort.network(rgb), on_torch.network(rgb)
        assert got.shape == (4 * h, 4 * w, 3)
        assert np.abs(got - ref).max() < 1e-4, (h, w)
