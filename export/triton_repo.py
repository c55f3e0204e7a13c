"""Render the Triton model repository from the contracts, for two servers.

Both renderings have the same models, tensors and ensembles (runtime/contracts/service.py):

- ``face_restore_<restorer>`` (the gate, python: triton_repo/gate_model.py) hands each request to
  ``face_restore_<restorer>_job`` (ensemble): face_preprocess -> <restorer>_faces ->
  face_postprocess, and tells the faces step when its gRPC client cancelled
- ``face_preprocess``, ``face_postprocess``, ``<restorer>_faces``: python backend, KIND_CPU
  (``authface_faces`` KIND_GPU in the gpu rendering: its denoising loop stays on the device);
  sources committed under triton_repo/<name>/1/model.py (they import ``runtime``, installed in
  the image: deploy/docker/); every ``<restorer>_faces`` is the one generic
  triton_repo/faces_model.py (a link in the committed rendering, a copy in a rendered one) with
  ``1/weights.json``, what the restorer needs of its weights besides its networks; a queue
  policy each (max queue size, queue timeout: the service's Capacity), so that overload is
  refused at once instead of queueing
- one model per network (face_detector, face_mesh, safm, vae_encoder, unet_controlnet,
  vae_decoder): max_batch_size, dims and names from its NetworkContract, dynamic batching
  (preferred batches never 1, so concurrent photos merge):
    gpu  platform tensorrt_plan, KIND_GPU, <name>/1/model.plan (the NGC container's tritonserver),
         model_warmup, CUDA graphs for the UNet+ControlNet; plans refused unless built for the
         image's TensorRT (deploy/docker/ngc.env) and one GPU
    cpu  python backend running ONNX Runtime on <name>/1/model.onnx (nvidia-pytriton's CPU
         tritonserver has only the python backend); model.py = triton_repo/onnxruntime_model.py

The committed triton_repo/ is the ``gpu`` rendering's text (a test keeps it equal to this
renderer's output); the binaries (model.plan, model.onnx, weights.json) are filled
in by ``python -m export triton-repo`` and git-ignored.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from runtime.restorers import CONTRACTS, MODEL_GROUPS, RESTORERS
from export.ngc import ngc_release
from runtime.contracts.base import NetworkContract
from runtime.engines import BuildTarget
from runtime.contracts.service import BG_UPSAMPLER_TILE, GATES, POSTPROCESS, PYTHON_MODELS, SERVICES, TRITON_TYPES, \
    Capacity, PythonModel, RestorerService, ServiceTensor, triton_dims
from runtime.contracts.upsampler import BG_UPSAMPLER, tile_axes
from runtime.files import write_atomic
from runtime.weights import source_id

SOURCE_REPO = Path(__file__).resolve().parents[1] / "triton_repo"   # committed sources
ONNXRUNTIME_MODEL = SOURCE_REPO / "onnxruntime_model.py"
GATE_MODEL = SOURCE_REPO / "gate_model.py"   # face_restore_<restorer>/1/model.py
FACES_MODEL = SOURCE_REPO / "faces_model.py"   # <restorer>_faces/1/model.py, every restorer's
WEIGHTS_DATA = "weights.json"   # <restorer>_faces/1/: RestorerSpec.weights_data of the served weights
MARKER = ".rendering.json"   # what a rendering wrote (target, models), to clean up a re-render
TARGETS = ("cpu", "gpu")
HEADER = ("# Rendered by `python -m export triton-repo --target {target}` from runtime/contracts;\n"
          "# edit the contracts (or export/triton_repo.py), not this file.\n")

# instances per model kind and target, unless a Capacity says otherwise: python
# pre/post-processing scales with CPU cores (on the CPU server every model competes for the same
# few cores, and each python instance is a process that imports torch: one each); each network
# is one instance with dynamic batching (faces of concurrent photos batch up)
INSTANCES = {"cpu": {"python": 1, "network": 1}, "gpu": {"python": 4, "network": 1}}
# how long the batcher waits for a preferred batch; none for a per-step network (the UNet+ControlNet:
# 2 ms on each of 20 steps would be 40 ms a request; batches form from the steps queued meanwhile)
QUEUE_DELAY_US = {"cpu": 1000, "gpu": 2000}
# the server's command-line flags the rendering needs, one per line (deploy/docker/tritonserver.sh reads it)
SERVER_ARGS = "tritonserver.args"
# Triton's CUDA memory pool per GPU when not set: 64 MB (tritonserver --help, --cuda-memory-pool-byte-size)
TRITON_DEFAULT_CUDA_POOL = 64 << 20
CUDA_GRAPH_NETWORKS = ("unet_controlnet",)   # runs every step with the same shapes: graphs pay off
WARMUP_COUNT = 2


class RepoError(RuntimeError):
    """A repository that cannot be rendered; the message says what to run."""


def _mc():
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2


def _text(config, target: str) -> str:
    from google.protobuf import text_format

    return HEADER.format(target=target) + text_format.MessageToString(config)


def _add_service_tensor(field, spec: ServiceTensor) -> None:
    mc = _mc()
    t = field.add(name=spec.name, data_type=getattr(mc, TRITON_TYPES[spec.dtype]))
    t.dims.extend(spec.shape)
    if spec.optional:
        t.optional = True


def _add_service_io(config, inputs, outputs) -> None:
    """Declare a served model's input and output tensors on its config."""
    for spec in inputs:
        _add_service_tensor(config.input, spec)
    for spec in outputs:
        _add_service_tensor(config.output, spec)


