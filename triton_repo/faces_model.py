"""<restorer>_faces, every served restorer's faces step: the aligned faces of one photo through
the restorer named by the model (``<restorer>_faces``), its spec found in
runtime.restorers.RESTORERS. One source for all: triton_repo/<restorer>_faces/1/model.py links
here, `python -m export triton-repo` copies it, so a registered restorer (a published
architecture's one data entry too) is served with no model of its own.

Built once per instance, as in-process (RestorerSpec.build): one BlsNet per network of the
spec (each network is its own Triton model), wrapped to stop at its next call once the request
is cancelled or its TIMEOUT passed (runtime/serving/triton_cancel.py), and the facts of the
weights the restorer needs besides its networks (RestorerSpec.weights_data, e.g. AuthFace's
scheduler config) from 1/weights.json, written by the renderer (the spec's defaults without
it); a restorer without network models (a foreign ONNX file) runs its own session on the
`served_files` the renderer put beside this model. Per request: the served options the spec
declares (its FIDELITY, STEPS, ...) read, checked against their served ranges and given to the
restorer's call; the faces go in micro-batches of the networks' smallest max_batch (memory
independent of the face count), the request's cancellation checked before each.

A spec with `served_gpu` (AuthFace) gets a KIND_GPU instance in the gpu rendering: its loop
then runs on that device (model_device), latents and scheduler state stay there and the
networks get and return CUDA tensors through DLPack (BlsNet.run_torch); on a CPU instance the
same code runs on the host."""
import json
from pathlib import Path

import numpy as np

from runtime.contracts.service import CROPS, LABEL_MAPS, MAX_FACES, OPTIONS, RESTORED_CROPS
from runtime.restorers import RESTORERS
from runtime.serving.triton_backend import BlsNet, face_batch, fail, model_device, respond, scalar, tensor, warm_up
from runtime.serving.triton_cancel import RequestCancelled, StopWhenCancelled, cancelled_response

WEIGHTS_DATA = "weights.json"   # RestorerSpec.weights_data of the served weights, beside this file


class TritonPythonModel:
    def initialize(self, args):
        self.name = args["model_name"]
        self.spec = RESTORERS[self.name.removesuffix("_faces")]
        path = Path(args["model_repository"]) / args["model_version"] / WEIGHTS_DATA
        data = json.loads(path.read_text()) if path.is_file() else self.spec.weights_data(None)
        data["folder"] = str(path.parent)   # where the spec's served_files are (a foreign ONNX file)
        self.nets = [StopWhenCancelled(BlsNet(c)) for c in self.spec.networks]
        self.watch = StopWhenCancelled(None)   # the request, checked between micro-batches too
        device = model_device(args)
        warm_up(device)
        self.restorer = self.spec.build({c.name: n for c, n in zip(self.spec.networks, self.nets)}, data,
                                        str(device), False)
        self.restorer.prepare()   # first-call costs that need no network call (BLS is refused here)
        self.chunk = min((c.max_batch for c in self.spec.networks), default=MAX_FACES)
        self.options = [(o.name, OPTIONS[o.tensor_name]) for o in self.spec.served_options()]

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            settings = self.spec.settings({name: v for name, t in self.options
                                           if (v := scalar(request, t)) is not None}, served=True)
            for net in [self.watch, *self.nets]:   # they stop once this request is cancelled or timed out
                net.watch(request)
            crops = tensor(request, CROPS)
            maps = tensor(request, LABEL_MAPS) if self.spec.label_maps else None
            restored = np.empty_like(crops)
            for i in range(0, len(crops), self.chunk):   # bounded micro-batches
                self.watch.check()
                part = face_batch(crops[i:i + self.chunk], None if maps is None else maps[i:i + self.chunk])
                restored[i:i + self.chunk] = self.restorer(part, **settings)
            return respond({RESTORED_CROPS: restored})
        except RequestCancelled as exc:
            return cancelled_response(self.name, exc)
        except Exception as exc:
            return fail(self.name, exc)
