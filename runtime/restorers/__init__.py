"""The registry of restorers: one `RestorerSpec` per restorer, each in its own subpackage
(runtime/restorers/<name>/). The CLI, the web page, the served ensembles and their renderer,
export's model groups, the benchmarks and the client read it; a restorer is one subpackage and
one line here (docs/ARCHITECTURE.md)."""
from runtime.contracts import FACE_CONTRACTS, NetworkContract
from runtime.contracts.upsampler import BG_UPSAMPLER
from runtime.restorers.authface import AUTHFACE_RESTORER
from runtime.restorers.base import Restorer, RestorerOption, RestorerSpec
from runtime.restorers.classical import CLASSICAL
from runtime.restorers.identity import IDENTITY
from runtime.restorers.onnx import ONNX_RESTORER
from runtime.restorers.published import ARCHS, published_spec
from runtime.restorers.safm import SAFM_RESTORER

RESTORERS: dict[str, RestorerSpec] = {}
CONTRACTS: dict[str, NetworkContract] = {c.name: c for c in (*FACE_CONTRACTS, BG_UPSAMPLER)}   # every network by name
MODEL_GROUPS: dict[str, list[str]] = {"face": [c.name for c in FACE_CONTRACTS],   # `export --model` groups
                                      BG_UPSAMPLER.name: [BG_UPSAMPLER.name]}


def register(spec: RestorerSpec) -> None:
    """Add a restorer: its spec, its networks' contracts and its model group (export --model)."""
    if spec.name in RESTORERS or spec.name in MODEL_GROUPS:
        raise ValueError(f"restorer '{spec.name}' is registered already")
    taken = {o.name: o for s in RESTORERS.values() for o in s.options}
    # one flag / served input per name: restorers may share an option only as one declaration
    if clash := sorted(o.name for o in spec.options if o.name in taken and taken[o.name] != o):
        raise ValueError(f"restorer '{spec.name}': options {clash} are another restorer's already")
    RESTORERS[spec.name] = spec
    CONTRACTS.update({c.name: c for c in spec.networks})
    if spec.networks:
        MODEL_GROUPS[spec.name] = spec.network_names


for _spec in (SAFM_RESTORER, AUTHFACE_RESTORER, IDENTITY, *map(published_spec, ARCHS), ONNX_RESTORER, CLASSICAL):
    register(_spec)

__all__ = ["CONTRACTS", "MODEL_GROUPS", "RESTORERS", "Restorer", "RestorerOption", "RestorerSpec", "register"]
