"""The commit of ``meshfleet render``: a unit's panel rows -> the bytes of its picture or MP4.

The encoders are :mod:`pipelines.synth.media`'s (OpenCV's JPEG / PNG, x264 through PyAV). H.264
in 4:2:0 needs even sizes: video panels are padded by one black row / column where odd.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.render.plan import MediaUnit
from pipelines.synth.media import encode_jpeg, encode_mp4, encode_png
from pipelines.tracking import DEFAULT_FPS

JPEG_QUALITY = 92  # visually lossless for overlays, a fraction of PNG's size
Batch = dict[str, np.ndarray]


@dataclass(frozen=True)
class Encoded:
    """The file's bytes, its frames, and ``(input, reason)`` for each frame that could not be read."""

    data: bytes
    frames: int
    failed: tuple[tuple[str, str], ...]


def encode_unit(unit: MediaUnit, rows: Batch) -> Encoded:
    """The rows (``frame``, ``panel``, ``error``) of one unit, any order -> its file."""
    order = np.argsort(np.asarray(rows["frame"]), kind="stable")
    panels = [np.asarray(rows["panel"][i]) for i in order]
    errors = [str(rows["error"][i]) for i in order]
    failed = tuple(dict.fromkeys((unit.source, e) for e in errors if e))
    if not panels:
        raise ValueError(f"{unit.source}: no frames to encode")
    if unit.kind == "video":
        data = encode_mp4([_even(p) for p in panels], unit.fps if unit.fps > 0 else DEFAULT_FPS)
    elif unit.name.endswith(".png"):
        data = encode_png(panels[0])
    else:
        data = encode_jpeg(panels[0], JPEG_QUALITY)
    return Encoded(data, len(panels), failed)


def _even(picture: np.ndarray) -> np.ndarray:
    height, width = picture.shape[:2]
    return np.pad(picture, ((0, height % 2), (0, width % 2), (0, 0)))
