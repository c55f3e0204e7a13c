"""MediaPipe face mesh (``face_landmark.tflite``, 468 points) in PyTorch.

Reconstructed from the TFLite graph: a stride-2 stem and PReLU residual blocks down to 6x6,
then two heads that each go down to 3x3 and end in a 3x3 VALID conv to 1x1: 1404 landmark
values (x, y, z per point, in 192-pixel crop coordinates) and one face-presence logit.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

INPUT_SIZE = 192
NUM_LANDMARKS = 468


def same_pad_stride2(x: Tensor) -> Tensor:
    """TFLite SAME padding of a 3x3 stride-2 window on an even input: one row/column at bottom/right."""
    return F.pad(x, (0, 1, 0, 1))


class ResBlock(nn.Module):
    """dw3x3 -> 1x1 plus a shortcut, then PReLU.

    With stride 2 the shortcut is a 2x2 max-pool; extra output channels are zero-padded onto it.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2) or out_ch < in_ch:
            raise ValueError(f"unsupported ResBlock({in_ch}, {out_ch}, stride={stride})")
        self.stride = stride
        self.channel_pad = out_ch - in_ch
        self.dw = nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=1 if stride == 1 else 0,
                            groups=in_ch)
        self.pw = nn.Conv2d(in_ch, out_ch, 1)
        self.act = nn.PReLU(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        y = self.pw(self.dw(same_pad_stride2(x) if self.stride == 2 else x))
        shortcut = F.max_pool2d(x, 2) if self.stride == 2 else x
        if self.channel_pad:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.channel_pad))
        return self.act(y + shortcut)


class ConvPReLU(nn.Sequential):
    """1x1 conv followed by PReLU (channel reduction at the start of a head)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, 1), nn.PReLU(out_ch))


class FaceMesh(nn.Module):
    """468-point face mesh. Input NCHW RGB in [-1, 1], 192x192 (mapped to [0, 1] inside).

    Returns ``(landmarks [N, 1404], presence_logit [N, 1])`` exactly as the TFLite outputs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2)                                   # 96x96
        self.stem_act = nn.PReLU(16)
        self.backbone = nn.Sequential(
            ResBlock(16, 16), ResBlock(16, 16),                                     # 96x96
            ResBlock(16, 32, 2), ResBlock(32, 32), ResBlock(32, 32),                # 48x48
            ResBlock(32, 64, 2), ResBlock(64, 64), ResBlock(64, 64),                # 24x24
            ResBlock(64, 128, 2), ResBlock(128, 128), ResBlock(128, 128),           # 12x12
            ResBlock(128, 128, 2), ResBlock(128, 128), ResBlock(128, 128),          # 6x6
        )
        self.landmark_head = nn.Sequential(
            ResBlock(128, 128, 2), ResBlock(128, 128), ResBlock(128, 128),          # 3x3
            ConvPReLU(128, 32), ResBlock(32, 32),
            nn.Conv2d(32, NUM_LANDMARKS * 3, 3),                                    # 1x1
        )
        self.presence_head = nn.Sequential(
            ResBlock(128, 128, 2), ConvPReLU(128, 32), ResBlock(32, 32),
            nn.Conv2d(32, 1, 3),
        )

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        x = (image + 1.0) * 0.5
        x = self.stem_act(self.stem(same_pad_stride2(x)))
        features = self.backbone(x)
        landmarks = self.landmark_head(features).flatten(1)
        presence = self.presence_head(features).flatten(1)
        return landmarks, presence
