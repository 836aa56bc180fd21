"""What a network is: head (ROMP / BEV), backbone, input and map sizes -- one frozen record.

The official checkpoints are ``NetworkConfig.official("romp")`` (HRNet-32, 512 px input, 64^2
maps) and ``NetworkConfig.official("bev")`` (HRNet-32, 512 px, 128^2 maps, 64 depth bins); their
state_dict keys and shapes equal the released files. Every other configuration is meshfleet's
own and is saved in meshfleet checkpoints together with this record (``core.checkpoints``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

MODELS = ("romp", "bev")
BACKBONES = ("hrnet32", "resnet50", "small")
# stride of the backbone's output features (input px per feature cell)
BACKBONE_STRIDE = {"hrnet32": 4, "resnet50": 4, "small": 4}
OFFICIAL_INPUT = 512
# official map sizes: ROMP halves the 128^2 features in its heads, BEV keeps them (reference 5.3-5.4)
OFFICIAL_MAP = {"romp": 64, "bev": 128}
OFFICIAL_HEAD_WIDTH = {"romp": 64, "bev": 128}
OFFICIAL_HEAD_BLOCKS = {"romp": 2, "bev": 1}  # ROMP v1 head_block_num 2; BEV NUM_BASIC_BLOCKS 1
# the compact backbone halves BEV's head width: its 128-channel det/param heads at full map
# resolution would cost more than the backbone itself (bench/bench_train_step.py)
SMALL_HEAD_WIDTH = {"romp": 64, "bev": 64}


@dataclass(frozen=True)
class NetworkConfig:
    """model: romp | bev; backbone: hrnet32 | resnet50 | small; input_size: square input side (px);
    map_size: side of the center / parameter maps; head_width: channels of the head blocks
    (ROMP heads, BEV det/param heads and the per-person feature); head_blocks: BasicBlocks per
    ROMP head. Fields left 0 take the official value for ``model`` (maps scaled to ``input_size``;
    the ``small`` backbone's BEV heads are 64 wide instead of 128).
    """

    model: str
    backbone: str = "hrnet32"
    input_size: int = OFFICIAL_INPUT
    map_size: int = 0
    head_width: int = 0
    head_blocks: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, not {self.model!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, not {self.backbone!r}")
        if self.backbone == "resnet50" and self.model != "romp":
            raise ValueError("the ResNet-50 backbone exists for ROMP only (official v1_resnet)")
        stride = BACKBONE_STRIDE[self.backbone]
        if self.input_size < 64 or self.input_size % (8 * stride):
            raise ValueError(f"input_size must be >= 64 and a multiple of {8 * stride}, not {self.input_size}")
        if not self.map_size:
            object.__setattr__(self, "map_size", self.input_size * OFFICIAL_MAP[self.model] // OFFICIAL_INPUT)
        if not self.head_width:
            widths = SMALL_HEAD_WIDTH if self.backbone == "small" else OFFICIAL_HEAD_WIDTH
            object.__setattr__(self, "head_width", widths[self.model])
        if not self.head_blocks:
            object.__setattr__(self, "head_blocks", OFFICIAL_HEAD_BLOCKS[self.model])
        ratio = self.feature_size // self.map_size
        allowed = (1, 2, 4) if self.model == "romp" else (1,)
        if self.feature_size % self.map_size or ratio not in allowed:
            raise ValueError(f"{self.model}: map_size {self.map_size} must be the feature size {self.feature_size} "
                             f"divided by one of {allowed}")
        if self.model == "bev" and self.map_size < 32:
            raise ValueError(f"bev: map_size must be >= 32 (depth bins scale with it), not {self.map_size}")

    @property
    def feature_size(self) -> int:
        """Side of the backbone's output feature map."""
        return self.input_size // BACKBONE_STRIDE[self.backbone]

    @property
    def head_strides(self) -> tuple[int, ...]:
        """Strides of ROMP's head input convs: one stride-2 conv per halving (official _get_trans_cfg)."""
        halvings = (self.feature_size // self.map_size).bit_length() - 1
        return (2,) * halvings if halvings else (1,)

    @property
    def is_official(self) -> bool:
        """True when this is a released architecture, whose files the official tools load."""
        return self == NetworkConfig.official(self.model) or (
            self.model == "romp" and self == NetworkConfig("romp", "resnet50"))

    @classmethod
    def official(cls, model: str) -> NetworkConfig:
        return cls(model=model)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown network config keys: {unknown}")
        return cls(**data)
