"""face_preprocess: encoded photo -> its aligned faces, region maps, affines and boxes.

Decode (runtime.imageio), then FacePipeline.find + align, the in-process code, with the face
detector and face mesh called as their own Triton models (BLS). A photo without faces gives
empty (0-face) tensors; the next steps handle them.
"""
import json

import numpy as np

from runtime.contracts import CONTRACTS
from runtime.contracts.service import MAX_UPLOAD_BYTES, PREPROCESS, IMAGE, ONLY_CENTER_FACE, CROPS, LABEL_MAPS, \
    AFFINES, FACE_COUNT, BOXES
from runtime.face.pipeline import FaceOptions, FacePipeline
from runtime.imageio import decode_image
from runtime.triton_backend import BlsNet, fail, image_bytes, respond, scalar, warm_up

DETECTOR, MESH = PREPROCESS.networks


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.max_pixels = int(params["max_pixels"]["string_value"])
        self.detector, self.mesh = BlsNet(CONTRACTS[DETECTOR]), BlsNet(CONTRACTS[MESH])
        warm_up()

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            photo = decode_image(image_bytes(request, IMAGE, MAX_UPLOAD_BYTES), "IMAGE", self.max_pixels)
            options = FaceOptions(only_center_face=bool(scalar(request, ONLY_CENTER_FACE, False)))
            pipeline = FacePipeline(self.detector, self.mesh, options)
            faces, _ = pipeline.find(photo)
            batch = pipeline.align(photo, faces)
            boxes = np.array([f.detection.box for f in faces], np.float32).reshape(-1, 4)
            return respond({CROPS: batch.crops, LABEL_MAPS: batch.label_maps, AFFINES: batch.affines,
                            FACE_COUNT: [len(batch)], BOXES: boxes})
        except Exception as exc:  # one bad photo fails its own request, never the model
            return fail(PREPROCESS.name, exc)
