"""Labels that tell the truth: every checkpoint says where its weights came from, and restore
says loudly when faces come from an untrained model (random init, imported VQGAN only)."""
from __future__ import annotations

import json

import pytest

from facerestore.cli import main
from runtime.samples import GRACE_HOPPER
from training.authface.checkpoint import provenance as authface_provenance
from training.provenance import safm_provenance
from training.shipped import DEMO_SAFM
from training.safm.__main__ import main as safm_main


def test_random_safm_checkpoint_is_labelled_untrained(tmp_path, capsys):
    assert safm_main(["init", "--config", "safm-tiny", "--seed", "5", "--out", str(tmp_path / "rand")]) == 0
    origin = safm_provenance(tmp_path / "rand.safetensors")
    assert not origin.trained and "random init, seed 5" in origin.text
    out = tmp_path / "out"
    args = ["restore", str(GRACE_HOPPER), "--checkpoint", str(tmp_path / "rand.safetensors"), "--out", str(out)]
    assert main(args) == 2   # refused before any work: one line, nothing written
    err = capsys.readouterr().err.strip()
    assert err == ("error: safm weights are untrained (safm-tiny random init, seed 5): their output is not a restored "
                   "face; train or import real weights (README: Training), or pass --allow-untrained to run them anyway")
    assert not out.exists()
    assert main(args + ["--allow-untrained"]) == 0
    captured = capsys.readouterr()
    assert "warning: safm weights are UNTRAINED (safm-tiny random init, seed 5)" in captured.err
    assert "1 faces run through UNTRAINED weights, not restored" in captured.out
    report = json.loads((out / "report.json").read_text())
    assert report["provenance"] == {"text": "safm-tiny random init, seed 5", "trained": False}
    assert report["untrained"] is True


def test_shipped_demo_is_labelled_trained(tmp_path, capsys):
    origin = safm_provenance(DEMO_SAFM)
    assert origin.trained and "trained" in origin.text
    assert main(["restore", str(GRACE_HOPPER), "--out", str(tmp_path)]) == 0
    assert "UNTRAINED" not in capsys.readouterr().err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["provenance"]["trained"] is True and report["untrained"] is False


def test_authface_provenance_rules():
    """Random init and a ControlNet made from_unet (zero convs: it ignores the face) are untrained;
    a stage II run trains it; the null prompt's origin is part of the text."""
    random = authface_provenance({"weights": "random init, seed 0", "null_prompt": "random (not a text encoding)"})
    assert not random.trained and "null prompt: random" in random.text
    imported = authface_provenance({"weights": "/sdxl", "controlnet": "ControlNetModel.from_unet (zero convs at zero)",
                                    "null_prompt": "zeros (not an encoding of \"\")"})
    assert not imported.trained and "from_unet and not trained" in imported.text and "zeros" in imported.text
    trained = authface_provenance({"weights": "/sdxl", "controlnet": "from_unet", "stage2": {"step": 1200},
                                   "null_prompt": "encoded"})
    assert trained.trained and "1200 steps (stage II)" in trained.text


def test_random_authface_is_refused_unless_allowed_then_warns_and_reports(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["restore", str(GRACE_HOPPER), "--model", "authface", "--steps", "2", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: authface weights are untrained (random init") and err.count("\n") == 1
    assert not out.exists()
    assert main(["evaluate", str(GRACE_HOPPER), "--model", "authface", "--out", str(out)]) == 2
    assert "--allow-untrained" in capsys.readouterr().err
    assert main(args + ["--allow-untrained"]) == 0
    assert "warning: authface weights are UNTRAINED (random init" in capsys.readouterr().err
    assert json.loads((out / "report.json").read_text())["provenance"]["trained"] is False


def test_serving_renders_only_trained_restorers_unless_allowed(tmp_path, capsys):
    from export.triton_repo import RepoError, render_repo

    from export.triton_repo import trained_restorers

    assert render_repo("cpu", tmp_path / "configs", restorers=None, configs_only=True)   # no weights read
    assert trained_restorers(None, {}, False) == ["safm"]   # by default the untrained AuthFace is left out ...
    assert "note: authface not served: authface weights are untrained" in capsys.readouterr().err
    assert trained_restorers(None, {}, True) == ["safm", "authface"]   # ... or served when asked
    with pytest.raises(RepoError, match=r"^authface weights are untrained \(random init.*--allow-untrained"):
        render_repo("cpu", tmp_path / "named", tmp_path / "engines", ["authface"])
    assert main(["serve", "--render", "cpu", "--repo", str(tmp_path / "named"), "--restorers", "authface",
                 "--engines", str(tmp_path / "engines")]) == 2
    assert "error: authface weights are untrained" in capsys.readouterr().err
    assert not (tmp_path / "engines").exists()   # refused before any export
