"""Loss terms of ROMP / BEV training (reference 11; ``romp/lib/loss_funcs/*.py``), batched torch.

Person-level terms return one value per person (N,); :func:`weighted_mean` reduces them with the
per-person weights and validity masks. Units as the official code: metres for 3D errors,
normalised canvas units ([-1, 1]) for 2D errors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from smplx.lbs import batch_rodrigues

from core.alignment import procrustes_align
from core.body_models import ROOT_ALIGN_JOINTS
from core.params import AGE_CENTERS, AGE_EDGES

FOCAL_CLAMP = 1e-3  # official focal loss clamps predictions to [1e-3, 1 - 1e-3] inside the logs
SHAPE_COMPONENT_WEIGHTS = (1.0, 0.64, 0.32, 0.32, 0.16, 0.16, 0.16, 0.16, 0.16, 0.16)  # BEV shape_pca_weight
DEPTH_MARGIN = 0.3  # relative_depth_loss dist_thresh: metres of depth per layer of difference


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(w * v) / sum(w) over people (0 when no weight); ``weights`` already carry the masks."""
    weights = weights.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1e-8)


def focal_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """CornerNet focal loss (alpha 2, beta 4) per image: (B, C, H, W) raw maps and targets -> (B,).

    Positives are target cells equal to 1; negatives are weighted by (1 - gt)^4. An image with
    positives is normalised by their count (+1e-4), one without is its negative sum (official).
    """
    pos, neg = gt.eq(1).to(pred.dtype), gt.lt(1).to(pred.dtype)
    clamped = pred.clamp(FOCAL_CLAMP, 1 - FOCAL_CLAMP)
    pos_loss = (torch.log(clamped) * (1 - pred) ** 2 * pos).flatten(1).sum(1)
    neg_loss = (torch.log(1 - clamped) * pred**2 * (1 - gt) ** 4 * neg).flatten(1).sum(1)
    num_pos = pos.flatten(1).sum(1)
    return torch.where(num_pos > 0, -(pos_loss + neg_loss) / (num_pos + 1e-4), -neg_loss)


