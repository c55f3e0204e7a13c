"""face_postprocess: paste the restored faces back into the photo and encode it.

runtime.face.pipeline.paste (the in-process code: colour fix, face-shaped soft mask, --upscale,
alpha, grayscale and 16 bits kept) and runtime.imageio.encode_image. The photo is not decoded
again: face_preprocess hands over its decoded samples as FRAME (runtime.imageio.frame_bytes),
and runtime.imageio.frame_photo makes the same Photo the in-process decode does. A photo
without faces at scale 1 asked for in its own format comes back byte for byte, as `facerestore
restore` copies it (its FRAME is empty). A photo sent base64 (JSON clients) comes back base64.
The options were checked by face_preprocess.

With the background upsampler step (config parameter bg_upsampler_tile, `serve --bg-upsampler`)
the faces are pasted on the photo upsampled by the bg_upsampler network model (BLS, in tiles of
that side: runtime.upsampler.BackgroundUpsampler, as `restore --bg-upsampler`); then no photo
comes back byte for byte, and one whose FRAME is empty is decoded here.
"""
import json

from runtime.contracts.service import BG_UPSAMPLER_TILE, PHOTO_INPUTS, POSTPROCESS, IMAGE, FRAME, AFFINES, LABEL_MAPS, RESTORED_CROPS, \
    RESTORED
from runtime.face.pipeline import paste
from runtime.imageio import bytes_frame, decode_frame, encode_image, frame_photo, source_format
from runtime.photo_options import face_options, photo_settings
from runtime.serving.request_checks import answer_bytes, check_output_size, output_suffix, passes_through, photo_bytes
from runtime.serving.triton_backend import face_batch, fail, respond, scalar, tensor, warm_up


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        tile = params.get(BG_UPSAMPLER_TILE, {}).get("string_value")
        self.bg_tile = int(tile) if tile else None
        self._upsampler = None   # made on first use: the bg_upsampler model may load after this one
        warm_up()

    def upsampler(self):
        """The served background upsampler (BLS to the bg_upsampler model), its scale read off one call."""
        if self._upsampler is None:
            from runtime.contracts.upsampler import BG_UPSAMPLER
            from runtime.serving.triton_backend import BlsNet
            from runtime.upsampler import BackgroundUpsampler, network_scale

            net = BlsNet(BG_UPSAMPLER)
            self._upsampler = BackgroundUpsampler(net, network_scale(net), self.bg_tile, name="bg_upsampler (served)")
        return self._upsampler

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        try:
            data, as_base64 = photo_bytes(scalar(request, IMAGE))
            settings = photo_settings({t.name: scalar(request, t) for t in PHOTO_INPUTS.values()}, served_names=True)
            upscale, suffix = settings["upscale"], output_suffix(settings["output_format"])
            affines, restored = tensor(request, AFFINES), tensor(request, RESTORED_CROPS)
            through = passes_through(data, len(affines), upscale, suffix)
            if through and self.bg_tile is None:
                return respond({RESTORED: [answer_bytes(data, as_base64)]})  # no face: the photo comes back unchanged
            # an empty FRAME (the photo would have come back as it was): decoded here for the upsampler
            photo = frame_photo(decode_frame(data, IMAGE.name) if through else bytes_frame(tensor(request, FRAME)))
            photo.source = source_format(data)   # a JPEG keeps its tables, subsampling, EXIF and ICC
            check_output_size(photo.size, upscale)
            background = None if self.bg_tile is None else self.upsampler()(photo.pixels, upscale)
            out = paste(photo, face_batch(restored, tensor(request, LABEL_MAPS), affines), restored,
                        face_options(settings), background)
            del photo, background
            return respond({RESTORED: [answer_bytes(encode_image(out, suffix), as_base64)]})
        except Exception as exc:
            return fail(POSTPROCESS.name, exc)
