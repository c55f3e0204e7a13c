"""SaFM restorer (the SaFM paper): encoder, VQ codebook, semantic-aware fusion, local detail enhancement."""
from training.safm.checkpoint import (DEMO_CHECKPOINT, CheckpointError, load_checkpoint, load_codeformer_weights,
                                      random_init, read_state_dict, save_checkpoint)
from training.safm.config import CONFIGS, SaFMConfig
from training.safm.model import SaFMRestorer

__all__ = ["CONFIGS", "DEMO_CHECKPOINT", "CheckpointError", "SaFMConfig", "SaFMRestorer", "load_checkpoint", "load_codeformer_weights",
           "random_init", "read_state_dict", "save_checkpoint"]
