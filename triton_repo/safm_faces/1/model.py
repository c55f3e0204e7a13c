"""safm_faces: the aligned faces of one photo through SaFM (runtime.restorers.safm.restorer.SaFMRestorer),
with the `safm` network called as its own Triton model (BLS). The faces go in micro-batches of
its max_batch, and stop when the request is cancelled."""
import numpy as np

from runtime.restorers import CONTRACTS
from runtime.restorers.safm.contracts import DEFAULT_FIDELITY
from runtime.contracts.service import SERVICES, CROPS, LABEL_MAPS, FIDELITY, RESTORED_CROPS
from runtime.serving.request_checks import check_number
from runtime.restorers.safm.restorer import SaFMRestorer
from runtime.serving.triton_cancel import RequestCancelled, StopWhenCancelled, cancelled_response
from runtime.serving.triton_backend import BlsNet, face_batch, fail, respond, scalar, tensor, warm_up

SERVICE = SERVICES["safm"]


class TritonPythonModel:
    def initialize(self, args):
        (network,) = SERVICE.faces.networks
        self.net = BlsNet(CONTRACTS[network])
        warm_up()
        self.chunk = CONTRACTS[network].max_batch

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            fidelity = check_number(FIDELITY.name, scalar(request, FIDELITY, DEFAULT_FIDELITY))
            crops, maps = tensor(request, CROPS), tensor(request, LABEL_MAPS)
            restorer = SaFMRestorer(StopWhenCancelled.of(self.net, request), fidelity)   # stops on cancellation or timeout
            restored = np.empty_like(crops)
            for i in range(0, len(crops), self.chunk):   # bounded micro-batches: memory independent of faces
                restored[i:i + self.chunk] = restorer(face_batch(crops[i:i + self.chunk], maps[i:i + self.chunk]))
            return respond({RESTORED_CROPS: restored})
        except RequestCancelled as exc:
            return cancelled_response(SERVICE.faces.name, exc)
        except Exception as exc:
            return fail(SERVICE.faces.name, exc)
