"""2D boxes from projected joints (for MOT export and tracking evaluation)."""

from __future__ import annotations

import numpy as np


def joint_boxes(pj2d: np.ndarray, image_hw: np.ndarray | None = None) -> np.ndarray:
    """(N, J, 2) pixel joints -> (N, 4) boxes (left, top, width, height), clipped to (h, w) if given."""
    if len(pj2d) == 0:
        return np.zeros((0, 4), np.float32)
    lo, hi = pj2d.min(axis=1), pj2d.max(axis=1)
    if image_hw is not None:
        limits = np.asarray(image_hw, dtype=np.float64).reshape(-1, 2)[:, ::-1]  # (w, h)
        lo, hi = np.clip(lo, 0, limits), np.clip(hi, 0, limits)
    return np.concatenate([lo, hi - lo], axis=1).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) boxes (left, top, width, height) -> (N, M) intersection over union."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a1, a2 = a[:, None, :2], a[:, None, :2] + a[:, None, 2:]
    b1, b2 = b[None, :, :2], b[None, :, :2] + b[None, :, 2:]
    inter = np.clip(np.minimum(a2, b2) - np.maximum(a1, b1), 0, None).prod(-1)
    union = a[:, None, 2:].prod(-1) + b[None, :, 2:].prod(-1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
