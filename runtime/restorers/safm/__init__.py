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
    default_note="no --checkpoint given: SaFM runs the shipped DEMO weights (a small model trained on photographs "
                 "and four faces; see training/weights/safm/README.md). Pass --checkpoint PATH.safetensors.",
)
