"""BlazeFace full-range face detector (MediaPipe ``face_detection_full_range.tflite``) in PyTorch.

Reconstructed from the TFLite graph: a stride-2 stem, fifteen "double" BlazeBlocks down to 6x6,
then a top-down path (1x1 conv + bilinear 2x upsample + lateral add) back to 48x48, where two
1x1 heads predict one anchor per cell: 48 * 48 = 2304 anchors, 16 box/keypoint regressors each.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

INPUT_SIZE = 192
NUM_ANCHORS = 2304
NUM_COORDS = 16


def depthwise3x3(channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 depthwise conv. Stride 1 pads 1 all round (TFLite SAME); stride 2 pads in forward."""
    return nn.Conv2d(channels, channels, 3, stride=stride, padding=1 if stride == 1 else 0,
                     groups=channels)


def same_pad_stride2(x: Tensor) -> Tensor:
    """TFLite SAME padding of a 3x3 stride-2 window on an even input: one row/column at bottom/right."""
    return F.pad(x, (0, 1, 0, 1))


class BlazeBlock(nn.Module):
    """Double BlazeBlock: dw3x3 -> 1x1 -> ReLU -> dw3x3 -> 1x1, plus a shortcut, then ReLU.

    With stride 2 the shortcut is a 2x2 max-pool; extra output channels are zero-padded onto it.
    """

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2) or out_ch < in_ch:
            raise ValueError(f"unsupported BlazeBlock({in_ch}, {mid_ch}, {out_ch}, stride={stride})")
        self.stride = stride
        self.channel_pad = out_ch - in_ch
        self.dw1 = depthwise3x3(in_ch, stride)
        self.pw1 = nn.Conv2d(in_ch, mid_ch, 1)
        self.dw2 = depthwise3x3(mid_ch)
        self.pw2 = nn.Conv2d(mid_ch, out_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = same_pad_stride2(x) if self.stride == 2 else x
        y = self.pw2(self.dw2(F.relu(self.pw1(self.dw1(y)))))
        shortcut = F.max_pool2d(x, 2) if self.stride == 2 else x
        if self.channel_pad:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.channel_pad))
        return F.relu(y + shortcut)


class TopDownMerge(nn.Module):
    """relu(1x1 lateral) + bilinear 2x upsample of relu(1x1 top) (half-pixel centers, no ReLU after)."""

    def __init__(self, top_ch: int, lateral_ch: int, out_ch: int) -> None:
        super().__init__()
        self.top = nn.Conv2d(top_ch, out_ch, 1)
        self.lateral = nn.Conv2d(lateral_ch, out_ch, 1)

    def forward(self, top: Tensor, lateral: Tensor) -> Tensor:
        up = F.interpolate(F.relu(self.top(top)), scale_factor=2.0, mode="bilinear",
                           align_corners=False)
        return F.relu(self.lateral(lateral)) + up


class BlazeFaceFullRange(nn.Module):
    """Full-range BlazeFace. Input NCHW RGB in [-1, 1], 192x192.

    Returns ``(regressors [N, 2304, 16], scores [N, 2304, 1])``: raw outputs, anchors in the
    TFLite order (row-major over the 48x48 grid).
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, stride=2)                                   # 96x96
        self.stage96 = nn.Sequential(BlazeBlock(32, 8, 32), BlazeBlock(32, 8, 32))
        self.stage48 = nn.Sequential(BlazeBlock(32, 12, 48, 2), BlazeBlock(48, 12, 48),
                                     BlazeBlock(48, 16, 64))
        self.stage24 = nn.Sequential(BlazeBlock(64, 24, 96, 2), BlazeBlock(96, 32, 128),
                                     BlazeBlock(128, 32, 128))
        self.stage12 = nn.Sequential(BlazeBlock(128, 36, 144, 2), BlazeBlock(144, 48, 192),
                                     BlazeBlock(192, 64, 256))
        self.stage6 = nn.Sequential(BlazeBlock(256, 96, 384, 2),
                                    *(BlazeBlock(384, 96, 384) for _ in range(3)))
        self.merge12 = TopDownMerge(384, 256, 96)
        self.refine12 = nn.Sequential(BlazeBlock(96, 48, 96), BlazeBlock(96, 48, 96))
        self.merge24 = TopDownMerge(96, 128, 64)
        self.refine24 = nn.Sequential(BlazeBlock(64, 32, 64), BlazeBlock(64, 32, 64))
        self.merge48 = TopDownMerge(64, 64, 48)
        self.refine48 = BlazeBlock(48, 24, 48)
        self.classifier = nn.Conv2d(48, 1, 1)
        self.regressor = nn.Conv2d(48, NUM_COORDS, 1)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        x = F.relu(self.stem(same_pad_stride2(image)))
        c48 = self.stage48(self.stage96(x))
        c24 = self.stage24(c48)
        c12 = self.stage12(c24)
        c6 = self.stage6(c12)
        p12 = self.refine12(self.merge12(c6, c12))
        p24 = self.refine24(self.merge24(p12, c24))
        p48 = self.refine48(self.merge48(p24, c48))
        # TFLite reshapes NHWC maps, so anchors run over (row, col) with channels innermost.
        regressors = self.regressor(p48).permute(0, 2, 3, 1).flatten(1, 2)
        scores = self.classifier(p48).permute(0, 2, 3, 1).flatten(1, 2)
        return regressors, scores
