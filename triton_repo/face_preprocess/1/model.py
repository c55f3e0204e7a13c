"""face_preprocess: encoded photo -> its aligned faces, region maps, affines, boxes and decoded frame.

First every option of the request is checked (runtime/serving/request_checks.py: ranges, output
format, output size from the photo's header) so a client mistake costs no decode and no
network call. Then decode (runtime.imageio), FacePipeline.find + align to the FACE_SIZE the
gate sent (the restorer's crop side; runtime/contracts/service.py), the in-process code,
with the face detector and face mesh called as their own Triton models (BLS). A photo without
faces gives empty (0-face) tensors; the next steps handle them. A photo with more than
``max_faces`` faces (config parameter) is refused. DEADLINE = now + the request's TIMEOUT
(runtime/serving/triton_cancel.py: the next steps stop once it passed).

The photo is decoded here only: FRAME hands its samples (8 or 16 bits, gray and alpha as
decoded; runtime.imageio.frame_bytes) to face_postprocess, at the cost of a whole frame of
shared memory per request instead of a second decode there. A photo that will come back byte
for byte (request_checks.passes_through) sends an empty FRAME.
"""
import json
import time

import numpy as np

from runtime.restorers import CONTRACTS
from runtime.contracts.service import MAX_TIMEOUT_S, PREPROCESS, IMAGE, TIMEOUT, CROPS, LABEL_MAPS, AFFINES, FRAME, \
    FACE_COUNT, BOXES, DEADLINE, FACE, FACE_SIZE, FACE_TEMPLATE
from runtime.face.pipeline import FacePipeline
from runtime.imageio import ImageError, decode_frame, frame_bytes, frame_photo
from runtime.photo_options import face_options, photo_settings
from runtime.serving.request_checks import check_options, check_output_size, image_size, output_suffix, \
    passes_through, photo_bytes
from runtime.serving.triton_backend import BlsNet, fail, publish_supervisor_metrics, respond, scalar, warm_up

DETECTOR, MESH = PREPROCESS.networks
OPTIONS = [t for t in PREPROCESS.inputs if t.optional and t is not IMAGE]


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.max_pixels = int(params["max_pixels"]["string_value"])
        self.max_faces = int(params["max_faces"]["string_value"])
        self.detector, self.mesh = BlsNet(CONTRACTS[DETECTOR]), BlsNet(CONTRACTS[MESH])
        warm_up()
        publish_supervisor_metrics(args)

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            options = {t.name: v for t in OPTIONS if (v := scalar(request, t)) is not None}
            check_options(options)
            settings = photo_settings(options, served_names=True)
            deadline = time.time() + float(options.get(TIMEOUT.name, MAX_TIMEOUT_S))
            data, _ = photo_bytes(scalar(request, IMAGE))
            upscale = settings["upscale"]
            if upscale != 1:   # at scale 1 the output cap is the decoder's input cap
                check_output_size(image_size(data), upscale)
            frame = decode_frame(data, "IMAGE", self.max_pixels)
            photo = frame_photo(frame)
            template = options.get(FACE_TEMPLATE.name, b"ffhq")
            size = int(options.get(FACE_SIZE.name, FACE))   # the restorer's crop (the gate's FACE_SIZE, FACE_TEMPLATE)
            pipeline = FacePipeline(self.detector, self.mesh, face_options(
                settings, size, template.decode() if isinstance(template, bytes) else str(template)))
            faces, _ = pipeline.find(photo)
            if len(faces) > self.max_faces:
                raise ImageError(f"IMAGE: {len(faces)} faces, more than this server restores in one photo "
                                 f"({self.max_faces})")
            batch = pipeline.align(photo, faces)
            del photo
            suffix = output_suffix(settings["output_format"])
            if passes_through(data, len(faces), upscale, suffix):
                frame = frame[:0, :0]
            boxes = np.array([f.detection.box for f in faces], np.float32).reshape(-1, 4)
            return respond({CROPS: batch.crops, LABEL_MAPS: batch.label_maps, AFFINES: batch.affines,
                            FRAME: frame_bytes(frame), FACE_COUNT: [len(batch)], BOXES: boxes, DEADLINE: [deadline]})
        except Exception as exc:  # one bad photo fails its own request, never the model
            return fail(PREPROCESS.name, exc)
