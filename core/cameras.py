"""Camera models of ROMP and BEV, and root translations (``cam_trans``) in metres.

Both models use a canonical camera on the 512x512 square canvas: FOV 60 deg, focal length
``FOCAL_512 = 443.4`` px, principal point at the canvas centre, no rotation. In pixels of the
original h x w image (padded square side S = max(h, w)) the same camera is
``f = 443.4 * S / 512`` (~ S / (2 tan 30 deg)), ``c = (S/2 - left, S/2 - top)`` (~ (w/2, h/2)).

* ROMP predicts a weak-perspective camera (s, tx, ty): ``uv = s * XY + (tx, ty)`` in [-1, 1].
  Its ``cam_trans`` is fitted by EPnP-RANSAC between the first 24 joints and their
  weak-perspective projections, as the official code does (:func:`pnp_translation`).
* BEV predicts (s, y, x) with s ~ inverse depth: ``depth = 1 / (s tan 30 + 1e-3)``,
  ``(X, Y) = (x, y) * depth * tan 30``; projection is perspective.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

FOCAL_512 = 443.4
CANVAS = 512
TAN_HALF_FOV = float(np.tan(np.radians(60 / 2.0)))
PNP_MIN_POINTS = 4


def weak_perspective_project(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """ROMP: points (N, K, 3), cam (N, 3) = (s, tx, ty) -> (N, K, 2) normalised canvas coords."""
    cam = cam.view(-1, 1, 3)
    return points[:, :, :2] * cam[:, :, :1] + cam[:, :, 1:]


def romp_cam_to_trans(cam: torch.Tensor) -> torch.Tensor:
    """ROMP's closed-form translation 2 * (tx/s, ty/s, 1/s) (the official pre-PnP value)."""
    s, tx, ty = cam[:, 0], cam[:, 1], cam[:, 2]
    return torch.stack([tx / s, ty / s, 1.0 / s], dim=1) * 2.0


def bev_cam_to_trans(cam: torch.Tensor) -> torch.Tensor:
    """BEV: cam (N, 3) = (s, y, x) -> translation (N, 3) = (X, Y, depth) in metres."""
    depth = (1 / (cam[:, 0] * TAN_HALF_FOV + 1e-3)).unsqueeze(1)
    xy = torch.flip(cam[:, 1:], [1]) * depth * TAN_HALF_FOV
    return torch.cat([xy, depth], dim=1)


def trans_to_bev_cam(trans: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`bev_cam_to_trans`: (N, 3) translations (X, Y, depth) -> (N, 3) cams (s, y, x)."""
    depth = trans[:, 2:]
    s = (1.0 / depth - 1e-3) / TAN_HALF_FOV
    yx = torch.flip(trans[:, :2], [1]) / (depth * TAN_HALF_FOV)
    return torch.cat([s, yx], dim=1)


def trans_to_romp_cam(trans: torch.Tensor, focal: float = FOCAL_512) -> torch.Tensor:
    """(N, 3) translations of a body's root -> ROMP's weak-perspective cam (s, tx, ty): the
    perspective camera's first-order projection about the root, s = f / Z, (tx, ty) = f (X, Y) / Z
    with f the focal length in normalised canvas units."""
    f = focal / (CANVAS / 2.0)
    return torch.cat([f / trans[:, 2:], f * trans[:, :2] / trans[:, 2:]], dim=1)


def perspective_project(points: torch.Tensor, trans: torch.Tensor, focal: float = FOCAL_512) -> torch.Tensor:
    """points (N, K, 3) + trans (N, 3) -> (N, K, 2) normalised canvas coords (canvas = 512 px)."""
    p = points + trans.unsqueeze(1)
    p = p / (p[:, :, 2:] + 1e-6)
    return p[:, :, :2] * focal / (CANVAS / 2.0)


def least_squares_translation(
    joints3d: np.ndarray, joints2d: np.ndarray, focal: float, center: np.ndarray | tuple[float, float] = (0.0, 0.0),
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Per person, the translation t minimising the (weighted) linearised reprojection error
    ``f (X + t_xy) - (uv - c)(Z + t_z)`` over its points (the SPIN / official linear form).

    joints3d (N, K, 3) metres; joints2d (N, K, 2) in the units of ``focal`` and ``center``;
    weights (N, K) (None = all 1). Returns (N, 3) float64; rank-deficient people get the
    minimum-norm solution.
    """
    j3d = np.asarray(joints3d, np.float64)
    d = np.asarray(joints2d, np.float64) - np.asarray(center, np.float64)
    n, k = j3d.shape[:2]
    w = np.ones((n, k)) if weights is None else np.asarray(weights, np.float64)
    a = np.zeros((n, k, 2, 3))
    a[:, :, 0, 0] = focal
    a[:, :, 1, 1] = focal
    a[:, :, :, 2] = -d
    rhs = d * j3d[:, :, 2:] - focal * j3d[:, :, :2]  # (N, K, 2)
    ata = np.einsum("nk,nkri,nkrj->nij", w, a, a)
    atb = np.einsum("nk,nkri,nkr->ni", w, a, rhs)
    return np.einsum("nij,nj->ni", np.linalg.pinv(ata), atb)


def pnp_translation(
    joints3d: np.ndarray, joints2d: np.ndarray, focal: float = FOCAL_512, canvas: int = CANVAS
) -> tuple[np.ndarray, np.ndarray]:
    """ROMP's ``cam_trans``: per person, the translation putting ``joints3d`` onto ``joints2d``.

    joints3d: (N, K, 3) float32 metres; joints2d: (N, K, 2) float32 pixels of the 512 canvas.
    Returns (N, 3) float32 translations and (N,) bool "as official" flags.

    As the official ``estimate_translation``: points enter when their 2D y > -2 px (the official
    code reads the y column as a confidence) and their Z != -2; with >= 4 of them,
    ``cv2.solvePnPRansac(EPnP, reprojectionError=20, iterationsCount=100)``, falling back to
    linear least squares if OpenCV raises. Where the official code gives up and returns
    [-1, -1, -1] (fewer than 4 such points, or RANSAC without inliers), meshfleet instead fits
    the linear least-squares translation on all points and flags the row ``False``.
    """
    camera = np.array([[focal, 0, canvas // 2], [0, focal, canvas // 2], [0, 0, 1]], dtype=np.float64)
    center = np.array([canvas // 2, canvas // 2], dtype=np.float64)
    joints3d = joints3d.astype(np.float32, copy=False)
    joints2d = joints2d.astype(np.float32, copy=False)
    out = np.zeros((joints3d.shape[0], 3), dtype=np.float64)
    official = np.ones(joints3d.shape[0], dtype=bool)
    for i, (j3d, j2d) in enumerate(zip(joints3d, joints2d, strict=True)):
        valid = (j2d[:, 1] > -2.0) & (j3d[:, 2] != -2.0)
        solved = None
        if valid.sum() >= PNP_MIN_POINTS:
            try:
                _, _, tvec, inliers = cv2.solvePnPRansac(
                    j3d[valid], j2d[valid], camera, None,
                    flags=cv2.SOLVEPNP_EPNP, reprojectionError=20, iterationsCount=100,
                )
                solved = None if inliers is None else tvec[:, 0]
            except cv2.error:
                solved = least_squares_translation(j3d[valid][None], j2d[valid][None], focal, center)[0]
        if solved is None:
            official[i] = False
            solved = least_squares_translation(j3d[None], j2d[None], focal, center)[0]
        out[i] = solved
    return out.astype(np.float32), official
