"""One ONNX cache for every command and backend, keyed by the weights' digest: rendering the
served repository does not write into the checkout's engines/, `restore --backend onnxruntime`
exports by itself as `--backend auto` does, and a folder the user names is used as given."""
from __future__ import annotations

import os
import shutil

from export.onnx_cache import cache_root, onnx_dir
from export.triton_repo import render_repo
from facerestore.cli import main
from runtime.job import choose_backend
from runtime.restorers.safm.contracts import SAFM
from runtime.samples import GRACE_HOPPER
from training.safm.__main__ import main as safm_main


def test_serve_rendering_and_restore_share_one_cache_and_never_read_engines(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)   # a checkout's working folder: engines/ is where serve wrote before
    render_repo("cpu", tmp_path / "repo", None, ["safm"])
    assert not (tmp_path / "engines").exists()
    cached = onnx_dir(SAFM) / "safm.onnx"   # the demo weights' file, the one the repository serves
    assert cached.parent.parent == cache_root() / "onnx"
    assert os.path.samefile(cached, tmp_path / "repo" / "safm" / "1" / "model.onnx") or \
        cached.read_bytes() == (tmp_path / "repo" / "safm" / "1" / "model.onnx").read_bytes()
    # an engines/ holding the demo's ONNX (as serve --render cpu used to leave) is not read by default
    (tmp_path / "engines").mkdir()
    shutil.copy(cached, tmp_path / "engines" / "safm.onnx")
    assert safm_main(["init", "--config", "safm-tiny", "--seed", "9", "--out", str(tmp_path / "mine")]) == 0
    mine = ["restore", str(GRACE_HOPPER), "--checkpoint", str(tmp_path / "mine.safetensors"), "--allow-untrained"]
    capsys.readouterr()
    assert main(mine + ["--backend", "onnxruntime", "--out", str(tmp_path / "ort")]) == 0   # no manual export
    err = capsys.readouterr().err
    assert err.count("note: exporting safm to ONNX once") == 1 and "engines/safm.onnx" not in err
    assert main(mine + ["--out", str(tmp_path / "auto")]) == 0   # --backend auto: the same cached file
    assert "exporting" not in capsys.readouterr().err
    backend, precision = choose_backend("auto", "safm")   # OpenVINO bf16 on an AMX CPU, else ONNX Runtime fp32
    assert main(mine + ["--backend", backend, "--precision", precision, "--out", str(tmp_path / "chosen")]) == 0
    assert "exporting" not in capsys.readouterr().err
    assert (tmp_path / "chosen" / "grace_hopper.jpg").read_bytes() == (tmp_path / "auto" / "grace_hopper.jpg").read_bytes()
    # the folder the user names is used as given: its file of other weights stays a clear error
    assert main(mine + ["--backend", "onnxruntime", "--engines", "engines", "--out", str(tmp_path / "given")]) == 2
    assert "engines/safm.onnx: exported from other weights" in capsys.readouterr().err


def test_the_page_on_onnxruntime_reads_the_same_cache(monkeypatch, tmp_path):
    from runtime.face import FaceOptions
    from runtime.ui.backends import LocalBackend

    monkeypatch.chdir(tmp_path)
    page = LocalBackend(backend="onnxruntime", locate=onnx_dir)   # as `facerestore ui --backend onnxruntime`
    outcome = page.restore(GRACE_HOPPER.name, GRACE_HOPPER.read_bytes(), "safm", {"fidelity": 0.5}, FaceOptions(),
                           lambda *a: None)
    assert outcome.result.faces == 1 and not (tmp_path / "engines").exists()