def network_config(contract: NetworkContract, target: str, capacity: Capacity = Capacity(),
                   sizes: dict[str, int] | None = None):
    """config.pbtxt (a ModelConfig) of one network model; `sizes`: its open image axes in the
    gpu warm-up (the upsampler's tile)."""
    mc = _mc()
    config = mc.ModelConfig(name=contract.name, max_batch_size=contract.max_batch)
    if target == "gpu":
        config.platform = "tensorrt_plan"
    else:
        config.backend = "python"
    for field, specs in ((config.input, contract.inputs), (config.output, contract.outputs)):
        for spec in specs:
            dims, reshape = triton_dims(spec)
            t = field.add(name=spec.name, data_type=getattr(mc, TRITON_TYPES[spec.dtype]))
            t.dims.extend(dims)
            if reshape is not None:
                t.reshape.SetInParent()
                t.reshape.shape.extend(reshape)
    kind = mc.ModelInstanceGroup.KIND_GPU if target == "gpu" else mc.ModelInstanceGroup.KIND_CPU
    config.instance_group.add(kind=kind, count=capacity.network_instances or INSTANCES[target]["network"])
    config.dynamic_batching.preferred_batch_size.extend(preferred_batch_sizes(contract))
    config.dynamic_batching.max_queue_delay_microseconds = 0 if contract.per_step else QUEUE_DELAY_US[target]
    if target == "gpu":
        if contract.name in CUDA_GRAPH_NETWORKS:
            config.optimization.cuda.graphs = True
            for batch in range(1, contract.max_batch + 1):   # every batch the batcher can form
                config.optimization.cuda.graph_spec.add(batch_size=batch)
        _add_warmup(config, contract, sizes)
    return config


def preferred_batch_sizes(contract: NetworkContract) -> list[int]:
    """The batches the dynamic batcher waits (up to max_queue_delay) to form: never 1, which it
    would send at once, so that faces of concurrent photos merge."""
    return sorted({contract.opt_batch, contract.max_batch} - {1}) or [contract.max_batch]


