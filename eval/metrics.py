"""Pose-accuracy metrics as pure functions of arrays (metres in, millimetres out).

All functions take batches: ``pred`` and ``gt`` of shape (N, J, 3) in metres, and return (N,)
per-person errors in millimetres.
"""

from __future__ import annotations

import numpy as np
import torch

from core.alignment import procrustes_align as core_procrustes_align

MM = 1000.0


def _check(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"expected matching (N, J, 3) arrays, got {pred.shape} and {gt.shape}")
    return pred, gt


def align_root(joints: np.ndarray, root: int | list[int]) -> np.ndarray:
    """(N, J, 3) -> the same with the root joint (or the mean of several) at the origin."""
    index = [root] if isinstance(root, int) else list(root)
    return joints - joints[:, index].mean(axis=1, keepdims=True)


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean per-joint position error (no alignment): (N, J, 3) x 2 -> (N,) mm."""
    pred, gt = _check(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1) * MM


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity-align every ``pred[i]`` (J, 3) to ``gt[i]`` (scale, rotation without reflection,
    translation; Umeyama), in float64: :func:`core.alignment.procrustes_align` on arrays. Correct
    for any number of people (never the VIBE ``shape[0] in (2, 3)`` transpose bug)."""
    pred, gt = _check(pred, gt)
    return core_procrustes_align(torch.from_numpy(pred), torch.from_numpy(gt)).numpy()


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MPJPE after Procrustes (similarity) alignment of each person: (N,) mm."""
    return mpjpe(procrustes_align(pred, gt), gt)


def pve(pred_verts: np.ndarray, gt_verts: np.ndarray) -> np.ndarray:
    """Per-vertex error (mean over vertices, no alignment; align roots first if the protocol does)."""
    return mpjpe(pred_verts, gt_verts)


def precision_recall_f1(tp: float, fp: float, fn: float, decimals: int | None = None) -> tuple[float, float, float]:
    """Detection scores; F1 = TP / (TP + (FP + FN) / 2). Zero denominators give 0. With ``decimals``,
    each score is rounded by Python's ``round`` (half to even), as RH's and AGORA's compute_prf1 do."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = tp / (tp + 0.5 * (fp + fn)) if tp + fp + fn else 0.0
    if decimals is None:
        return precision, recall, f1
    return round(precision, decimals), round(recall, decimals), round(f1, decimals)
