"""Training data: the degradation model, aligned-face caches, captions."""
