"""HRNet-32 backbone of ROMP and BEV (the HigherHRNet-W32 trunk, stride-4 output only).

Input: (B, 512, 512, 3) float RGB in [0, 255] (channels last, as the official models take it).
Output: (B, 32, 128, 128) features of the highest-resolution branch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from core.nets.blocks import BN_MOMENTUM, Backbone, BasicBlock, Bottleneck


@dataclass(frozen=True)
class StageConfig:
    num_modules: int
    channels: tuple[int, ...]
    blocks_per_branch: int = 4


STAGES = (
    StageConfig(num_modules=1, channels=(32, 64)),
    StageConfig(num_modules=4, channels=(32, 64, 128)),
    StageConfig(num_modules=3, channels=(32, 64, 128, 256)),
)


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    """Conv (no bias) + BN (default momentum, as in the fuse/transition layers) [+ ReLU]."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks, then every output branch sums all inputs (fusion)."""

    def __init__(self, channels: tuple[int, ...], num_blocks: int, multi_scale_output: bool):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, c) for _ in range(num_blocks)]) for c in channels
        )
        n_out = len(channels) if multi_scale_output else 1
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(self._fuse_path(channels, src, dst) for src in range(len(channels)))
            for dst in range(n_out)
        )
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _fuse_path(channels: tuple[int, ...], src: int, dst: int) -> nn.Module:
        """Module bringing branch ``src`` to the resolution and width of branch ``dst``.

        (Identity, not the official ``None``, for src == dst: it has no weights, so the
        state_dict keys are the same.)
        """
        if src == dst:
            return nn.Identity()
        if src > dst:  # lower resolution: 1x1 conv + BN, nearest upsampling
            return nn.Sequential(
                nn.Conv2d(channels[src], channels[dst], 1, 1, 0, bias=False),
                nn.BatchNorm2d(channels[dst]),
                nn.Upsample(scale_factor=2 ** (src - dst), mode="nearest"),
            )
        steps = dst - src  # higher resolution: chain of stride-2 3x3 convs
        return nn.Sequential(
            *[
                _conv_bn(channels[src], channels[dst] if k == steps - 1 else channels[src], 3, 2,
                         relu=k != steps - 1)
                for k in range(steps)
            ]
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        fused = []
        for paths in self.fuse_layers:
            incoming = [path(x) for path, x in zip(paths, xs, strict=True)]  # type: ignore[call-overload]
            y = incoming[0]
            for term in incoming[1:]:
                y = y + term
            fused.append(self.relu(y))
        return fused


def _transition(prev: tuple[int, ...], cur: tuple[int, ...]) -> nn.ModuleList:
    """Adapts the previous stage's branches; the new (lowest) branch comes from the last one."""
    layers: list[nn.Module] = []
    for i, ch in enumerate(cur):
        if i < len(prev):
            layers.append(nn.Identity() if prev[i] == ch else _conv_bn(prev[i], ch, 3, 1, relu=True))
        else:
            steps = i + 1 - len(prev)
            layers.append(
                nn.Sequential(
                    *[_conv_bn(prev[-1], ch if k == steps - 1 else prev[-1], 3, 2, relu=True)
                      for k in range(steps)]
                )
            )
    return nn.ModuleList(layers)


class HRNet32(Backbone):
    """HRNet-W32 backbone, 28.5M parameters; keys match the official ``backbone.*`` entries."""

    out_channels = 32
    # NCHW by default: the official layout, so that CPU results can be bit-identical to it.
    # Channels-last (set by the Predictor on CUDA) is faster but picks other conv algorithms.
    channels_last = False

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        downsample = nn.Sequential(
            nn.Conv2d(64, 256, kernel_size=1, bias=False), nn.BatchNorm2d(256, momentum=BN_MOMENTUM)
        )
        self.layer1 = nn.Sequential(
            Bottleneck(64, 64, downsample=downsample), *[Bottleneck(256, 64) for _ in range(3)]
        )
        prev: tuple[int, ...] = (256,)
        for idx, cfg in enumerate(STAGES, start=1):
            setattr(self, f"transition{idx}", _transition(prev, cfg.channels))
            last = idx == len(STAGES)
            modules = [
                HighResolutionModule(
                    cfg.channels, cfg.blocks_per_branch,
                    multi_scale_output=not (last and m == cfg.num_modules - 1),
                )
                for m in range(cfg.num_modules)
            ]
            setattr(self, f"stage{idx + 1}", nn.Sequential(*modules))
            prev = cfg.channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) RGB in [0, 255] -> (B, 32, H/4, W/4)."""
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        x = (images.permute(0, 3, 1, 2) / 255.0 * 2.0 - 1.0).contiguous(memory_format=memory)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        branches = [self.layer1(x)]
        for idx in range(1, len(STAGES) + 1):
            transition: nn.ModuleList = getattr(self, f"transition{idx}")
            stage: nn.Sequential = getattr(self, f"stage{idx + 1}")
            # a new branch is made from the lowest-resolution one of the previous stage
            inputs = [layer(branches[min(i, len(branches) - 1)]) for i, layer in enumerate(transition)]
            for module in stage:
                inputs = module(inputs)
            branches = inputs
        return branches[0]
