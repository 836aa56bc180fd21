"""Greedy 2D matching of predicted to ground-truth people, shared by AGORA, Relative Human and CMU.

All three official evaluators use one function (``match_2d_greedy`` of the AGORA / ROMP evaluation
code): pairs ordered by a keypoint cost, accepted when both are free and the IoU of the boxes
around their keypoints passes a gate. As coded it has two quirks that change numbers, kept by
:func:`greedy_official` and corrected by :func:`greedy_fixed`:

* every visited pair whose IoU is below the gate increments a counter, even when its prediction
  or GT is already matched, and the loop stops once ``#matched + counter >= #predictions`` - so
  some valid pairs are never visited;
* a GT marked invalid (AGORA) is consumed inside the loop by its cheapest pair, leaving that
  pair's prediction free.

The official cost is ``np.linalg.norm(diff, 2)`` of the (K, 2) keypoint difference: the matrix
2-norm, i.e. the largest singular value, not the Frobenius norm (:func:`spectral_cost`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Greedy:
    """Outcome for one image: accepted (pred, gt) ``pairs`` in acceptance order, the GT indices
    consumed as ``invalid`` (official AGORA), and the number of IoU ``rejections`` counted."""

    pairs: list[tuple[int, int]] = field(default_factory=list)
    invalid: list[int] = field(default_factory=list)
    rejections: int = 0


def keypoint_box_iou(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """IoU of the axis-aligned boxes around two (N, >=2) px point sets, boxes counted inclusive of
    their last pixel (width = x_max - x_min + 1) as the official ``get_bbx_overlap``. Differences
    keep the points' dtypes, the +1 and the rest are float64 (as numpy 1.x evaluated the official
    code). Degenerate boxes are scored, where the official code asserts."""
    lo_a, hi_a = np.min(points_a[:, :2], axis=0), np.max(points_a[:, :2], axis=0)
    lo_b, hi_b = np.min(points_b[:, :2], axis=0), np.max(points_b[:, :2], axis=0)
    left, top = max(lo_a[0], lo_b[0]), max(lo_a[1], lo_b[1])
    right, bottom = min(hi_a[0], hi_b[0]), min(hi_a[1], hi_b[1])
    inter = max(0, float(right - left) + 1) * max(0, float(bottom - top) + 1)
    area_a = (float(hi_a[0] - lo_a[0]) + 1) * (float(hi_a[1] - lo_a[1]) + 1)
    area_b = (float(hi_b[0] - lo_b[0]) + 1) * (float(hi_b[1] - lo_b[1]) + 1)
    return inter / float(area_a + area_b - inter)


Points = np.ndarray | Sequence[np.ndarray]


def spectral_cost(pred: Points, gt: Points, valid: np.ndarray | None = None) -> np.ndarray:
    """(P, K, >=2) and (G, K, >=2) px keypoints (arrays or per-person sequences), optional (G, K)
    bool joints to use -> (P, G): the largest singular value of each (K', 2) difference
    (``np.linalg.norm(diff, 2)``), in the inputs' dtype up to the norm, as the official code."""
    cost = np.empty((len(pred), len(gt)))
    for g in range(len(gt)):
        use = slice(None) if valid is None else valid[g]
        for p in range(len(pred)):
            cost[p, g] = np.linalg.norm(pred[p][use, :2] - gt[g][use, :2], 2)
    return cost


def frobenius_cost(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """As :func:`spectral_cost` with the plain Euclidean (Frobenius) norm, in float64."""
    pred64, gt64 = np.asarray(pred, np.float64)[..., :2], np.asarray(gt, np.float64)[..., :2]
    diff = pred64[:, None] - gt64[None]  # (P, G, K, 2)
    if valid is not None:
        diff = diff * valid[None, :, :, None]
    return np.sqrt(np.square(diff).sum(axis=(2, 3)))


def greedy_official(cost: np.ndarray, iou: Callable[[int, int], float], gate: float,
                    valid: np.ndarray | None = None) -> Greedy:
    """``match_2d_greedy`` as coded. ``cost`` (P, G); ``iou(p, g)`` the pair's box IoU; ``valid``
    (G,) bool (None: all valid). Pairs are visited by ascending cost (ties and NaN as ``np.argmin``:
    first in pred-major order, NaN first); see the module docstring for the quirks."""
    n_pred, n_gt = cost.shape
    costs = np.array(cost, dtype=np.float64).reshape(-1)
    valid = np.ones(n_gt, bool) if valid is None else np.asarray(valid, bool)
    pred_used, gt_used = np.zeros(n_pred, bool), np.zeros(n_gt, bool)
    out = Greedy()
    while gt_used.sum() < n_gt and pred_used.sum() + out.rejections < n_pred:
        while True:  # ends on an acceptable pair or an IoU rejection
            if np.isinf(costs).all():  # cannot happen while the loop condition holds; never spin
                return out
            k = int(np.argmin(costs))
            p, g = divmod(k, n_gt)
            costs[k] = np.inf
            overlap = iou(p, g)
            if overlap < gate:
                out.rejections += 1
                break
            if not pred_used[p] and not gt_used[g]:
                break
        if not valid[g]:
            if not gt_used[g]:
                out.invalid.append(g)
            gt_used[g] = True
        elif overlap >= gate:
            out.pairs.append((p, g))
            pred_used[p] = gt_used[g] = True
    return out


def greedy_fixed(cost: np.ndarray, iou: Callable[[int, int], float], gate: float,
                 valid: np.ndarray | None = None) -> Greedy:
    """Greedy matching with the quirks corrected: invalid GT never take part; every pair is
    visited by ascending cost (stable); accepted when both are free and ``iou(p, g) >= gate``.
    ``rejections`` counts the free pairs refused by the gate."""
    n_pred, n_gt = cost.shape
    valid = np.ones(n_gt, bool) if valid is None else np.asarray(valid, bool)
    pred_used, gt_used = np.zeros(n_pred, bool), ~valid
    out = Greedy()
    for k in np.argsort(np.asarray(cost, np.float64).reshape(-1), kind="stable"):
        if pred_used.all() or gt_used.all():
            break
        p, g = divmod(int(k), n_gt)
        if pred_used[p] or gt_used[g]:
            continue
        if iou(p, g) >= gate:
            out.pairs.append((p, g))
            pred_used[p] = gt_used[g] = True
        else:
            out.rejections += 1
    return out
