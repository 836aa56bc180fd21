"""Typed inference settings and the official default thresholds they resolve to.

The official ``bev`` command-line tool changes its thresholds behind the user's back: with
``--crowd`` (on by default) it overwrites ``--center_thresh`` after parsing. Here an explicit
threshold always wins; the table below only fills in what the user did not give.

=================  ======  =====  ==============  =======
model / mode       center  nms    relative scale  overlap
=================  ======  =====  ==============  =======
ROMP               0.25    -      -               -
BEV                0.10    20     1.6             0.8
BEV --crowd        0.08    20     1.6             0.8
BEV_ft_agora       0.25    20     1.6             0.8
BEV_ft_agora crowd 0.12    20     1.6             0.46
=================  ======  =====  ==============  =======

(``BEV_ft_agora``'s relative-scale threshold is 1.6 rather than its table's 2 / 1.5 because the
official code reads it with the module-level model id; reproduced so that defaults match.)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

MODELS = ("romp", "bev")
BEV_VARIANTS = ("bev", "bev_ft_agora")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
CUDA_DEVICE = re.compile(r"cuda:\d+")


@dataclass(frozen=True)
class Thresholds:
    center: float
    nms: float = 20.0
    relative_scale: float = 1.6
    overlap: float = 0.8


OFFICIAL_THRESHOLDS = {
    ("romp", False): Thresholds(center=0.25),
    ("romp", True): Thresholds(center=0.25),
    ("bev", False): Thresholds(center=0.1),
    ("bev", True): Thresholds(center=0.08),
    ("bev_ft_agora", False): Thresholds(center=0.25),
    ("bev_ft_agora", True): Thresholds(center=0.12, overlap=0.46),
}


def bev_variant_for(checkpoint: str | Path | None) -> str:
    """``bev_ft_agora`` for a file named like the official ``BEV_ft_agora.pth``, else ``bev``."""
    return "bev_ft_agora" if checkpoint and "ft_agora" in Path(checkpoint).name.lower() else "bev"


def model_for(checkpoint: str | Path | None) -> str:
    """``bev`` for a file named like the official ``BEV.pth`` / ``BEV_ft_agora.pth``, else ``romp``."""
    return "bev" if checkpoint and "bev" in Path(checkpoint).name.lower() else "romp"


def check_range(name: str, value: float | None, low: float, high: float = math.inf, high_open: bool = False) -> None:
    """ValueError naming ``name`` and its valid range unless ``value`` is None or in [low, high]
    ([low, high) with ``high_open``); NaN and infinities are refused."""
    if value is None:
        return
    inside = math.isfinite(value) and low <= value and (value < high if high_open else value <= high)
    if not inside:
        upper = "" if math.isinf(high) else f", {high:g}{')' if high_open else ']'}"
        valid = f"in [{low:g}{upper}" if upper else f">= {low:g} (finite)"
        raise ValueError(f"{name} must be {valid}, not {value}")


@dataclass(frozen=True)
class PredictorSettings:
    """Everything that changes what :class:`core.predictor.Predictor` outputs or where it runs.

    Thresholds left ``None`` take the official default for the model, variant and crowd mode.
    ``crowd`` (BEV) uses crowd defaults and splits images with w / h >= 2 into sliding windows.
    ``batch_size`` bounds how many 512x512 views go through the network at once; ``None`` picks
    16 on CUDA and 1 on CPU (CPU convolutions are fastest one image at a time, see bench/).
    ``root_align`` (ROMP) centres ROMP's joints on the hip midpoint, as the official
    ``--root_align`` for self-trained checkpoints; BEV joints are always root-aligned.
    ``hflip`` mirrors every image left-right before pre-processing (test-time augmentation for
    ``pseudo-label``'s flip agreement test); results are then in the mirrored image's pixels.
    """

    center_thresh: float | None = None
    nms_thresh: float | None = None
    relative_scale_thresh: float | None = None
    overlap_ratio: float | None = None
    crowd: bool = True
    bev_variant: str = "bev"
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int | None = None
    save_verts: bool = False
    root_align: bool = False
    hflip: bool = False

    def __post_init__(self) -> None:
        if self.bev_variant not in BEV_VARIANTS:
            raise ValueError(f"bev_variant must be one of {BEV_VARIANTS}, not {self.bev_variant!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.device not in DEVICES and not CUDA_DEVICE.fullmatch(self.device):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {self.batch_size}")
        check_range("center_thresh", self.center_thresh, 0.0, 1.0)  # center maps are trained into [0, 1]
        check_range("nms_thresh", self.nms_thresh, 0.0)  # px per 640 px of image side
        check_range("relative_scale_thresh", self.relative_scale_thresh, 0.0)
        check_range("overlap_ratio", self.overlap_ratio, 0.0, 1.0, high_open=True)

    def thresholds(self, model: str) -> Thresholds:
        """The thresholds in force: explicit values, else the official defaults."""
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, not {model!r}")
        key = "romp" if model == "romp" else self.bev_variant
        base = OFFICIAL_THRESHOLDS[(key, self.crowd)]
        given = {
            "center": self.center_thresh,
            "nms": self.nms_thresh,
            "relative_scale": self.relative_scale_thresh,
            "overlap": self.overlap_ratio,
        }
        return replace(base, **{k: v for k, v in given.items() if v is not None})