def focal_loss_3d(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """BEV's 3D variant: (B, D, H, W) -> (B,); sums over each depth slice are averaged over depth
    while the positives are counted over the whole volume (official ``focal_loss_3D``)."""
    pos, neg = gt.eq(1).to(pred.dtype), gt.lt(1).to(pred.dtype)
    clamped = pred.clamp(FOCAL_CLAMP, 1 - FOCAL_CLAMP)
    pos_loss = (torch.log(clamped) * (1 - pred) ** 2 * pos).sum((2, 3)).mean(1)
    neg_loss = (torch.log(1 - clamped) * pred**2 * (1 - gt) ** 4 * neg).sum((2, 3)).mean(1)
    num_pos = pos.sum((1, 2, 3))
    return torch.where(num_pos > 0, -(pos_loss + neg_loss) / (num_pos + 1e-4), -neg_loss)


def keypoint_2d_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(N, J, 2) projected vs ground-truth joints, (N, J) validity -> (N,) mean L2 over valid joints."""
    error = torch.linalg.vector_norm(pred - gt, dim=-1) * valid.to(pred.dtype)
    return error.sum(-1) / (valid.sum(-1).to(pred.dtype) + 1e-6)


def _masked_joint_error(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    error = torch.linalg.vector_norm(pred - gt, dim=-1) * valid.to(pred.dtype)
    return error.sum(-1) / valid.sum(-1).to(pred.dtype).clamp_min(1)


def mpjpe_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(N, J, 3) metres -> (N,) MPJPE after centring both on the hip midpoint (joints 45/46, LSP hips)."""
    hips = list(ROOT_ALIGN_JOINTS)
    pred = pred - pred[:, hips].mean(1, keepdim=True)
    gt = gt - gt[:, hips].mean(1, keepdim=True)
    return _masked_joint_error(pred, gt, valid)


def pa_mpjpe_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(N, J, 3) metres -> (N,) MPJPE after a per-person similarity (Procrustes) fit on the valid joints."""
    if pred.shape[0] == 0:
        return pred.new_zeros(0)
    return _masked_joint_error(procrustes_align(pred, gt, valid), gt, valid)


def pose_loss(pred_rotmats: torch.Tensor, gt_thetas: torch.Tensor) -> torch.Tensor:
    """(N, 22, 3, 3) predicted global orient + 21 body rotations vs (N, >= 66) axis-angle ground
    truth -> (N,): Frobenius distance of the global orientation plus the mean over the 21 body
    joints (official: the two ``batch_smpl_pose_l2_error`` terms, summed)."""
    gt = batch_rodrigues(gt_thetas[:, :66].reshape(-1, 3)).reshape(-1, 22, 3, 3)
    dist = torch.linalg.matrix_norm(pred_rotmats - gt)  # (N, 22)
    return dist[:, 0] + dist[:, 1:].mean(-1)


def shape_loss(pred_betas: torch.Tensor, gt_betas: torch.Tensor, labelled: torch.Tensor,
               component_weights: tuple[float, ...] = SHAPE_COMPONENT_WEIGHTS) -> torch.Tensor:
    """(N,) shape term on the first 10 betas: labelled people |w * (gt - pred)| / 20; others a
    pull towards the mean shape, mean(pred^2) / 20 (BEV v6)."""
    w = pred_betas.new_tensor(component_weights)
    diff = torch.linalg.vector_norm((gt_betas[:, :10] - pred_betas[:, :10]) * w, dim=-1) / 20.0
    prior = (pred_betas[:, :10] ** 2).mean(-1) / 20.0
    return torch.where(labelled, diff, prior)


def camera_loss(pred_cams: torch.Tensor, gt_cams: torch.Tensor) -> torch.Tensor:
    """(N, 3) -> (N,) L2 distance of camera parameters (official ``batch_l2_loss``)."""
    return torch.linalg.vector_norm(pred_cams - gt_cams, dim=-1)


def relative_depth_loss(depths: torch.Tensor, layers: torch.Tensor, valid: torch.Tensor,
                        weights: torch.Tensor, margin: float = DEPTH_MARGIN) -> torch.Tensor:
    """BEV's piecewise depth-ordering loss over the pairs of people of each image.

    depths (B, P) predicted metres, layers (B, P) ground-truth depth layers (0 nearest), valid
    (B, P), weights (B, P). For i < j with d = depth_j - depth_i and l = layer_j - layer_i:
    same layer d^2; j nearer (l < 0) log(1 + e^d) while d > 0.3 l; j farther (l > 0)
    log(1 + e^-d) while d < 0.3 l. Each image averages its active pairs (pair weight w_i w_j),
    images without any are left out, the batch averages the images (official).
    """
    p = depths.shape[1]
    d = depths.unsqueeze(1) - depths.unsqueeze(2)  # [b, i, j] = depth_j - depth_i
    lay = (layers.unsqueeze(1) - layers.unsqueeze(2)).to(depths.dtype)
    upper = torch.triu(torch.ones(p, p, dtype=torch.bool, device=depths.device), diagonal=1)
    pair = upper & valid.unsqueeze(1) & valid.unsqueeze(2)
    same, nearer, farther = lay == 0, (lay < 0) & (d - lay * margin > 0), (lay > 0) & (d - lay * margin < 0)
    loss = torch.where(same, d**2, torch.where(nearer, F.softplus(d), F.softplus(-d)))
    active = pair & (same | nearer | farther)
    pw = (weights.unsqueeze(1) * weights.unsqueeze(2)).to(depths.dtype) * active.to(depths.dtype)
    per_image = (loss * pw).sum((1, 2)) / pw.sum((1, 2)).clamp_min(1e-8)
    has = active.flatten(1).any(1)
    return (per_image * has).sum() / has.sum().clamp_min(1)


def age_class_loss(kid_offsets: torch.Tensor, age_class: torch.Tensor) -> torch.Tensor:
    """(N,) BEV relative-age loss on the kid offset betas[10]: adults k^2; teen / kid / baby
    (k - class centre)^2 when k is outside the class interval (lower, upper] (official
    ``relative_age_loss``); unknown (-1) classes 0."""
    centers = kid_offsets.new_tensor(AGE_CENTERS)
    lower, upper = kid_offsets.new_tensor(AGE_EDGES[:-1]), kid_offsets.new_tensor(AGE_EDGES[1:])
    cls = age_class.clamp(0, len(AGE_CENTERS) - 1)
    outside = (kid_offsets > upper[cls]) | (kid_offsets <= lower[cls]) | (cls == 0)
    loss = torch.where(outside, (kid_offsets - centers[cls]) ** 2, torch.zeros_like(kid_offsets))
    return torch.where(age_class >= 0, loss, torch.zeros_like(loss))


def kid_offset_loss(kid_offsets: torch.Tensor, gt_offsets: torch.Tensor) -> torch.Tensor:
    """(N,) squared error of the kid offset where it is known (official ``kid_offset_loss``)."""
    return (kid_offsets - gt_offsets) ** 2
