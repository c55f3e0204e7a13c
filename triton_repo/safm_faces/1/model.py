"""safm_faces: the aligned faces of one photo through SaFM (runtime.restorers.SaFMRestorer),
with the `safm` network called as its own Triton model (BLS). Zero faces never reach it; more
than its max_batch go in chunks (runtime.triton_backend.BlsNet)."""
from runtime.contracts import CONTRACTS
from runtime.contracts.safm import DEFAULT_FIDELITY
from runtime.contracts.service import SERVICES, CROPS, LABEL_MAPS, FIDELITY, RESTORED_CROPS
from runtime.restorers import SaFMRestorer
from runtime.triton_backend import BlsNet, face_batch, fail, respond, scalar, tensor, warm_up

SERVICE = SERVICES["safm"]


class TritonPythonModel:
    def initialize(self, args):
        (network,) = SERVICE.faces.networks
        self.net = BlsNet(CONTRACTS[network])
        warm_up()

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            fidelity = float(scalar(request, FIDELITY, DEFAULT_FIDELITY))
            if not 0.0 <= fidelity <= 1.0:
                raise ValueError(f"FIDELITY must be in [0, 1], got {fidelity}")
            batch = face_batch(tensor(request, CROPS), tensor(request, LABEL_MAPS))
            restored = SaFMRestorer(self.net, fidelity)(batch) if len(batch) else batch.crops
            return respond({RESTORED_CROPS: restored})
        except Exception as exc:
            return fail(SERVICE.faces.name, exc)
