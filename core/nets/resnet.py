"""ROMP's ResNet-50 backbone (``configs/v1_resnet.yml``, ``ROMP_ResNet50_V1.pkl``).

Standard ResNet-50 (Bottleneck [3, 4, 6, 3], 7x7 stride-2 stem + max-pool) to 2048 channels at
stride 32, then three ConvTranspose(4x4, stride 2) + BN + ReLU layers (256, 128, 64 filters) back
to stride 4: (B, 64, H/4, W/4). Inputs are ImageNet-normalised inside (x/255, mean/std), as the
training repository's ``resnet_50.py`` does. The shipped reference lists no key table for this
model (only ROMP-HRNet and BEV); attribute names follow that file, so the keys are
``backbone.conv1``, ``backbone.layer{1-4}.*``, ``backbone.deconv_layers.{0,1,3,4,6,7}``.
"""

from __future__ import annotations

import torch
from torch import nn

from core.nets.blocks import BN_MOMENTUM, Backbone, Bottleneck

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _resnet_layer(in_ch: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    out_ch = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM),
        )
    layers = [Bottleneck(in_ch, planes, stride, downsample)]
    layers += [Bottleneck(out_ch, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _deconv_layers(in_ch: int, filters: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for out_ch in filters:
        layers += [
            nn.ConvTranspose2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1, output_padding=0, bias=False),
            nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        ]
        in_ch = out_ch
    return nn.Sequential(*layers)


class ResNet50(Backbone):
    """ResNet-50 + 3 deconvolutions: (B, H, W, 3) RGB [0, 255] -> (B, 64, H/4, W/4)."""

    out_channels = 64
    channels_last = False
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _resnet_layer(64, 64, 3, stride=1)
        self.layer2 = _resnet_layer(256, 128, 4, stride=2)
        self.layer3 = _resnet_layer(512, 256, 6, stride=2)
        self.layer4 = _resnet_layer(1024, 512, 3, stride=2)
        self.deconv_layers = _deconv_layers(2048, (256, 128, 64))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        x = ((images.permute(0, 3, 1, 2) / 255.0 - self.mean) / self.std).contiguous(memory_format=memory)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.deconv_layers(x)
