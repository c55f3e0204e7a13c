"""Options more than one restorer takes, declared once (the same flag, range and served input)."""
from runtime.restorers.base import RestorerOption

FIDELITY_OPTION = RestorerOption("fidelity", float, 0.5,
                                 "fidelity weight: how much of the input's own features the restorer keeps "
                                 "(SaFM: local detail enhancement; CodeFormer: w; a foreign ONNX file's weight input)",
                                 minimum=0.0, maximum=1.0, served="float32")
