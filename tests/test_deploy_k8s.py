"""deploy/k8s, validated offline: every manifest against the Kubernetes API schemas
(kubernetes-validate, strict: no unknown fields), and against the served job (ports, probes
that run runtime/serving/probe.py on a served restorer, the GPU request, what the autoscaler scales)."""
from __future__ import annotations

from pathlib import Path

import kubernetes_validate   # a dev tool (dev extra): missing is an error, not a skip
import pytest
import yaml

from runtime.contracts.service import SERVICES

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
KUBERNETES = "1.30.0"   # the oldest Kubernetes version the manifests must be valid for



def manifests() -> dict[str, dict]:
    """kind -> the one document of that kind in deploy/k8s (the kustomization included)."""
    docs = [d for path in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert len(set(kinds)) == len(kinds), kinds
    return {d["kind"]: d for d in docs}


def test_every_manifest_is_valid_kubernetes():
    docs = manifests()
    kustomization = docs.pop("Kustomization")
    assert sorted(kustomization["resources"]) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    for kind, doc in docs.items():
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)   # raises on any schema error


def test_a_broken_manifest_is_refused():
    service = manifests()["Service"]
    service["spec"]["ports"][0]["port"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES, strict=True)
    deployment = manifests()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProb"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_manifests_fit_the_served_job():
    docs = manifests()
    deployment, service, hpa = docs["Deployment"], docs["Service"], docs["HorizontalPodAutoscaler"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    for probe in ("readinessProbe", "livenessProbe"):   # the ensemble really restoring a photo
        command = container[probe]["exec"]["command"]
        assert command[:3] == ["python3", "-m", "runtime.serving.probe"]
        assert command[command.index("--restorer") + 1] in SERVICES
        assert container[probe]["timeoutSeconds"] > float(command[command.index("--timeout") + 1])
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] in docs["ConfigMap"]["data"]["rules.yaml"]
    assert "nv_inference_queue_duration_us" in docs["ConfigMap"]["data"]["rules.yaml"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/models", "/dev/shm"} <= mounts
