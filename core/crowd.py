"""BEV's long-image ("crowd") mode: square sliding windows over images with w / h >= 2.

The geometry reproduces the official code as it runs, floating point included, because the
detections depend on it: the image is padded left and right by ``int(h * overlap)`` black
columns; crop ``k`` starts at ``int(k * (1 - overlap) * h)``; the crop count is
``int(ceil((W/h - 1) / (1 - overlap))) + 1`` on the padded width W (e.g. 20 crops, not 19, for a
360x1080 image with overlap 0.8); the last crop starts at ``W - h`` but keeps the previous
crop's right edge (so it can be narrower than h).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

LONG_IMAGE_ASPECT = 2.0


def is_long_image(height: int, width: int) -> bool:
    """The official trigger: width / height >= 2."""
    return width / height >= LONG_IMAGE_ASPECT


@dataclass(frozen=True)
class CropPlan:
    """Crops of one long image.

    pad: black columns added on each side; boxes: (n, 4) int32 rows (left, right, top, bottom)
    in the padded image; height: the image (and crop) height.
    """

    pad: int
    boxes: np.ndarray
    height: int

    @property
    def count(self) -> int:
        return int(self.boxes.shape[0])

    def crop(self, padded: np.ndarray, k: int) -> np.ndarray:
        left, right, top, bottom = (int(v) for v in self.boxes[k])
        return padded[top:bottom, left:right]

    def boundary_ratio(self, k: int) -> float:
        """Half the overlap of crops k and k+1, as a fraction of the crop height."""
        return float((self.boxes[k, 1] - self.boxes[k + 1, 0]) / self.height / 2)


def pad_sides(image: np.ndarray, overlap: float) -> tuple[np.ndarray, int]:
    """(h, w, 3) -> (h, w + 2L, 3) with L = int(h * overlap) black columns on each side."""
    h, w = image.shape[:2]
    pad = int(h * overlap)
    padded = np.zeros((h, w + 2 * pad, 3), dtype=np.uint8)
    padded[:, pad:pad + w] = image
    return padded, pad


def plan_crops(height: int, width: int, overlap: float) -> CropPlan:
    """Crop boxes for an image of ``height`` x ``width`` (before side padding)."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap ratio must be in [0, 1), got {overlap}")
    pad = int(height * overlap)
    padded_w = width + 2 * pad
    count = int(np.ceil((padded_w / height - 1) / (1 - overlap))) + 1
    step = (1 - overlap) * height
    boxes, right = [], float(height)
    for k in range(count):
        if k == count - 1:
            left = float(padded_w - height)  # right edge deliberately kept from crop k-1
        else:
            left = step * k
            right = left + height
        boxes.append([left, right, 0, height])
    return CropPlan(pad=pad, boxes=np.array(boxes).astype(np.int32), height=height)


def keep_inside_boundaries(cam_x: torch.Tensor, plan: CropPlan, k: int) -> torch.Tensor:
    """Keep-mask over the people of crop ``k`` (cam x in the crop's [-1, 1] frame).

    People right of ``1 - r`` are dropped for every crop but the last (the next crop sees
    them better); people left of ``r - 1`` are dropped for crops 2 .. n-1, where r is the
    half-overlap ratio with the crop before. (Crop 1's left side is not trimmed: the official
    loop starts one crop late, and the same detections require the same rule.)
    """
    keep = torch.ones_like(cam_x, dtype=torch.bool)
    if k < plan.count - 1:
        keep &= ~(cam_x > (1 - plan.boundary_ratio(k) + 0))
    if 2 <= k <= plan.count - 1:
        keep &= ~(cam_x < (plan.boundary_ratio(k - 1) - 1 - 0))
    return keep


def crop_cam_to_image(cam: torch.Tensor, plan: CropPlan, k: int, image_hw: tuple[int, int]) -> torch.Tensor:
    """(N, 3) crop cameras (s, y, x) -> cameras of the whole (unpadded) image."""
    left, right, top, bottom = (int(v) for v in plan.boxes[k])
    left, right = left - plan.pad, right - plan.pad
    h, w = image_hw
    scale = np.float64(max(right - left, bottom - top)) / max(h, w)
    out = cam * float(scale)
    shift = float(np.mean([left, right]) / (w / 2) - 1)
    out[:, 2] += shift
    return out
