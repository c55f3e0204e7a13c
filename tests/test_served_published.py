"""Published restorers and a foreign ONNX file served by the one generic faces model
(triton_repo/faces_model.py): random-weight GFPGAN and CodeFormer files in their published key
layout and a facefusion-style ONNX file (`input` and a float64 [1] `weight`), rendered with
`python -m export triton-repo --weights NAME=FILE` into one CPU tritonserver (published networks
as ONNX Runtime models from the ONNX cache of those files; the foreign file run inside its faces
step). The served photo equals the in-process restore (same ONNX files, same runtime code) over
gRPC and HTTP; CodeFormer's fidelity reaches its served w, and the foreign file's weight; the
non-commercial licence is said by `facerestore client`. Few faces: ~2 s (GFPGAN) and ~4 s
(CodeFormer) a face on a CPU."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.cli import main as export_main
from export.onnx_cache import onnx_dir
from facerestore.cli import main
from runtime.face import FacePipeline
from runtime.imageio import decode_image
from runtime.restorers import CONTRACTS, RESTORERS
from runtime.restorers.factory import make_restorer
from runtime.restorers.published import PUBLISHED
from runtime.restorers.published.restorer import save_random
from runtime.samples import ASTRONAUT
from runtime.serving.client import RestoreClient
from runtime.sessions import onnx_session
from tests.test_foreign_onnx import make_onnx
from tests.test_triton import assert_close, in_process

SERVED = ("gfpgan", "codeformer", "onnx")


@pytest.fixture(scope="module")
def published_server(tmp_path_factory, request):
    """One bundled tritonserver serving gfpgan and codeformer from random-weight published files;
    (server, restorer -> its file). Always stopped by a finalizer."""
    from runtime.serving.serve import ServerError, TritonServer

    folder = tmp_path_factory.mktemp("served-published")
    weights = {name: save_random(PUBLISHED[name], folder / f"{name}.pth") for name in SERVED if name in PUBLISHED}
    weights["onnx"] = make_onnx(folder / "codeformer_like.onnx", ("input", "weight"))   # facefusion-style, float64 [1]
    repo = folder / "repo"
    assert export_main(["triton-repo", "--target", "cpu", "--out", str(repo), "--restorers", *SERVED,
                        "--weights", *(f"{n}={p}" for n, p in weights.items())]) == 0
    log = folder / "tritonserver.log"
    server = TritonServer(repo, server="bundled", log=log, exit_timeout=5, ready_timeout=600)
    request.addfinalizer(server.stop)
    try:
        server.start()
    except ServerError:
        print(log.read_text()[-5000:])
        raise
    return server, weights


def pipeline() -> FacePipeline:
    """The in-process face pipeline on the ONNX cache's files, as the rendered server's."""
    return FacePipeline(*(onnx_session(CONTRACTS[n], onnx_dir(CONTRACTS[n], None))
                          for n in ("face_detector", "face_mesh")))


def in_process_restorer(name: str, weights: Path):
    """The in-process restorer on the same ONNX files the server runs (the ONNX cache; a foreign file itself)."""
    spec = RESTORERS[name]
    return make_restorer(name, weights, "onnxruntime", {c.name: onnx_dir(c, weights) for c in spec.networks},
                         progress=False)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_gfpgan_equals_in_process(published_server, protocol):
    server, weights = published_server
    data = ASTRONAUT.read_bytes()
    expected, faces = in_process(data, pipeline(), in_process_restorer("gfpgan", weights["gfpgan"]))
    with RestoreClient(server.url(protocol), protocol, "gfpgan") as client:
        result = client.restore(data, ASTRONAUT.name)
        assert client.provenance().licence == "Apache-2.0"   # the user's file, its licence, said by the server
    assert result.faces == faces == 1
    err = assert_close(result.image, expected)
    assert np.abs(expected - decode_image(data).rgb).max() > 0.05   # the face really was restored
    print(f"gfpgan {protocol}: {result.latency_s * 1000:.0f} ms, max |diff| {err[0]:.1f}/255, mean {err[1]:.2e}")


def test_served_codeformer_fidelity_reaches_w_and_its_licence_is_said(published_server, tmp_path, capsys):
    """w = 0 and w = 1 served equal in-process (one restorer built, its settings per call) and
    differ from each other; `facerestore client` says the non-commercial licence."""
    server, weights = published_server
    data = ASTRONAUT.read_bytes()
    built, faces = in_process_restorer("codeformer", weights["codeformer"]), pipeline()
    served = {}
    for w in (0.0, 1.0):
        out = tmp_path / f"w{w:g}"
        assert main(["client", str(ASTRONAUT), "--restorer", "codeformer", "--fidelity", str(w), "--url",
                     server.grpc_url, "--out", str(out)]) == 0
        served[w] = (out / ASTRONAUT.name).read_bytes()
        expected, _ = in_process(data, faces, RESTORERS["codeformer"].configure(built, fidelity=w))
        assert_close(served[w], expected)
    assert "NOTICE: served codeformer weights are licensed for NON-COMMERCIAL use only" in capsys.readouterr().err
    apart = np.abs(decode_image(served[0.0]).rgb - decode_image(served[1.0]).rgb)
    assert apart.max() > 2 / 255, apart.max() * 255


def test_a_published_restorer_is_rendered_only_with_its_weights(tmp_path, capsys):
    """Without the user's file a named published restorer is refused, saying the flag; unnamed, it is left out."""
    assert export_main(["triton-repo", "--target", "cpu", "--configs-only", "--restorers", "gfpgan", "--out",
                        str(tmp_path / "named")]) == 0   # configs only: nothing of the weights is needed
    assert export_main(["triton-repo", "--target", "cpu", "--restorers", "gfpgan", "--out", str(tmp_path / "r")]) == 2
    assert "--weights gfpgan=PATH" in capsys.readouterr().err


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_foreign_onnx_equals_in_process_and_takes_its_weight(published_server, protocol):
    """The foreign file's float64 `weight` is fed the served FIDELITY: 0 gives the face back, 1 sharpens."""
    server, weights = published_server
    data = ASTRONAUT.read_bytes()
    built, faces = in_process_restorer("onnx", weights["onnx"]), pipeline()
    served = {}
    with RestoreClient(server.url(protocol), protocol, "onnx") as client:
        for w in (0.0, 1.0):
            result = client.restore(data, ASTRONAUT.name, fidelity=w)
            expected, count = in_process(data, faces, RESTORERS["onnx"].configure(built, fidelity=w))
            assert result.faces == count == 1
            assert_close(result.image, expected)
            served[w] = decode_image(result.image).rgb
        assert client.provenance().text.startswith("foreign ONNX codeformer_like.onnx, sha256")
    assert np.abs(served[0.0] - served[1.0]).max() > 2 / 255
