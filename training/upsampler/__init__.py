"""The shipped compact background upsampler: its trainer and its held-out evaluation."""
