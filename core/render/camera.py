"""Pinhole cameras for rendering, in the conventions of ROMP / BEV results.

Camera frame: x right, y down, z forward (metres), as ``cam_trans`` and the meshes of meshfleet
results. Image coordinates are continuous pixels: ``u = f x / z + cx``, ``v = f y / z + cy``;
pixel (row r, column c) covers [c, c + 1) x [r, r + 1) and is sampled at its centre
(c + 0.5, r + 0.5). So a projected point (u, v) falls in pixel (floor(v), floor(u)), and the
principal point (w/2, h/2) is the geometric centre of the image — the reading under which the
README's ``c = (S/2 - left, S/2 - top)`` is the centre of the padded square.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from core.cameras import CANVAS, FOCAL_512
from core.preprocess import SquarePad


@dataclass(frozen=True)
class PinholeCamera:
    """One pinhole camera per image of a batch; all images share one size.

    focal: (B,) float32 px (square pixels, fx = fy); center: (B, 2) float32 px (cx, cy);
    height, width: the image size in pixels.
    """

    focal: torch.Tensor
    center: torch.Tensor
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.focal.ndim != 1 or self.center.shape != (self.focal.shape[0], 2):
            raise ValueError(f"focal must be (B,) and center (B, 2); got {tuple(self.focal.shape)} "
                             f"and {tuple(self.center.shape)}")
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"image size must be positive, got {self.height} x {self.width}")

    @property
    def batch_size(self) -> int:
        return int(self.focal.shape[0])

    def to(self, device: torch.device | str) -> PinholeCamera:
        return PinholeCamera(self.focal.to(device), self.center.to(device), self.height, self.width)

    def select(self, index: int) -> PinholeCamera:
        """The camera of image ``index`` as a batch of one."""
        return PinholeCamera(self.focal[index:index + 1], self.center[index:index + 1], self.height, self.width)

    def project(self, points: torch.Tensor, image: int = 0) -> torch.Tensor:
        """(..., 3) camera-frame points seen by image ``image`` -> (..., 2) continuous pixels (u, v)."""
        focal = self.focal[image].to(points)
        center = self.center[image].to(points)
        return points[..., :2] / points[..., 2:3] * focal + center


def canonical_camera(height: int, width: int, device: torch.device | str = "cpu") -> PinholeCamera:
    """The canonical FOV-60 camera of an original ``height`` x ``width`` image (batch of one).

    As README "Camera" and :mod:`core.cameras`: ROMP / BEV's camera on the 512 canvas (focal
    443.4 px, centred) scaled to the padded square of side S = max(h, w):
    ``f = 443.4 * S / 512``, ``c = (S/2 - left, S/2 - top)``. Projecting ``joints + cam_trans`` of a
    BEV result with it gives its ``pj2d_org``.
    """
    return canonical_cameras([(height, width)], device)


def canonical_cameras(sizes: Sequence[tuple[int, int]], device: torch.device | str = "cpu") -> PinholeCamera:
    """Canonical cameras of several images of one size (h, w), e.g. the frames of a video."""
    if not sizes or len(set(sizes)) != 1:
        raise ValueError(f"expected one or more images of a single size, got {list(sizes)}")
    height, width = sizes[0]
    pad = SquarePad.of(height, width)
    focal = FOCAL_512 * pad.side / CANVAS
    center = (pad.side / 2 - pad.left, pad.side / 2 - pad.top)
    count = len(sizes)
    return PinholeCamera(
        focal=torch.full((count,), focal, dtype=torch.float32, device=device),
        center=torch.tensor([center] * count, dtype=torch.float32, device=device),
        height=height, width=width,
    )
