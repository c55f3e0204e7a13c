"""deploy/k8s/training, validated offline: the Indexed Job and its headless Service against the
Kubernetes API schemas (kubernetes-validate, strict), torchrun's rendezvous against the pods' DNS
names, one process per requested GPU, the engine-build image, and the trainer's arguments
against the trainer's own parser."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ROOT / "deploy" / "k8s" / "training"
KUBERNETES = "1.30.0"   # as tests/test_deploy_k8s.py: the oldest version the manifests must be valid for

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (dev extra)")


def manifests() -> dict[str, dict]:
    docs = [d for path in sorted(TRAINING.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]
    return {d["kind"]: d for d in docs}


def option(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"{name}=")]
    return value


def test_the_training_manifests_are_valid_kubernetes():
    docs = manifests()
    kustomization = docs.pop("Kustomization")
    assert sorted(kustomization["resources"]) == sorted(p.name for p in TRAINING.glob("*.yaml")
                                                        if p.name != "kustomization.yaml")
    assert set(docs) == {"Job", "Service"}
    for doc in docs.values():
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    job = docs["Job"]
    job["spec"]["template"]["spec"]["subDomain"] = "facerestore-train"   # a misspelt field: refused
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES, strict=True)


def test_torchrun_meets_at_pod_zero_with_one_process_per_gpu(monkeypatch):
    docs = manifests()
    job, service = docs["Job"], docs["Service"]
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"]
    assert int(option(args, "--nnodes")) == spec["completions"]
    assert int(option(args, "--nproc-per-node")) == container["resources"]["limits"]["nvidia.com/gpu"]
    # node rank = the completion index, rendezvous = pod 0 through the headless service
    env = {e["name"]: e for e in container["env"]}
    assert option(args, "--node-rank") == "$(NODE_RANK)"
    assert "job-completion-index" in env["NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert option(args, "--master-addr") == f"{job['metadata']['name']}-0.{service['metadata']['name']}"
    assert pod["subdomain"] == service["metadata"]["name"] and service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert int(option(args, "--master-port")) == service["spec"]["ports"][0]["port"]
    assert container["command"] == ["python3", "-m", "torch.distributed.run"]
    # the image the engines are built in (Makefile ENGINE_IMAGE, deploy/docker/ngc.env's release)
    release = re.search(r"^NGC_RELEASE=(\S+)$", (ROOT / "deploy/docker/ngc.env").read_text(), re.M).group(1)
    assert container["image"] == f"facerestore-engines:{release}"
    assert "ENGINE_IMAGE := facerestore-engines:$(NGC_RELEASE)" in (ROOT / "Makefile").read_text()
    # the trainer's arguments are the trainer's: parsed by its own parser, on a CUDA device
    module = args[args.index("-m") + 1]
    assert module == "training.safm"
    import training.safm.__main__ as safm_main

    seen = {}
    monkeypatch.setattr(safm_main, "_train", lambda a: seen.setdefault("args", a) and 0)
    assert safm_main.main(args[args.index("-m") + 2:]) == 0
    parsed = seen["args"]
    assert parsed.device == "cuda" and str(parsed.out).startswith("/data/") and str(parsed.data).startswith("/data/")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/data", "/dev/shm"} <= mounts
