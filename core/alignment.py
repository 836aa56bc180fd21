"""Rigid and similarity alignment of joint sets (batched torch, differentiable).

One implementation serves the training losses (PA-MPJPE on tensors, gradients through the SVD)
and the evaluators (``eval.metrics.procrustes_align`` calls it on float64 arrays).
"""

from __future__ import annotations

import torch


def procrustes_align(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Similarity-align every ``pred[i]`` (J, 3) to ``gt[i]``: scale, rotation (no reflection)
    and translation minimising the (masked) squared error (Umeyama).

    pred, gt: (N, J, 3); mask: (N, J) bool/float joint weights (None = all joints).
    Returns the aligned ``pred`` (N, J, 3), same dtype. Each person is one (J, 3) problem, never a
    transposed (3, J) one (the VIBE ``shape[0] in (2, 3)`` bug that made TRACE's PA-MPJPE wrong
    for frames of 2 or 3 people). Joints outside the mask are transformed but do not drive the fit.
    """
    if pred.shape != gt.shape or pred.dim() != 3 or pred.shape[-1] != 3:
        raise ValueError(f"expected matching (N, J, 3) tensors, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    w = torch.ones(pred.shape[:2], dtype=pred.dtype, device=pred.device) if mask is None else mask.to(pred.dtype)
    w = (w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)).unsqueeze(-1)  # (N, J, 1), sums to 1
    mu_p, mu_g = (pred * w).sum(dim=1, keepdim=True), (gt * w).sum(dim=1, keepdim=True)
    p, g = pred - mu_p, gt - mu_g
    var_p = (w * p**2).sum(dim=(1, 2))
    cov = torch.einsum("nji,njk->nik", w * g, p)  # (N, 3, 3) = sum_j w_j g_j p_j^T
    u, s, vt = torch.linalg.svd(cov)
    sign = torch.ones_like(s)
    sign[:, -1] = torch.sign(torch.linalg.det(u @ vt))  # reflection fix
    rot = u @ (sign.unsqueeze(-1) * vt)
    scale = (s * sign).sum(dim=1) / var_p.clamp_min(1e-12)
    return scale[:, None, None] * torch.einsum("nik,njk->nji", rot, p) + mu_g
