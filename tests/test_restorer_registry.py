"""A restorer is one spec in the registry (runtime/restorers/): a toy restorer registered here,
in a fresh interpreter, gets its CLI flags, its checks, a rendered Triton ensemble, ONNX export
with parity, and an in-process `restore` on ONNX Runtime, with no other edit."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from runtime.restorers import RESTORERS
from runtime.samples import ASTRONAUT
from tests.conftest import subprocess_env

TOY = '''
import json, sys
from pathlib import Path

import numpy as np
import torch

from runtime.contracts.base import BATCH, NetworkContract, TensorSpec
from runtime.face.pipeline import to_crops
from runtime.restorers import register
from runtime.restorers.base import RestorerOption, RestorerSpec, Settable
from training.provenance import Provenance

GAIN = NetworkContract("toy_gain", inputs=(TensorSpec("image", (BATCH, 3, 512, 512)), TensorSpec("gain", (BATCH, 1))),
                       outputs=(TensorSpec("restored", (BATCH, 3, 512, 512)),), opt_batch=1, max_batch=4,
                       precision="fp32")


class Gain(torch.nn.Module):
    def forward(self, image, gain):
        return (image * gain[:, :, None, None]).clamp(-1, 1)


class ToyRestorer(Settable):
    name = "toy"
    provenance = Provenance("toy: a gain, no weights", True)
    settings = {"gain": 1.0}

    def __init__(self, net):
        self.net = net

    def __call__(self, batch, **settings):
        gain = self.merged(settings)["gain"]
        (out,) = self.net(batch.model_input(), np.full((len(batch), 1), gain, np.float32))
        return to_crops(out)


register(RestorerSpec("toy", "multiplies the faces by a gain", (GAIN,),
                      (RestorerOption("gain", float, 1.0, "the gain", minimum=0.0, maximum=2.0, served="float32"),),
                      build=lambda sessions, data, device, progress: ToyRestorer(sessions["toy_gain"]),
                      torch_modules=lambda checkpoint: {"toy_gain": Gain()},
                      provenance=lambda checkpoint: ToyRestorer.provenance))

# what export needs beyond the spec: real sample inputs of the toy's network
from export.networks import NETWORKS
from export.networks.authface import real_faces
from export.networks.base import restorer_network
from runtime.restorers import RESTORERS

NETWORKS["toy_gain"] = restorer_network(RESTORERS["toy"], GAIN,
                                        lambda batch: (real_faces(batch), np.full((batch, 1), 0.5, np.float32)))

from export.cli import main as export_main
from export.triton_repo import model_configs
from facerestore.cli import build_parser, main
from runtime.serving.request_checks import check_options

out = Path(sys.argv[1])
result = {"flag": build_parser().parse_args(["restore", "--model", "toy", "--gain", "0.5"]).gain,
          "bad_gain_rc": main(["restore", sys.argv[2], "--model", "toy", "--gain", "5", "--out", str(out / "bad")]),
          "export_rc": export_main(["onnx", "--model", "toy", "--out", str(out / "engines")])}
result["restore_rc"] = main(["restore", sys.argv[2], "--model", "toy", "--backend", "onnxruntime", "--engines",
                             str(out / "engines"), "--out", str(out / "toy")])
result["identity_rc"] = main(["restore", sys.argv[2], "--model", "identity", "--out", str(out / "identity")])
try:
    check_options({"GAIN": 5.0})
except ValueError as exc:
    result["served_check"] = str(exc)
configs = model_configs("cpu", ["toy"])
ensemble = configs["face_restore_toy_job"]
result["models"] = sorted(configs)
result["ensemble_inputs"] = [i.name for i in configs["face_restore_toy"].input]
result["steps"] = {s.model_name: sorted(s.input_map) for s in ensemble.ensemble_scheduling.step}
result["faces_inputs"] = {i.name: i.data_type for i in configs["toy_faces"].input}
print(json.dumps(result))
'''


def test_a_toy_restorer_gets_cli_checks_ensemble_export_and_restore_for_free(tmp_path):
    assert "toy" not in RESTORERS   # registered only in the subprocess
    proc = subprocess.run([sys.executable, "-c", TOY, str(tmp_path), str(ASTRONAUT)], env=subprocess_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["flag"] == 0.5                                       # --gain from the option declaration
    assert result["bad_gain_rc"] == 2 and "gain must be in [0, 2], got 5" in proc.stderr
    assert result["export_rc"] == 0 and (tmp_path / "engines" / "toy_gain.onnx").is_file()   # exported, parity checked
    assert "| toy_gain | restored |" in proc.stdout
    assert result["served_check"] == "GAIN must be in [0, 2], got 5.0"    # the server's check, same declaration
    assert result["models"] == ["face_detector", "face_mesh", "face_postprocess", "face_preprocess",
                                "face_restore_toy", "face_restore_toy_job", "toy_faces", "toy_gain"]
    assert "GAIN" in result["ensemble_inputs"] and "GAIN" in result["steps"]["face_preprocess"]
    assert result["steps"]["toy_faces"] == ["CANCEL_FLAG", "CROPS", "DEADLINE", "GAIN"]
    assert result["faces_inputs"]["GAIN"] == 11   # TYPE_FP32
    # restored through its ONNX file at gain 1: the photo the identity check gives, to rounding
    assert result["restore_rc"] == 0 and result["identity_rc"] == 0
    import cv2

    toy, identity = (cv2.imread(str(tmp_path / d / ASTRONAUT.name)).astype(int) for d in ("toy", "identity"))
    assert toy.shape == identity.shape and np.abs(toy - identity).max() <= 2
