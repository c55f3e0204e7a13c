"""The SaFM restorer (Zhao et al., Semantic-Aware Detail Enhancement for Blind Face
Restoration): one network, faces + region maps + the fidelity weight (our addition)."""
from runtime.restorers.safm.contracts import SAFM
from runtime.restorers.base import RestorerSpec
from runtime.restorers.options import FIDELITY_OPTION


def _impl():
    """The restorer's code, loaded on first use (the spec itself stays light: no torch)."""
    from runtime.restorers.safm import restorer

    return restorer


SAFM_RESTORER = RestorerSpec(
    name="safm",
    summary="the Semantic-aware Fusion restorer: --checkpoint PATH.safetensors (with its .json beside it); "
            "without one, the shipped demo weights (training/weights/safm/README.md).",
    networks=(SAFM,),
    options=(FIDELITY_OPTION,),
    build=lambda *a, **k: _impl().build(*a, **k), torch_modules=lambda c: _impl().torch_modules(c),
    provenance=lambda c: _impl().provenance(c),
    cuda_graph_networks=(SAFM.name,), cpu_onnxruntime=True, label_maps=True,
    # AMX CPUs: OpenVINO bf16, the demo 273 ms a face against ONNX Runtime fp32 600 ms (2-core Xeon,
    # batch 1); on the held-out faces (`evaluate --aligned --preset blur2-x4-jpeg60 --copies 1`)
    # PSNR 27.3874 -> 27.3876 dB, SSIM 0.7662 -> 0.7662, restored photos within 2/255 of fp32.
    cpu_openvino_bf16=True,
    # CPU: one face a call. The demo on ONNX Runtime fp32 (2-core Xeon, AVX-512; loaded, load
    # average 9-13), 8 crowd faces, ms a face and peak RSS above a process warmed on one face,
    # at batch 1 / 2 / 4 / 8: 2448 / 3527 / 4219 / 5327 ms and +200 / +600 / +1400 / +3000 MB
    # (a fresh process each), 3552 / 3909 / 5251 / 4404 ms interleaved in one process; on a quiet
    # machine (issue 31) 509 ms one at a time, 556 in fours, 865 all 36 at once. GPU: not
    # measured here (no GPU lent); 8, what clips used before.
    batch_faces=(1, 8),
    default_note="no --checkpoint given: SaFM runs the shipped DEMO weights (a small model trained on photographs "
                 "and four faces; see training/weights/safm/README.md). Pass --checkpoint PATH.safetensors.",
)
