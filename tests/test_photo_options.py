"""The photo options (runtime/photo_options.py) are declared once: every front end refuses the
same out-of-range value with the same range, and an option added to the table gets its CLI flags,
its server check, its served ensemble input and its page control with no other edit. The job's
one report (runtime/job.py) says a non-commercial licence in `restore`, `serve`, the client and
the page."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from facerestore.cli import main
from runtime.photo_options import PHOTO_OPTIONS, offered, option
from runtime.samples import ASTRONAUT
from runtime.serving.request_checks import check_options
from runtime.serving.serve import free_port
from tests.conftest import subprocess_env

UPSCALE_RANGE = "must be in [0.125, 8], got 9.0"


def page(backend, tmp_path):
    from runtime.ui.app import Page

    return Page(backend, tmp_path)


def page_values(**given) -> list:
    """The page's photo controls' values: the defaults, `given` over them."""
    return [given.get(o.name, o.default) for o in offered("page")]


def test_every_front_end_refuses_the_same_upscale_with_the_same_range(tmp_path, capsys):
    assert option("upscale").range_text() == "[0.125, 8]"
    # restore and client: exit 2 and the range, before any work (no restorer built, no request sent)
    assert main(["restore", str(ASTRONAUT), "--model", "identity", "--upscale", "9", "--out", str(tmp_path / "r")]) == 2
    assert f"error: upscale {UPSCALE_RANGE}" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    url = f"127.0.0.1:{free_port()}"
    assert main(["client", str(ASTRONAUT), "--upscale", "9", "--url", url, "--out", str(tmp_path / "c")]) == 2
    assert f"error: upscale {UPSCALE_RANGE}" in capsys.readouterr().err
    # the server's request check, and the client library before it sends
    with pytest.raises(ValueError, match=r"^UPSCALE must be in \[0\.125, 8\], got 9\.0$"):
        check_options({"UPSCALE": 9.0})
    from runtime.serving.client import RestoreClient

    with RestoreClient(url, "http") as client, pytest.raises(ValueError, match=r"^UPSCALE must be in \[0\.125, 8\]"):
        client.restore(ASTRONAUT.read_bytes(), upscale=9.0)
    # the page: the same words, nothing restored
    from runtime.ui.backends import LocalBackend

    status = page(LocalBackend(), tmp_path).restore([str(ASTRONAUT)], "identity", *page_values(upscale=9.0))[0]
    assert status == f"**error**: upscale {UPSCALE_RANGE}"
    # and a value inside the range on the low end passes everywhere
    assert option("upscale").check(0.125) == 0.125 and check_options({"UPSCALE": 0.125}) is None


@pytest.mark.parametrize("name,bad,words", [("min_score", 1.5, "must be in [0, 1], got 1.5"),
                                            ("min_face_size", -1.0, "must be in [0, inf), got -1.0"),
                                            ("paste_mask", "oval", "must be one of ['face', 'square'], not 'oval'")])
def test_other_options_are_refused_alike_by_the_server_and_the_page(name, bad, words, tmp_path):
    from runtime.ui.backends import LocalBackend

    with pytest.raises(ValueError) as served:
        check_options({name.upper(): bad.encode() if isinstance(bad, str) else bad})
    assert str(served.value) == f"{name.upper()} {words}"
    status = page(LocalBackend(), tmp_path).restore([str(ASTRONAUT)], "identity", *page_values(**{name: bad}))[0]
    assert status == f"**error**: {name} {words}"


def test_min_score_and_min_face_size_are_served_inputs_applied_by_the_face_step():
    from runtime.contracts.service import POSTPROCESS, PREPROCESS, SERVICES

    served = [o.tensor_name for o in PHOTO_OPTIONS if o.served]
    assert {"UPSCALE", "ONLY_CENTER_FACE", "PASTE_MASK", "COLOUR_FIX", "OUTPUT_FORMAT", "MIN_SCORE",
            "MIN_FACE_SIZE"} == set(served)
    for inputs in (SERVICES["safm"].inputs, PREPROCESS.inputs, POSTPROCESS.inputs):
        assert [t.name for t in inputs if t.name in served] == served
    upscale = next(t for t in PREPROCESS.inputs if t.name == "UPSCALE")
    assert upscale.dtype == "float32" and "in [0.125, 8]" in upscale.help


ADDED = '''
import json, sys
from runtime import photo_options
from runtime.photo_options import PhotoOption

# one entry in the table, before anything reads it
photo_options.PHOTO_OPTIONS += (PhotoOption("sharpen", float, 0.0, "extra sharpening", minimum=0.0, maximum=2.0,
                                            served="float32", step=0.1),)

from facerestore.cli import build_parser, main
from export.triton_repo import model_configs
from runtime.contracts.service import POSTPROCESS, PREPROCESS, SERVICES
from runtime.serving.request_checks import check_options
from runtime.ui.app import build_app
from runtime.ui.backends import LocalBackend

parser = build_parser()
result = {c: parser.parse_args([c, "--sharpen", "1.5"] if c == "client" else [c, sys.argv[1], "--sharpen", "1.5"]).sharpen
          for c in ("restore", "evaluate", "client")}
result["restore_rc"] = main(["restore", sys.argv[1], "--model", "identity", "--sharpen", "5", "--out", sys.argv[2]])
try:
    check_options({"SHARPEN": 5.0})
except ValueError as exc:
    result["served_check"] = str(exc)
result["inputs"] = {name: [t.name for t in inputs] for name, inputs in
                    (("ensemble", SERVICES["safm"].inputs), ("preprocess", PREPROCESS.inputs),
                     ("postprocess", POSTPROCESS.inputs))}
configs = model_configs("cpu", ["safm"])
result["rendered"] = {i.name: i.data_type for i in configs["face_restore_safm"].input}
steps = {s.model_name: sorted(s.input_map) for s in configs["face_restore_safm_job"].ensemble_scheduling.step}
result["steps"] = steps
app = build_app(LocalBackend())
result["controls"] = {b.elem_id: [type(b).__name__, getattr(b, "minimum", None), getattr(b, "maximum", None)]
                      for b in app.blocks.values() if getattr(b, "elem_id", None)}
print(json.dumps(result))
'''


def test_an_option_added_to_the_table_gets_flags_checks_served_input_and_page_control(tmp_path):
    assert "sharpen" not in [o.name for o in PHOTO_OPTIONS]   # added only in the subprocess
    proc = subprocess.run([sys.executable, "-c", ADDED, str(ASTRONAUT), str(tmp_path / "out")], env=subprocess_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["restore"] == result["evaluate"] == result["client"] == 1.5     # the flags
    assert result["restore_rc"] == 2 and "error: sharpen must be in [0, 2], got 5.0" in proc.stderr
    assert result["served_check"] == "SHARPEN must be in [0, 2], got 5.0"          # the server's check
    assert all("SHARPEN" in names for names in result["inputs"].values())          # the served inputs
    assert result["rendered"]["SHARPEN"] == 11                                     # TYPE_FP32 in config.pbtxt
    assert "SHARPEN" in result["steps"]["face_preprocess"] and "SHARPEN" in result["steps"]["face_postprocess"]
    assert result["controls"]["sharpen"] == ["Slider", 0.0, 2.0]                   # the page's control
    assert result["controls"]["upscale"] == ["Slider", 0.125, 8.0]


# --- a non-commercial licence is said by every front end -------------------------------------------

NON_COMMERCIAL = "NOTICE: {} weights are licensed for NON-COMMERCIAL use only (S-Lab License 1.0 (non-commercial))"


@pytest.fixture(scope="module")
def codeformer(tmp_path_factory) -> Path:
    """A random-weight CodeFormer file in the published layout (S-Lab licence: non-commercial)."""
    from runtime.restorers.published import PUBLISHED
    from runtime.restorers.published.restorer import save_random

    return save_random(PUBLISHED["codeformer"], tmp_path_factory.mktemp("cf") / "codeformer.pth", 0)


def test_restore_and_the_page_say_a_non_commercial_licence(codeformer, tmp_path, capsys):
    from runtime.ui.backends import LocalBackend

    out = tmp_path / "restore"
    assert main(["restore", str(ASTRONAUT), "--model", "codeformer", "--checkpoint", str(codeformer), "--backend",
                 "torch", "--out", str(out)]) == 0
    said = capsys.readouterr()
    assert NON_COMMERCIAL.format("codeformer") in said.out and NON_COMMERCIAL.format("codeformer") in said.err
    report = json.loads((out / "report.json").read_text())
    assert report["licence_notice"] == NON_COMMERCIAL.format("codeformer")
    assert report["provenance"]["non_commercial"] is True and report["photos"][0]["faces"] == 1
    assert report["photos"][0]["seconds"] > 0 and report["backend"] == "torch on cpu"
    assert report["settings"]["upscale"] == 1.0 and report["settings"]["fidelity"] == 0.5
    # the page, in-process: the same line in its status and its report.json (the same writer)
    status = page(LocalBackend({"codeformer": codeformer}, "torch"), tmp_path / "page").restore(
        [str(ASTRONAUT)], "codeformer", *page_values(), 0.5)[0]
    assert NON_COMMERCIAL.format("codeformer") in status and "1/1 photos written" in status
    (page_report,) = (tmp_path / "page").glob("run-*/report.json")
    page_json = json.loads(page_report.read_text())
    assert page_json["licence_notice"] == report["licence_notice"] and set(page_json) == set(report)


def test_serve_and_the_client_say_a_non_commercial_licence(monkeypatch, tmp_path, capsys):
    """serve: from the repository's provenance parameters (what the renderer writes), before the
    server starts; the client: from the served model's (probed here by a stand-in: no served
    non-commercial restorer exists on this branch)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from runtime.serving import client
    from training.provenance import Provenance

    origin = Provenance("codeformer from codeformer.pth", True, "S-Lab License 1.0 (non-commercial)", True)
    config = model_config_pb2.ModelConfig(name="codeformer_faces", backend="python")
    config.parameters["provenance"].string_value = json.dumps(origin.to_dict())
    (tmp_path / "repo" / "codeformer_faces").mkdir(parents=True)
    (tmp_path / "repo" / "codeformer_faces" / "config.pbtxt").write_text(text_format.MessageToString(config))
    assert main(["serve", "--repo", str(tmp_path / "repo"), "--server", str(tmp_path / "no-tritonserver"),
                 "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", "--no-supervise"]) == 1
    assert NON_COMMERCIAL.format("served codeformer") in capsys.readouterr().err

    monkeypatch.setattr(client, "served_provenance", lambda urls, protocol, restorer: origin)
    url = f"127.0.0.1:{free_port()}"
    assert main(["client", str(ASTRONAUT), "--url", url, "--retry-s", "0.2", "--out", str(tmp_path / "c")]) == 1
    said = capsys.readouterr()
    assert NON_COMMERCIAL.format("served safm") in said.err and NON_COMMERCIAL.format("served safm") in said.out
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert report["licence_notice"] == NON_COMMERCIAL.format("served safm") and report["photos"][0]["error"]
    assert report["backend"] == f"served: {url} (grpc)" and "no server answers" in report["photos"][0]["error"]
