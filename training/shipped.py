"""Where the weights shipped with the project lie (no torch: the runtime reads it)."""
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"
MEDIAPIPE = WEIGHTS / "mediapipe"                      # the converted MediaPipe face detector and mesh
DEMO_SAFM = WEIGHTS / "safm" / "safm-demo.safetensors"  # the default of `restore --model safm`
DEMO_UPSAMPLER = WEIGHTS / "upsampler" / "compact-x4-demo.safetensors"   # the default of `--bg-upsampler demo`
# network name -> the file its network is built from without a checkpoint
DEFAULT_WEIGHTS = {"face_detector": MEDIAPIPE / "face_detector.safetensors",
                   "face_mesh": MEDIAPIPE / "face_mesh.safetensors", "safm": DEMO_SAFM,
                   "bg_upsampler": DEMO_UPSAMPLER}
