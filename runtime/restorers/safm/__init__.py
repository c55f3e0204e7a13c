"""The SaFM restorer (Zhao et al., Semantic-Aware Detail Enhancement for Blind Face
Restoration): one network, faces + region maps + the fidelity weight (our addition)."""
from runtime.restorers.safm.contracts import DEFAULT_FIDELITY, SAFM
from runtime.restorers.base import RestorerOption, RestorerSpec


def _build(*args, **kwargs):
    from runtime.restorers.safm.restorer import build

    return build(*args, **kwargs)


def _torch_modules(checkpoint):
    from runtime.restorers.safm.restorer import torch_modules

    return torch_modules(checkpoint)


def _provenance(checkpoint):
    from runtime.restorers.safm.restorer import provenance

    return provenance(checkpoint)


SAFM_RESTORER = RestorerSpec(
    name="safm",
    summary="the Semantic-aware Fusion restorer: --checkpoint PATH.safetensors (with its .json beside it); "
            "without one, the shipped demo weights (training/weights/safm/README.md).",
    networks=(SAFM,),
    options=(RestorerOption("fidelity", float, DEFAULT_FIDELITY,
                            "fidelity weight: local detail from the input's features",
                            minimum=0.0, maximum=1.0, served="float32"),),
    build=_build, torch_modules=_torch_modules, provenance=_provenance,
    cuda_graph_networks=(SAFM.name,), cpu_onnxruntime=True, label_maps=True,
)
