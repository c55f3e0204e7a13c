"""Where the weights shipped with the project lie (no torch: the runtime's contracts read it)."""
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"
MEDIAPIPE = WEIGHTS / "mediapipe"                      # the converted MediaPipe face detector and mesh
DEMO_SAFM = WEIGHTS / "safm" / "safm-demo.safetensors"  # the default of `restore --model safm`
