"""The Kubernetes overlay of a GPU deployment (`python -m export k8s-overlay`): deploy/k8s as its
base, the server image from the registry the cluster pulls from, tagged with the NGC release of
deploy/docker/ngc.env, and a node selector for the GPU the engines were built for (read from
their manifests): a pod on another GPU could not load its plans."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from export.ngc import ngc_release
from runtime.engines import EngineMismatch, read_manifest
from runtime.files import write_atomic

BASE = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
IMAGE = "facerestore-triton"   # the image name in deploy/k8s/deployment.yaml (make docker-serve's tag)
GPU_LABEL = "nvidia.com/gpu.product"   # set on each GPU node by NVIDIA's GPU feature discovery


class OverlayError(RuntimeError):
    """An overlay that cannot be written; the message says why."""


def gpu_product_label(gpu: str) -> str:
    """The `nvidia.com/gpu.product` value of a GPU as CUDA names it: GPU feature discovery writes
    the product name with its spaces as dashes ('NVIDIA H100 80GB HBM3' -> 'NVIDIA-H100-80GB-HBM3')."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "", "-".join(gpu.split()))
    if not value:
        raise OverlayError(f"'{gpu}': no GPU name to select nodes by")
    return value[:63]


def engines_gpu(engines: Path) -> str:
    """The one GPU every plan in `engines` was built for (from their manifests)."""
    plans = sorted(Path(engines).glob("*.plan"))
    if not plans:
        raise OverlayError(f"{engines}: no .plan files; build them first (`make docker-engines`)")
    gpus = {}
    for plan in plans:
        try:
            gpus.setdefault(read_manifest(plan).target.gpu, []).append(plan.name)
        except EngineMismatch as exc:
            raise OverlayError(str(exc)) from None
    if len(gpus) > 1:
        raise OverlayError(f"{engines}: plans of several GPUs ({json.dumps(gpus)}); one deployment runs one GPU")
    return next(iter(gpus))


def write_overlay(engines: Path, registry: str, out: Path) -> Path:
    """Write `out`/kustomization.yaml over deploy/k8s; returns its path (`kubectl apply -k out`)."""
    if not registry or registry.endswith("/") or " " in registry:
        raise OverlayError(f"registry '{registry}': give the host/path the cluster pulls from (no trailing /)")
    label = gpu_product_label(engines_gpu(engines))
    base = os.path.relpath(BASE, Path(out).resolve())
    text = (f"# Rendered by `python -m export k8s-overlay` from the plans in {engines} and deploy/docker/ngc.env.\n"
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"resources:\n  - {base}\n"
            f"images:\n  - name: {IMAGE}\n    newName: {registry}/{IMAGE}\n    newTag: \"{ngc_release().release}\"\n"
            "patches:\n  - target: {kind: Deployment, name: facerestore-triton}\n    patch: |-\n"
            "      - op: add\n        path: /spec/template/spec/nodeSelector\n"
            f"        value: {{{GPU_LABEL}: {label}}}\n")
    path = Path(out) / "kustomization.yaml"
    write_atomic(path, text.encode())
    return path
