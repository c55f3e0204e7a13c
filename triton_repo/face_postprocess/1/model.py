"""face_postprocess: paste the restored faces back into the photo and encode it.

FacePipeline.paste (the in-process code: colour fix, face-shaped soft mask, --upscale, alpha,
grayscale and 16 bits kept) and runtime.imageio.encode_image. A photo without faces at scale 1
asked for in its own format comes back byte for byte, as `facerestore restore` copies it.
"""
import json

from runtime.contracts.service import MAX_OUTPUT_PIXELS, MAX_UPLOAD_BYTES, MAX_UPSCALE, POSTPROCESS, IMAGE, \
    AFFINES, LABEL_MAPS, RESTORED_CROPS, UPSCALE, OUTPUT_FORMAT, PASTE_MASK, COLOUR_FIX, RESTORED
from runtime.face.paste import COLOUR_FIXES, PASTE_MASKS
from runtime.face.pipeline import FaceOptions, FacePipeline
from runtime.imageio import ImageError, decode_image, encode_image
from runtime.triton_backend import choice, face_batch, fail, image_bytes, image_suffix, output_suffix, respond, \
    scalar, tensor, warm_up


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.max_pixels = int(params["max_pixels"]["string_value"])
        warm_up()

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            data = image_bytes(request, IMAGE, MAX_UPLOAD_BYTES)
            upscale = float(scalar(request, UPSCALE, 1.0))
            if not 0 < upscale <= MAX_UPSCALE:
                raise ValueError(f"UPSCALE must be in (0, {MAX_UPSCALE:g}], got {upscale}")
            suffix = output_suffix(scalar(request, OUTPUT_FORMAT, b"png"))
            defaults = FaceOptions()
            mask = choice(scalar(request, PASTE_MASK, defaults.paste_mask.encode()), PASTE_MASK.name, PASTE_MASKS)
            fix = choice(scalar(request, COLOUR_FIX, defaults.colour_fix.encode()), COLOUR_FIX.name, COLOUR_FIXES)
            affines, restored = tensor(request, AFFINES), tensor(request, RESTORED_CROPS)
            if len(affines) == 0 and upscale == 1 and image_suffix(data) == suffix:
                return respond({RESTORED: [data]})  # no face: the photo comes back unchanged
            photo = decode_image(data, "IMAGE", self.max_pixels)
            w, h = photo.size
            if round(w * upscale) * round(h * upscale) > MAX_OUTPUT_PIXELS:
                raise ImageError(f"{w}x{h} upscaled {upscale:g}x exceeds {MAX_OUTPUT_PIXELS} output pixels")
            pipeline = FacePipeline(None, None, FaceOptions(upscale=upscale, paste_mask=mask, colour_fix=fix))
            out = pipeline.paste(photo, face_batch(restored, tensor(request, LABEL_MAPS), affines), restored)
            return respond({RESTORED: [encode_image(out, suffix)]})
        except Exception as exc:
            return fail(POSTPROCESS.name, exc)
