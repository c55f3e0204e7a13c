"""The SaFM restorer (Zhao et al., Semantic-Aware Detail Enhancement for Blind Face
Restoration): one network, faces + region maps + the fidelity weight (our addition)."""
from runtime.restorers.safm.contracts import DEFAULT_FIDELITY, SAFM
from runtime.restorers.base import RestorerOption, RestorerSpec


def _impl():
    """The restorer's code, loaded on first use (the spec itself stays light: no torch)."""
    from runtime.restorers.safm import restorer

    return restorer


SAFM_RESTORER = RestorerSpec(
    name="safm",
    summary="the Semantic-aware Fusion restorer: --checkpoint PATH.safetensors (with its .json beside it); "
            "without one, the shipped demo weights (training/weights/safm/README.md).",
    networks=(SAFM,),
    options=(RestorerOption("fidelity", float, DEFAULT_FIDELITY,
                            "fidelity weight: local detail from the input's features",
                            minimum=0.0, maximum=1.0, served="float32"),),
    build=lambda *a, **k: _impl().build(*a, **k), torch_modules=lambda c: _impl().torch_modules(c),
    provenance=lambda c: _impl().provenance(c),
    cuda_graph_networks=(SAFM.name,), cpu_onnxruntime=True, label_maps=True,
)
