"""ROMP: a body-center heatmap and a dense parameter map (official: HRNet-32, both 64x64).

``params_maps`` channels: 3 camera (s, tx, ty) + 6 global-orient 6D + 21x6 body-pose 6D + 10 betas.
The camera scale channel is returned raw; ``1.1 ** raw`` is applied by the parser, as in the
official pip package (which moved it out of the graph for TensorRT).

The backbone, input and map sizes come from a :class:`~core.nets.config.NetworkConfig`; the
default is the released model. Each head starts with one 3x3 conv per halving of the feature map
(stride 2; stride 1 when maps and features have the same size, the official ``_get_trans_cfg``).
"""

from __future__ import annotations

import torch
from torch import nn

from core.nets.backbones import build_backbone
from core.nets.blocks import BN_MOMENTUM, BasicBlock
from core.nets.config import NetworkConfig

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


def _romp_head(in_ch: int, out_ch: int, width: int, num_blocks: int, strides: tuple[int, ...]) -> nn.Sequential:
    """3x3 conv(s) + BN + ReLU (one per entry of ``strides``), ``num_blocks`` BasicBlocks, 1x1 output conv."""
    layers: list[nn.Module] = []
    for stride in strides:
        layers.append(nn.Sequential(
            nn.Conv2d(in_ch, width, kernel_size=3, stride=stride, padding=1),
            nn.BatchNorm2d(width, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        ))
        in_ch = width
    layers.append(nn.Sequential(*[nn.Sequential(BasicBlock(width, width)) for _ in range(num_blocks)]))
    layers.append(nn.Conv2d(width, out_ch, kernel_size=1))
    return nn.Sequential(*layers)


class ROMPNet(nn.Module):
    """ROMP v1: backbone + CoordConv + three heads (params, center, camera); 29.0M parameters as released."""

    coordmaps: torch.Tensor

    def __init__(self, config: NetworkConfig | None = None) -> None:
        super().__init__()
        self.config = config or NetworkConfig.official("romp")
        if self.config.model != "romp":
            raise ValueError(f"ROMPNet needs a romp config, not {self.config.model!r}")
        cfg = self.config
        self.backbone = build_backbone(cfg.backbone)
        in_ch = self.backbone.out_channels + 2
        width, blocks, strides = cfg.head_width, cfg.head_blocks, cfg.head_strides
        # index 0 is empty (None) in the official model; keys are final_layers.{1,2,3}.*
        self.final_layers = nn.ModuleList(
            [
                nn.Identity(),
                _romp_head(in_ch, ROMP_POSE_DIM + ROMP_BETA_DIM, width, blocks, strides),
                _romp_head(in_ch, 1, width, blocks, strides),
                _romp_head(in_ch, ROMP_CAM_DIM, width, blocks, strides),
            ]
        )
        self.register_buffer("coordmaps", coord_maps(cfg.feature_size), persistent=False)

    @property
    def input_size(self) -> int:
        return self.config.input_size

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S, S, 3) RGB [0, 255] -> center_maps (B, 1, M, M), params_maps (B, 145, M, M);
        S = input size, M = map size (official 512 and 64)."""
        x = self.backbone(images)
        x = torch.cat([x, self.coordmaps.to(x.dtype).expand(x.shape[0], -1, -1, -1)], dim=1)
        params = self.final_layers[1](x)
        center = self.final_layers[2](x)
        cam = self.final_layers[3](x)
        return center, torch.cat([cam, params], dim=1)
