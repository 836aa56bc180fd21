"""ROMP (HRNet-32): a body-center heatmap and a dense parameter map, both 64x64.

``params_maps`` channels: 3 camera (s, tx, ty) + 6 global-orient 6D + 21x6 body-pose 6D + 10 betas.
The camera scale channel is returned raw; ``1.1 ** raw`` is applied by the parser, as in the
official pip package (which moved it out of the graph for TensorRT).
"""

from __future__ import annotations

import torch
from torch import nn

from core.nets.blocks import BN_MOMENTUM, BasicBlock
from core.nets.hrnet import HRNet32

ROMP_CAM_DIM = 3
ROMP_POSE_DIM = 22 * 6
ROMP_BETA_DIM = 10
ROMP_PARAM_DIM = ROMP_CAM_DIM + ROMP_POSE_DIM + ROMP_BETA_DIM  # 145
ROMP_MAP_SIZE = 64


def coord_maps(size: int) -> torch.Tensor:
    """(1, 2, size, size) CoordConv channels: x (varies along W) then y, both in [-1, 1]."""
    ramp = torch.arange(size, dtype=torch.float32) / (size - 1) * 2 - 1
    xx = ramp.view(1, 1, 1, size).expand(1, 1, size, size)
    yy = ramp.view(1, 1, size, 1).expand(1, 1, size, size)
    return torch.cat([xx, yy], dim=1)


def _romp_head(in_ch: int, out_ch: int, width: int = 64, num_blocks: int = 2) -> nn.Sequential:
    """stride-2 conv (128 -> 64 map) + BN + ReLU, ``num_blocks`` BasicBlocks, 1x1 output conv."""
    return nn.Sequential(
        nn.Sequential(
            nn.Conv2d(in_ch, width, kernel_size=3, stride=2, padding=1),
            nn.BatchNorm2d(width, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        ),
        nn.Sequential(*[nn.Sequential(BasicBlock(width, width)) for _ in range(num_blocks)]),
        nn.Conv2d(width, out_ch, kernel_size=1),
    )


class ROMPNet(nn.Module):
    """ROMP v1: HRNet-32 + CoordConv + three heads (params, center, camera)."""

    coordmaps: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.backbone = HRNet32()
        in_ch = HRNet32.out_channels + 2
        # index 0 is empty (None) in the official model; keys are final_layers.{1,2,3}.*
        self.final_layers = nn.ModuleList(
            [
                nn.Identity(),
                _romp_head(in_ch, ROMP_POSE_DIM + ROMP_BETA_DIM),
                _romp_head(in_ch, 1),
                _romp_head(in_ch, ROMP_CAM_DIM),
            ]
        )
        self.register_buffer("coordmaps", coord_maps(128), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 512, 512, 3) RGB [0, 255] -> center_maps (B, 1, 64, 64), params_maps (B, 145, 64, 64)."""
        x = self.backbone(images)
        x = torch.cat([x, self.coordmaps.to(x.dtype).expand(x.shape[0], -1, -1, -1)], dim=1)
        params = self.final_layers[1](x)
        center = self.final_layers[2](x)
        cam = self.final_layers[3](x)
        return center, torch.cat([cam, params], dim=1)
