"""How to make each exported network for export and parity checks: one `ExportNetwork` per
network contract (runtime/contracts/), with its torch module builder and real sample inputs.
The contracts stay pure data; this is the torch side of them."""
from __future__ import annotations

from export.networks.authface import AUTHFACE_NETWORKS
from export.networks.base import ExportNetwork
from export.networks.face import FACE_DETECTOR_NETWORK, FACE_MESH_NETWORK
from export.networks.published import published_network
from export.networks.safm import SAFM_NETWORK
from export.networks.upsampler import BG_UPSAMPLER_NETWORK


class _Networks(dict):
    """Network name -> ExportNetwork; a published restorer's (runtime/restorers/published/) is
    made from its data entry on first use, so one registered after import exports too."""

    def __missing__(self, name: str) -> ExportNetwork:
        self[name] = network = published_network(name)
        return network


NETWORKS: dict[str, ExportNetwork] = _Networks({n.contract.name: n for n in (FACE_DETECTOR_NETWORK, FACE_MESH_NETWORK,
                                                                             SAFM_NETWORK, *AUTHFACE_NETWORKS,
                                                                             BG_UPSAMPLER_NETWORK)})

__all__ = ["NETWORKS", "ExportNetwork"]
