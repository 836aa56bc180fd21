"""Geometry that turns predictions into training labels, and compares two passes over one image.

Pure, batched numpy / torch: the canonical camera of an image, the 3D joints and body-model
translation a label needs, joint visibility and boxes, left/right mirroring of predictions (flip
test-time augmentation) and the matching of one pass's people to another's. Shapes: N people,
71 joints (``core.body_models.JOINT_NAMES``); pixels are continuous, pixel column c covers [c, c+1).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from core.body_models import ROOT_ALIGN_JOINTS, BodyModelSet
from core.cameras import CANVAS, FOCAL_512
from core.preprocess import SquarePad
from core.train.labels import JOINT_FLIP

BODY_JOINTS = 24  # the SMPL kinematic joints come first in the 71
# (71,) index of each joint's left/right mirror image: the trainer's flip table, one definition
JOINT_MIRROR = JOINT_FLIP


def canonical_intrinsics(height: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The camera ROMP / BEV assume for an h x w image (pipelines.schema.CAMERA_CONVENTION):
    (N,) focal lengths f = 443.4 * S / 512 px and (N, 2) principal points (S/2 - left, S/2 - top)
    px, S = max(h, w), with the square padding of :class:`core.preprocess.SquarePad`."""
    focal = np.zeros(len(height), np.float32)
    principal = np.zeros((len(height), 2), np.float32)
    for i, (h, w) in enumerate(zip(np.asarray(height), np.asarray(width), strict=True)):
        pad = SquarePad.of(int(h), int(w))
        focal[i] = FOCAL_512 * pad.side / CANVAS
        principal[i] = (pad.side / 2 - pad.left, pad.side / 2 - pad.top)
    return focal, principal


def inside_image(points: np.ndarray, height: np.ndarray, width: np.ndarray) -> np.ndarray:
    """(N, K, 2) px, (N,) image sizes -> (N, K) bool: the point lies in [0, w) x [0, h)."""
    h = np.asarray(height, np.float64)[:, None]
    w = np.asarray(width, np.float64)[:, None]
    x, y = points[..., 0], points[..., 1]
    return np.isfinite(x) & np.isfinite(y) & (x >= 0) & (x < w) & (y >= 0) & (y < h)


def joint_boxes(points: np.ndarray, height: np.ndarray, width: np.ndarray) -> np.ndarray:
    """(N, K, 2) px -> (N, 4) x0, y0, x1, y1 of the points' extent clipped to the image (zero area
    where no point is inside)."""
    w = np.asarray(width, np.float32)[:, None]
    h = np.asarray(height, np.float32)[:, None]
    lo, hi = points.min(1), points.max(1)
    box = np.concatenate([lo, hi], axis=1)
    limit = np.concatenate([w, h, w, h], axis=1)
    return np.clip(box, 0, limit).astype(np.float32)


def mirror_points2d(points: np.ndarray, width: np.ndarray) -> np.ndarray:
    """(N, 71, 2) px found in the left-right mirrored image -> the same joints in the original
    image: x -> w - x, and left/right joints swapped."""
    out = points[:, JOINT_MIRROR].copy()
    out[..., 0] = np.asarray(width, out.dtype)[:, None] - out[..., 0]
    return out


def mirror_points3d(points: np.ndarray) -> np.ndarray:
    """(N, 71, 3) camera-frame joints of the mirrored image -> the original's: X -> -X about the
    optical axis, left/right joints swapped (exact when the principal point is the image centre)."""
    out = points[:, JOINT_MIRROR].copy()
    out[..., 0] *= -1
    return out


def body_box_diagonal(points: np.ndarray) -> np.ndarray:
    """(N, K, 2) -> (N,) diagonal (px) of the box around the first 24 (body) joints."""
    body = points[:, :BODY_JOINTS]
    return np.linalg.norm(body.max(1) - body.min(1), axis=-1)


def match_people(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """People of one image seen by two passes: (N, 71, 2) and (M, 71, 2) px -> (N,) error of each
    reference person to its match, the mean distance of the 24 body joints divided by the
    reference's body-box diagonal; inf where no person is matched (Hungarian assignment on that
    cost, so each person of ``other`` is used once)."""
    error = np.full(len(reference), np.inf)
    if len(reference) == 0 or len(other) == 0:
        return error
    diff = reference[:, None, :BODY_JOINTS] - other[None, :, :BODY_JOINTS]
    scale = np.maximum(body_box_diagonal(reference), 1e-6)[:, None]
    cost = np.linalg.norm(diff, axis=-1).mean(-1) / scale
    rows, cols = linear_sum_assignment(np.nan_to_num(cost, nan=1e9, posinf=1e9))
    error[rows] = cost[rows, cols]
    return error


def body_root(body_models: BodyModelSet, model: str, betas: np.ndarray, thetas: np.ndarray,
              chunk: int = 256) -> np.ndarray:
    """(N, 3) m: the root that ``core.body_models.root_align`` subtracts (midpoint of joints 45/46)
    of the body model ``model`` uses (ROMP: SMPL with 10 betas; BEV: SMPL-A / SMIL with 11),
    for (N, 10 | 11) betas and (N, 72) thetas. Results rows of root-aligned models store
    ``joints - root``; the training contract's ``cam_trans`` is added to the un-aligned output."""
    out = np.zeros((len(betas), 3), np.float32)
    forward = body_models.smpl_forward if model == "romp" else body_models.smpla_forward
    device = next(body_models.buffers(), torch.zeros(0)).device
    with torch.inference_mode():
        for start in range(0, len(betas), chunk):
            b = torch.tensor(np.array(betas[start:start + chunk], np.float32), device=device)
            t = torch.tensor(np.array(thetas[start:start + chunk], np.float32), device=device)
            joints = forward(b, t).joints
            out[start:start + chunk] = joints[:, list(ROOT_ALIGN_JOINTS)].mean(1).cpu().numpy()
    return out
