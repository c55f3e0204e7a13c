"""The classical baseline: OpenCV's non-local-means denoise and an unsharp mask on each aligned
face (pasted back through the face mask like any restorer's output). No network, no weights: the
row a model must beat in `evaluate`."""
from runtime.restorers.base import RestorerSpec


def _build(sessions, data, device, progress):
    from runtime.restorers.classical.restorer import ClassicalRestorer

    return ClassicalRestorer()


CLASSICAL = RestorerSpec("classical", "a baseline, not a model: OpenCV non-local-means denoise + unsharp mask on each "
                                      "aligned face (what a restorer must beat in `evaluate`).", (), (), _build,
                         cpu_onnxruntime=True, served=False)
