"""Image pre-processing of ROMP / BEV: BGR -> RGB, pad to a black square, cubic resize to 512.

Resizing is OpenCV's own ``INTER_CUBIC`` on uint8, so inputs are bit-identical to the official
ones. Everything here works on one image (numpy, CPU): it is the stage that runs in parallel
CPU workers before batches reach the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

INPUT_SIZE = 512


@dataclass(frozen=True)
class SquarePad:
    """Where an h x w image sits inside its zero-padded square of side max(h, w).

    ``top``/``left`` are the padding before the image (floor of half the difference),
    exactly the official ``image_pad_info = [top, bottom, left, right, h, w]``.
    """

    top: int
    left: int
    height: int
    width: int

    @property
    def side(self) -> int:
        return max(self.height, self.width)

    @classmethod
    def of(cls, height: int, width: int) -> SquarePad:
        side = max(height, width)
        return cls(top=(side - height) // 2, left=(side - width) // 2, height=height, width=width)

    def as_offsets(self) -> tuple[float, float, float]:
        """(top, left, side) used to map normalised [-1, 1] canvas coords to these pixels."""
        return float(self.top), float(self.left), float(self.side)


def pad_to_square(image: np.ndarray) -> tuple[np.ndarray, SquarePad]:
    """(h, w, 3) uint8 -> (s, s, 3) uint8 with the image centred on black, s = max(h, w)."""
    h, w = image.shape[:2]
    pad = SquarePad.of(h, w)
    square = np.zeros((pad.side, pad.side, 3), dtype=np.uint8)
    square[pad.top:pad.top + h, pad.left:pad.left + w] = image
    return square, pad


def prepare_input(image_bgr: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, SquarePad]:
    """One BGR uint8 image (as ``cv2.imread`` gives) -> (size, size, 3) RGB uint8 network input."""
    check_image(image_bgr)
    square, pad = pad_to_square(image_bgr[:, :, ::-1])
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_CUBIC), pad


def check_image(image: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``image`` is a non-empty (h, w, 3) uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an (h, w, 3) uint8 BGR image, got {desc}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image of shape {image.shape}")


def canvas_to_pixels(points: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Normalised canvas coordinates -> pixels of the padded image's source.

    points: (N, K, 2) in [-1, 1] over the square; offsets: (N, 3) rows of (top, left, side).
    Returns (N, K, 2): u = (u + 1) * side / 2 - left, v = (v + 1) * side / 2 - top.
    """
    top, left, side = offsets[:, 0, None], offsets[:, 1, None], offsets[:, 2, None]
    u = (points[..., 0] + 1) * side / 2 - left
    v = (points[..., 1] + 1) * side / 2 - top
    return torch.stack([u, v], dim=-1)
