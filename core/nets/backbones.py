"""Backbone name -> module. Each takes (B, H, W, 3) RGB in [0, 255] and returns stride-4 features
with ``out_channels`` channels; ``channels_last`` switches its convolutions to NHWC."""

from __future__ import annotations

from core.nets.blocks import Backbone
from core.nets.compact import CompactNet
from core.nets.hrnet import HRNet32
from core.nets.resnet import ResNet50

BACKBONE_CLASSES: dict[str, type[Backbone]] = {"hrnet32": HRNet32, "resnet50": ResNet50, "small": CompactNet}


def build_backbone(name: str) -> Backbone:
    if name not in BACKBONE_CLASSES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONE_CLASSES)}")
    return BACKBONE_CLASSES[name]()
