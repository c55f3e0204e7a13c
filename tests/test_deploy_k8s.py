"""deploy/k8s, validated offline: every manifest against the Kubernetes API schemas
(kubernetes-validate, strict: no unknown fields), against the served job (ports, cheap probes
that never restore a photo, the GPU request, what the autoscaler scales), every volume, claim and
config map it references defined in the kustomization, and the overlay that sets the image and
the GPU nodes from the plans' manifests (built with kubectl kustomize)."""
from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
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
    # liveness: the process answers, never through the request queue; readiness: cheap ready endpoints
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    command = container["readinessProbe"]["exec"]["command"]
    assert command[:4] == ["python3", "-m", "runtime.serving.probe", "--ready"] and "--restorer" not in command
    assert command[command.index("--repository") + 1] == "/models"
    rounds = 2   # health, then every ensemble's ready at once (runtime/serving/probe.py)
    assert container["readinessProbe"]["timeoutSeconds"] > rounds * float(command[command.index("--timeout") + 1])
    assert "--strict-readiness=false" in container["args"]
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] in docs["ConfigMap"]["data"]["rules.yaml"]
    assert "nv_inference_queue_duration_us" in docs["ConfigMap"]["data"]["rules.yaml"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/models", "/dev/shm"} <= mounts


def referenced_objects(doc: dict) -> set[tuple[str, str]]:
    """(kind, name) of every object a manifest refers to by name: claims, config maps, secrets
    (volumes), the HPA's target. An optional volume (the admin-key secret, never in git) is not
    a reference the kustomization must hold."""
    refs = set()
    spec = doc.get("spec", {})
    for volume in spec.get("template", {}).get("spec", {}).get("volumes", []):
        for key, kind, field in (("persistentVolumeClaim", "PersistentVolumeClaim", "claimName"),
                                 ("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName")):
            if key in volume and not volume[key].get("optional"):
                refs.add((kind, volume[key][field]))
    if "scaleTargetRef" in spec:
        refs.add((spec["scaleTargetRef"]["kind"], spec["scaleTargetRef"]["name"]))
    return refs


def test_every_referenced_object_is_in_the_kustomization():
    docs = manifests()
    kustomization = docs.pop("Kustomization")
    defined = {(d["kind"], d["metadata"]["name"]) for path in kustomization["resources"]
               for d in yaml.safe_load_all((K8S / path).read_text()) if d}
    referenced = set().union(*(referenced_objects(d) for d in docs.values()))
    assert ("PersistentVolumeClaim", "facerestore-models") in referenced
    assert referenced - defined == set()
    claim = docs["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadOnlyMany"]   # every replica mounts it at once
    broken = dict(docs["Deployment"])   # the check can fail: a claim nobody defines
    broken["spec"] = {"template": {"spec": {"volumes": [{"name": "x", "persistentVolumeClaim": {"claimName": "gone"}}]}}}
    assert referenced_objects(broken) - defined == {("PersistentVolumeClaim", "gone")}


class _FakeTriton(http.server.BaseHTTPRequestHandler):
    """Answers Triton's ready endpoints: 200 for the server and the models in `ready_models`."""

    ready_models: set[str] = set()

    def do_GET(self):  # noqa: N802 (http.server's name)
        name = self.path.removeprefix("/v2/models/").removesuffix("/ready")
        ok = self.path == "/v2/health/ready" or name in self.ready_models
        self.send_response(200 if ok else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_readiness_checks_every_rendered_ensemble(tmp_path):
    """runtime.serving.probe --ready against an HTTP server on 127.0.0.1 that answers as Triton does
    when AuthFace failed to load (--exit-on-error=false): ready for a SaFM-only repository, not
    ready (naming the ensemble) for one that also serves AuthFace, not ready when nothing answers."""
    from export.triton_repo import render_repo
    from runtime.serving.probe import main as probe_main, ready

    render_repo("gpu", tmp_path / "both", restorers=["safm", "authface"], configs_only=True)
    render_repo("gpu", tmp_path / "safm", restorers=["safm"], configs_only=True)
    _FakeTriton.ready_models = {SERVICES["safm"].ensemble}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeTriton)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"127.0.0.1:{server.server_address[1]}"
    try:
        assert ready(url, tmp_path / "safm") is None
        assert ready(url, tmp_path / "both") == f"not ready: {SERVICES['authface'].ensemble} (400)"
        assert probe_main(["--ready", "--repository", str(tmp_path / "both"), "--url", url, "--timeout", "2"]) == 1
        assert probe_main(["--ready", "--repository", str(tmp_path / "safm"), "--url", url, "--timeout", "2"]) == 0
    finally:
        server.shutdown()
    assert ready(url, tmp_path / "safm", timeout=1).startswith(f"server {url} not ready")
    assert "no ensemble" in ready(url, tmp_path)


def test_overlay_sets_the_image_from_ngc_env_and_the_gpu_from_the_plans(tmp_path):
    """`python -m export k8s-overlay` on plans built for an H100: kustomize (kubectl, offline) builds
    the base with the pushed image tagged with the NGC release and a node selector for that GPU;
    plans of two GPUs are refused."""
    from export.cli import main as export_main
    from export.ngc import ngc_release
    from tests.test_deploy import SAFM_NETWORKS, fake_engines

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (Debian: apt-get install kubectl): the overlay is not built")
    engines = fake_engines(tmp_path / "engines", SAFM_NETWORKS, ngc_release().tensorrt)
    out = tmp_path / "k8s"
    assert export_main(["k8s-overlay", "--engines", str(engines), "--registry", "registry.example/team",
                        "--out", str(out)]) == 0
    built = subprocess.run([kubectl, "kustomize", str(out)], capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(built.stdout) if d}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == f"registry.example/team/facerestore-triton:{ngc_release().release}"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert "PersistentVolumeClaim" in docs
    for kind, doc in docs.items():
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    fake_engines(engines, ["safm"], ngc_release().tensorrt, gpu="NVIDIA L4", cc="8.9")
    assert export_main(["k8s-overlay", "--engines", str(engines), "--registry", "r.example", "--out", str(out)]) == 2


def test_the_admin_key_secret_is_mounted_where_the_entrypoint_reads_it():
    """deploy/docker/tritonserver.sh reads $ADMIN_KEY_FILE (default below); the Deployment mounts
    the optional secret there, readable by the pod's group, and no Secret is committed."""
    docs = manifests()
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "admin-key"]
    assert volume["secret"] == {"secretName": "facerestore-admin-key", "optional": True, "defaultMode": 0o440}
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "admin-key"]
    script = (K8S.parent / "docker" / "tritonserver.sh").read_text()
    assert f"ADMIN_KEY_FILE:-{mount['mountPath']}/admin-key" in script and mount["readOnly"]
    assert "Secret" not in docs
