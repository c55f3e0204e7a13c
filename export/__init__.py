"""Export: ONNX per network from its contract, parity checks (and TensorRT engines, Triton repository)."""
