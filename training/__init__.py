"""Training-side tools: PyTorch ports of the face networks and their weight converters."""
