"""``small``: a compact CPU backbone with the HRNet-32 interface (32 channels at stride 4).

A ResNet-10-like trunk (two stride-2 3x3 stem convs, then one BasicBlock per stage at strides
4, 8, 16, 32) and a top-down feature pyramid (1x1 laterals summed after nearest upsampling) back
to stride 4. Sized by measurement on a 2-core CPU (bench/bench_train_step.py): the reference
table (open-body-model.md 4) has ResNet-10/18-like trunks at 256 px and 32^2 maps at 7-13
images/s forward + backward, batch 8, 2 threads; this one is in that class (see README).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.nets.blocks import BN_MOMENTUM, Backbone, BasicBlock

STEM = (24, 48)
STAGES = (48, 96, 192, 256)  # channels at strides 4, 8, 16, 32
PYRAMID = 64


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM),
        nn.ReLU(inplace=True),
    )


def _stage(in_ch: int, out_ch: int, stride: int) -> BasicBlock:
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM),
        )
    return BasicBlock(in_ch, out_ch, stride, downsample)


class CompactNet(Backbone):
    """(B, H, W, 3) RGB [0, 255] -> (B, 32, H/4, W/4); H, W multiples of 32."""

    out_channels = 32
    channels_last = False

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_bn_relu(3, STEM[0], 3, 2), _conv_bn_relu(STEM[0], STEM[1], 3, 2))
        ins = (STEM[1], *STAGES[:-1])
        self.stages = nn.ModuleList(
            _stage(i, o, 1 if k == 0 else 2) for k, (i, o) in enumerate(zip(ins, STAGES, strict=True))
        )
        self.laterals = nn.ModuleList(nn.Conv2d(c, PYRAMID, kernel_size=1, bias=False) for c in STAGES)
        self.out = _conv_bn_relu(PYRAMID, self.out_channels, 3, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        x = (images.permute(0, 3, 1, 2) / 255.0 * 2.0 - 1.0).contiguous(memory_format=memory)
        x = self.stem(x)
        levels = []
        for stage in self.stages:
            x = stage(x)
            levels.append(x)
        top = self.laterals[-1](levels[-1])
        for lateral, level in zip(reversed(self.laterals[:-1]), reversed(levels[:-1]), strict=True):
            top = lateral(level) + F.interpolate(top, size=level.shape[-2:], mode="nearest")
        return self.out(top)