def cuda_memory_pool_bytes(restorers: list[str] | None = None, capacity: Capacity = Capacity()) -> int:
    """Triton's CUDA memory pool for the gpu rendering: the python backend moves a GPU model's
    BLS tensors through it and falls back to slower CUDA IPC when it is full (python_backend
    r24.12 src/infer_response.cc). Each GPU python instance has one network call in flight at a
    time (its async chunks are bounded by the network's max batch), so the pool holds, per
    instance, its largest call's inputs and outputs at max batch (AuthFace: the 25 MB control
    image of 8 faces plus latents), on top of Triton's own default of 64 MB."""
    per_instance = {model.name: max(CONTRACTS[n].call_bytes(CONTRACTS[n].max_batch) for n in model.networks)
                    for s in (_service(r) for r in (restorers or list(SERVICES))) for model in s.steps
                    if model.gpu and model.networks}
    instances = capacity.python_instances or INSTANCES["gpu"]["python"]
    total = TRITON_DEFAULT_CUDA_POOL + instances * sum(per_instance.values())
    return -(-total // (1 << 20)) << 20   # whole MiB


def server_args(restorers: list[str] | None = None, capacity: Capacity = Capacity()) -> list[str]:
    """The tritonserver flags a gpu rendering needs (written to <repository>/tritonserver.args)."""
    return [f"--cuda-memory-pool-byte-size=0:{cuda_memory_pool_bytes(restorers, capacity)}"]


def _add_warmup(config, contract: NetworkContract, sizes: dict[str, int] | None = None) -> None:
    """model_warmup at batch 1 and max_batch: the engine's first requests do not pay for CUDA
    context, memory pools and graph capture."""
    mc = _mc()
    for batch in sorted({1, contract.max_batch}):
        warmup = config.model_warmup.add(name=f"batch{batch}", batch_size=batch, count=WARMUP_COUNT)
        for spec in contract.inputs:
            dims = spec.concrete(1, sizes)[1:] if sizes else triton_dims(spec)[0]
            warmup.inputs[spec.name].data_type = getattr(mc, TRITON_TYPES[spec.dtype])
            warmup.inputs[spec.name].dims.extend(dims)
            warmup.inputs[spec.name].random_data = True


def python_config(model: PythonModel, target: str, capacity: Capacity = Capacity()):
    """config.pbtxt of a python-backend model of the served job (not batched: one photo per
    request), with the capacity's instances and queue policy."""
    mc = _mc()
    config = mc.ModelConfig(name=model.name, backend="python", max_batch_size=0)
    _add_service_io(config, model.inputs, model.outputs)
    on_gpu = target == "gpu" and model.gpu
    kind = mc.ModelInstanceGroup.KIND_GPU if on_gpu else mc.ModelInstanceGroup.KIND_CPU
    config.instance_group.add(kind=kind, count=capacity.python_instances or INSTANCES[target]["python"])
    # the queue lives in the dynamic batcher; with max_batch_size 0 it forms no batches
    policy = config.dynamic_batching.default_queue_policy
    policy.max_queue_size = capacity.max_queue_size
    policy.default_timeout_microseconds = round(capacity.queue_timeout_s * 1e6)
    policy.timeout_action = mc.ModelQueuePolicy.REJECT
    for key, value in model.parameters:
        config.parameters[key].string_value = value
    if "max_pixels" in config.parameters:
        config.parameters["max_pixels"].string_value = str(capacity.max_pixels)
    if on_gpu:   # inputs stay where they are (a GPU tensor is read through DLPack)
        config.parameters["FORCE_CPU_ONLY_INPUT_TENSORS"].string_value = "no"
    return config


def ensemble_config(service: RestorerService):
    """config.pbtxt of ``face_restore_<restorer>_job``: the steps only wire tensors, by name."""
    mc = _mc()
    config = mc.ModelConfig(name=service.job, platform="ensemble", max_batch_size=0)
    _add_service_io(config, service.job_inputs, service.outputs)
    wanted = {t.name for t in service.outputs}
    available = {t.name for t in service.job_inputs}   # a step's optional input this ensemble lacks stays unmapped
    for i, model in enumerate(service.steps):
        step = config.ensemble_scheduling.step.add(model_name=model.name, model_version=-1)
        for spec in model.inputs:
            if spec.name in available:
                step.input_map[spec.name] = spec.name
        later = {t.name for m in service.steps[i + 1:] for t in m.inputs}
        for spec in model.outputs:   # Triton refuses an ensemble with an unused tensor
            if spec.name in wanted | later:
                step.output_map[spec.name] = spec.name
                available.add(spec.name)
    return config


def model_configs(target: str, restorers: list[str] | None = None, capacity: Capacity = Capacity(),
                  bg_tile: int | None = None) -> dict[str, object]:
    """Every model of a rendering: name -> ModelConfig (networks, python models, ensembles),
    with the capacity's instance counts and queue policy; `bg_tile`: serve the background
    upsampler step (its network model, face_postprocess told the tile side), None: not."""
    if target not in TARGETS:
        raise RepoError(f"unknown target '{target}'; choose one of {TARGETS}")
    services = [_service(r) for r in (restorers or list(SERVICES))]
    configs: dict[str, object] = {}
    for service in services:
        for name in service.networks:
            configs[name] = network_config(CONTRACTS[name], target, capacity)
        for model in service.steps:
            configs[model.name] = python_config(model, target, capacity)
        configs[service.job] = ensemble_config(service)
        configs[service.ensemble] = gate_config(service, target, capacity)
    if bg_tile is not None:
        try:
            axes = tile_axes(bg_tile)
        except ValueError as exc:
            raise RepoError(str(exc)) from None
        configs[BG_UPSAMPLER.name] = network_config(BG_UPSAMPLER, target, capacity, {a: r[1] for a, r in axes.items()})
        configs[POSTPROCESS.name].parameters[BG_UPSAMPLER_TILE].string_value = str(bg_tile)
    return configs


def gate_config(service: RestorerService, target: str, capacity: Capacity):
    """config.pbtxt of ``face_restore_<restorer>``, the gate (triton_repo/gate_model.py): the
    served inputs and outputs, described in its parameters (GET /v2/models/<name>/config); as
    many instances as the job's three steps hold at once (it only waits on them), and the
    steps' queue policy."""
    config = python_config(service.gate, target, capacity)
    config.instance_group[0].count *= len(service.steps)
    config.parameters["face_size"].string_value = str(service.face_size)   # the weights' own when rendered with them
    config.parameters["face_template"].string_value = service.face_template
    for spec in service.inputs + service.outputs:
        config.parameters[spec.name].string_value = spec.help
    return config


def _service(restorer: str) -> RestorerService:
    if restorer not in SERVICES:
        raise RepoError(f"unknown restorer '{restorer}'; choose from {sorted(SERVICES)}")
    return SERVICES[restorer]


def _link_or_copy(src: Path, dst: Path, link: bool = True) -> None:
    """Hard-link (binaries: engines can be GBs) or copy (sources, or across file systems); replaces dst."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        if not link:
            raise OSError
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def _onnx_file(contract: NetworkContract, engines: Path | None, checkpoint: Path | None) -> Path:
    """<engines>/<name>.onnx of the given weights, exported first when missing; an ONNX file
    of other weights is refused (as runtime.sessions.onnx_session does). engines None: the
    ONNX cache's file of these weights (export.onnx_cache: keyed by their digest, exported once)."""
    from export.onnx_cache import onnx_dir, onnx_up_to_date

    if engines is None:
        try:
            return onnx_dir(contract, checkpoint) / f"{contract.name}.onnx"
        except ValueError as exc:
            raise RepoError(f"{exc} (or --engines DIR of ONNX files)") from None
    path = Path(engines) / f"{contract.name}.onnx"
    if not path.is_file():
        from export.onnx_export import export_onnx

        print(f"{contract.name}: {path} missing, exporting it", file=sys.stderr)
        export_onnx(contract, engines, checkpoint)
    if not onnx_up_to_date(contract, path, checkpoint):
        raise RepoError(f"{path}: exported from other weights than {checkpoint or 'the default'}; "
                        f"run `python -m export onnx --model {contract.name} --out {engines}"
                        f"{f' --checkpoint {checkpoint}' if checkpoint else ''}` (or remove it)")
    return path


def _check_engine(contract: NetworkContract, plan: Path, checkpoint: Path | None, server: BuildTarget,
                  bg_tile: int | None = None) -> None:
    """An engine serves its model only if built for the server's TensorRT and GPU
    (runtime.engines.check_loadable), from the same weights, with a profile reaching the
    config's max_batch_size (the contract's max_batch) and, for open image axes, the largest
    tile (tile_axes of `bg_tile`)."""
    from runtime.engines import EngineMismatch, check_loadable

    try:
        manifest = check_loadable(plan, server)
    except EngineMismatch as exc:
        raise RepoError(f"{exc} (the server image is {ngc_release().server_image}: build engines in "
                        f"{ngc_release().tensorrt_image}, `make docker-engines`)") from None
    if manifest.source_weights != source_id(checkpoint):
        raise RepoError(f"{plan}: built from other weights ({manifest.source_weights}) than "
                        f"{checkpoint or 'the default'}; rebuild with `python -m export build-engines`")
    top = min(shape[2][0] for shape in manifest.profiles.values())
    if top < contract.max_batch:
        raise RepoError(f"{plan}: its profile stops at batch {top}, the Triton config batches up to "
                        f"{contract.max_batch}; rebuild without --max-batch")
    if contract.open_axes() and bg_tile is not None:
        wanted = contract.profile(contract.max_batch, tile_axes(bg_tile))
        if any(manifest.profiles[name][2][1:] < list(shapes[2][1:]) for name, shapes in wanted.items()):
            raise RepoError(f"{plan}: its profile stops at {manifest.profiles}, tiles of {bg_tile} need "
                            f"{wanted}; rebuild with `python -m export build-engines --model {contract.name} "
                            f"--tile {bg_tile}`")


def server_target(plans: list[Path], gpu: str | None = None) -> BuildTarget:
    """What the engines must be built for: the TensorRT of the NGC server image
    (deploy/docker/ngc.env) and one GPU, `gpu` when given (the name TensorRT reports, e.g.
    'NVIDIA H100 80GB HBM3'), else the GPU of the first plan (then all must agree)."""
    from runtime.engines import EngineMismatch, read_manifest

    tensorrt = ngc_release().tensorrt
    if not plans:
        return BuildTarget(tensorrt=tensorrt, gpu=gpu or "", compute_capability="")
    try:
        first = read_manifest(plans[0]).target
    except EngineMismatch as exc:
        raise RepoError(str(exc)) from None
    if gpu is not None and gpu != first.gpu:
        raise RepoError(f"{plans[0]}: built for GPU {first.gpu}, the server runs on {gpu}; rebuild on that GPU")
    return BuildTarget(tensorrt=tensorrt, gpu=first.gpu, compute_capability=first.compute_capability)


def model_group(network: str) -> str:
    """The `export --model` group (face, safm, authface) a network belongs to."""
    return next(g for g, names in MODEL_GROUPS.items() if network in names)


def render_repo(target: str, out: Path, engines: Path | None = None, restorers: list[str] | None = None,
                checkpoints: dict[str, Path | None] | None = None, configs_only: bool = False,
                gpu: str | None = None, capacity: Capacity = Capacity(), allow_untrained: bool = False,
                bg_tile: int | None = None) -> list[str]:
    """Write the model repository for `target` ('cpu' or 'gpu') into `out`.

    engines: folder of <network>.onnx (cpu; missing ones are exported from `checkpoints`; None:
        the ONNX cache, keyed by the weights' digest) or <network>.plan (gpu; a missing plan is an
        error unless configs_only).
    restorers: which ensembles (default: all of runtime.contracts.service.SERVICES).
    checkpoints: weights per model group ('face', 'safm', 'authface'); None = the default
        (committed MediaPipe ports, demo safm-tiny, random-init tiny AuthFace).
    gpu: the serving GPU's name (gpu target): plans built on another are refused; None = the
        GPU of the first plan, all plans must agree.
    capacity: instance counts and the python steps' queue policy (runtime.contracts.service.Capacity).
    allow_untrained: serve restorers whose weights' provenance says untrained; else one named in
        `restorers` is a RepoError, and without `restorers` they are left out (a note on stderr).
    bg_tile: serve the background upsampler step, tiles of this side (its weights:
        checkpoints['bg_upsampler'], default the shipped compact x4 demo); None: no upsampler.
    Returns the model names written."""
    out, checkpoints = Path(out), dict(checkpoints or {})
    if not configs_only:
        restorers = trained_restorers(restorers, checkpoints, allow_untrained)
    configs = model_configs(target, restorers, capacity, bg_tile)
    in_source = out.resolve() == SOURCE_REPO.resolve()
    if in_source and target != "gpu":
        raise RepoError(f"{out} holds the committed gpu rendering; render --target {target} into another folder")
    if not configs_only and engines is None and target == "gpu":
        raise RepoError("--engines is needed for the gpu target (or --configs-only)")
    if not in_source:
        _remove_stale(out, set(configs))
    missing = []
    faces = {SERVICES[r].faces.name: r for r in restorers or SERVICES}
    weights_data = {name: _weights_data(restorer, checkpoints.get(restorer)) for name, restorer in faces.items()}
    for name, restorer in faces.items():   # the gate sends the weights' own crop (a foreign ONNX file's)
        for key in ("face_size", "face_template"):
            if (value := (weights_data[name] or {}).get(key)) is not None:
                configs[SERVICES[restorer].ensemble].parameters[key].string_value = str(value)
    plans = [Path(engines) / f"{n}.plan" for n in configs if n in CONTRACTS] if target == "gpu" and engines else []
    server = server_target([p for p in plans if p.is_file()], gpu) if target == "gpu" and not configs_only else None
    for name, config in configs.items():
        folder = out / name
        if name in PROVENANCE and not configs_only:  # the client reads it and warns about untrained weights
            origin = PROVENANCE[name](checkpoints.get(name.removesuffix("_faces")))
            config.parameters["provenance"].string_value = json.dumps(origin.to_dict())
            if notice := origin.licence_notice(name.removesuffix("_faces")):   # said where it is served
                print(notice, file=sys.stderr)
        write_atomic(folder / "config.pbtxt", _text(config, target).encode())
        (folder / "1").mkdir(parents=True, exist_ok=True)
        shared = GATE_MODEL if name in GATES else FACES_MODEL if name in faces else None
        if (name in PYTHON_MODELS or name in GATES) and not in_source:
            _link_or_copy(shared or SOURCE_REPO / name / "1" / "model.py", folder / "1" / "model.py", link=False)
        elif shared and not (folder / "1" / "model.py").exists():   # committed: a link to the one source
            (folder / "1" / "model.py").symlink_to(os.path.relpath(shared, folder / "1"))
        if weights_data.get(name) is not None:   # what the restorer needs of its weights besides its networks
            write_atomic(folder / "1" / WEIGHTS_DATA, json.dumps(weights_data[name], indent=2).encode())
            spec = RESTORERS[faces[name]]
            for file, source in (spec.served_files(checkpoints.get(spec.name)) if spec.served_files else {}).items():
                _link_or_copy(Path(source), folder / "1" / file)
        if name in CONTRACTS and target == "cpu" and not configs_only:
            checkpoint = checkpoints.get(model_group(name))
            _link_or_copy(_onnx_file(CONTRACTS[name], engines, checkpoint), folder / "1" / "model.onnx")
            _link_or_copy(ONNXRUNTIME_MODEL, folder / "1" / "model.py", link=False)
        if name in CONTRACTS and target == "gpu" and not configs_only:
            plan = Path(engines) / f"{name}.plan"
            if plan.is_file():
                _check_engine(CONTRACTS[name], plan, checkpoints.get(model_group(name)), server, bg_tile)
                _link_or_copy(plan, folder / "1" / "model.plan")
            else:
                missing.append(str(plan))
    if target == "gpu":
        write_atomic(out / SERVER_ARGS, ("\n".join(server_args(restorers, capacity)) + "\n").encode())
    if not in_source:
        write_atomic(out / MARKER, json.dumps({"target": target, "models": sorted(configs)}, indent=2).encode())
    if missing:
        raise RepoError(f"TensorRT engines missing: {', '.join(missing)}; build them (`python -m export "
                        f"build-engines`) on the GPU, or pass --configs-only")
    return sorted(configs)


def _weights_data(restorer: str, checkpoint: Path | None) -> dict | None:
    """RestorerSpec.weights_data of the served weights; None for a restorer that ships none and
    was not given the user's (a configs-only rendering)."""
    spec = RESTORERS[restorer]
    return None if spec.needs_checkpoint and checkpoint is None else spec.weights_data(checkpoint)


def trained_restorers(restorers: list[str] | None, checkpoints: dict[str, Path | None],
                      allow_untrained: bool) -> list[str]:
    """The restorers to render: `restorers` (default: all of SERVICES) less those without weights
    that ship none (the published ones: the user's files) and those whose weights are untrained,
    unless `allow_untrained`; such a one named in `restorers` is a RepoError."""
    from runtime.restorers.factory import UntrainedWeights, check_trained

    keep = []
    for restorer in restorers or list(SERVICES):
        try:
            RESTORERS[_service(restorer).restorer].check_checkpoint(checkpoints.get(restorer))
        except ValueError as exc:   # a restorer that ships no weights is served only with the user's
            if restorers:
                raise RepoError(f"{exc} (--weights {restorer}=PATH)") from None
            continue
        try:
            check_trained(restorer, checkpoints.get(restorer), allow_untrained)
        except UntrainedWeights as exc:
            if restorers:
                raise RepoError(str(exc)) from None
            print(f"note: {restorer} not served: {exc}", file=sys.stderr)
            continue
        keep.append(restorer)
    if not keep:
        raise RepoError("no restorer with trained weights to serve; pass --allow-untrained to serve untrained ones")
    return keep


# the restorer models of the served job -> what their weights are (a config parameter)
PROVENANCE = {s.faces.name: RESTORERS[s.restorer].provenance for s in SERVICES.values() if RESTORERS[s.restorer].provenance}


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Remove models an earlier rendering wrote into `out` that this one does not have; refuse
    a non-empty folder that no rendering made."""
    marker = out / MARKER
    if marker.is_file():
        for name in json.loads(marker.read_text()).get("models", []):
            if name not in keep and (out / name).is_dir():
                shutil.rmtree(out / name)
    elif out.is_dir() and any(out.iterdir()):
        raise RepoError(f"{out}: not empty and not a rendered model repository; choose an empty --out")
