"""face_postprocess: paste the restored faces back into the photo and encode it.

runtime.face.pipeline.paste (the in-process code: colour fix, face-shaped soft mask, --upscale,
alpha, grayscale and 16 bits kept) and runtime.imageio.encode_image. The photo is not decoded
again: face_preprocess hands over its decoded samples as FRAME (runtime.imageio.frame_bytes),
and runtime.imageio.frame_photo makes the same Photo the in-process decode does. A photo
without faces at scale 1 asked for in its own format comes back byte for byte, as `facerestore
restore` copies it (its FRAME is empty). A photo sent base64 (JSON clients) comes back base64.
The options were checked by face_preprocess.
"""
from runtime.contracts.service import PHOTO_INPUTS, POSTPROCESS, IMAGE, FRAME, AFFINES, LABEL_MAPS, RESTORED_CROPS, \
    RESTORED
from runtime.face.pipeline import paste
from runtime.imageio import bytes_frame, encode_image, frame_photo, source_format
from runtime.photo_options import face_options, photo_settings
from runtime.serving.request_checks import answer_bytes, check_output_size, output_suffix, passes_through, photo_bytes
from runtime.serving.triton_backend import face_batch, fail, respond, scalar, tensor, warm_up


class TritonPythonModel:
    def initialize(self, args):
        warm_up()

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            data, as_base64 = photo_bytes(scalar(request, IMAGE))
            settings = photo_settings({t.name: scalar(request, t) for t in PHOTO_INPUTS.values()}, served_names=True)
            upscale, suffix = settings["upscale"], output_suffix(settings["output_format"])
            affines, restored = tensor(request, AFFINES), tensor(request, RESTORED_CROPS)
            if passes_through(data, len(affines), upscale, suffix):
                return respond({RESTORED: [answer_bytes(data, as_base64)]})  # no face: the photo comes back unchanged
            photo = frame_photo(bytes_frame(tensor(request, FRAME)))
            photo.source = source_format(data)   # a JPEG keeps its tables, subsampling, EXIF and ICC
            check_output_size(photo.size, upscale)
            out = paste(photo, face_batch(restored, tensor(request, LABEL_MAPS), affines), restored,
                        face_options(settings))
            del photo
            return respond({RESTORED: [answer_bytes(encode_image(out, suffix), as_base64)]})
        except Exception as exc:
            return fail(POSTPROCESS.name, exc)
