"""Extra viewpoints on the people of one image: a side view and a bird's-eye (top) view.

A :class:`View` rotates the people about a centre and backs a canonical camera off until all of
them fit; it is a value, so ``meshfleet render`` can fit it once per video (on all frames' meshes)
and keep it steady. Rotations are in the camera frame (x right, y down, z forward):

* side: seen from the right (+x), looking along -x; depth grows to the right of the picture.
* top: seen from above (-y, up in the camera frame), looking down; depth grows towards the top of
  the picture, as in BEV's bird's-eye view.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.render.camera import PinholeCamera, canonical_camera

FRONT = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
SIDE = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (-1.0, 0.0, 0.0))
TOP = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0))
# Keep the nearest point at least this far (metres) in front of the view's camera.
MIN_CLEARANCE = 0.1


@dataclass(frozen=True)
class View:
    """x_view = rotation @ (x - center) + (0, 0, distance), seen by ``camera`` (a batch of one).
    rotation: (3, 3); center: (3,) metres in the original camera frame; distance: metres."""

    rotation: torch.Tensor
    center: torch.Tensor
    distance: float
    camera: PinholeCamera

    def apply(self, verts: torch.Tensor) -> torch.Tensor:
        """(..., 3) original camera-frame points -> (..., 3) points in the view's camera frame."""
        rotation, center = self.rotation.to(verts), self.center.to(verts)
        moved = (verts - center) @ rotation.T
        return moved + torch.tensor([0.0, 0.0, self.distance], dtype=verts.dtype, device=verts.device)


def fit_view(verts: torch.Tensor, rotation: tuple[tuple[float, ...], ...] | torch.Tensor,
             height: int, width: int, margin: float = 1.1) -> View:
    """The view along ``rotation`` (SIDE, TOP, FRONT or any (3, 3) rotation) that shows all of
    ``verts`` (..., 3) in a ``height`` x ``width`` picture with the canonical FOV-60 camera, with
    ``margin`` (>= 1) of room around them. The centre is the middle of the points' bounding box."""
    if margin < 1:
        raise ValueError(f"margin must be >= 1, got {margin}")
    camera = canonical_camera(height, width, device=verts.device)
    rot = torch.as_tensor(rotation, dtype=torch.float32, device=verts.device)
    points = verts.reshape(-1, 3).float()
    if points.shape[0] == 0:
        return View(rot, torch.zeros(3, device=verts.device), 1.0, camera)
    center = (points.amin(dim=0) + points.amax(dim=0)) / 2
    q = (points - center) @ rot.T
    focal = float(camera.focal[0])
    half = torch.tensor([width / 2.0, height / 2.0], device=verts.device) / margin
    # |f q_xy / (q_z + d)| <= half  <=>  d >= f |q_xy| / half - q_z for every point.
    needed = (focal * q[:, :2].abs() / half).amax(dim=1) - q[:, 2]
    distance = max(float(needed.max()), float((-q[:, 2]).max()) + MIN_CLEARANCE)
    centered = PinholeCamera(camera.focal, torch.tensor([[width / 2.0, height / 2.0]], device=verts.device),
                             height, width)
    return View(rot, center, distance, centered)
