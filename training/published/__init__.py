"""Networks of published face restorers and upsamplers, written from their papers and the key
layout of their released weights, and the one reader of those weights (`weights.py`)."""
