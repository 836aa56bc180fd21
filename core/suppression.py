"""BEV's duplicate suppression by 2D projection, and removal of isolated far-away outliers.

Both return boolean keep-masks over the N people of one image (or one crop), in their order.
"""

from __future__ import annotations

import torch


def suppress_duplicates(
    pj2d: torch.Tensor,
    scales: torch.Tensor,
    confs: torch.Tensor,
    image_side: float,
    threshold: float,
    conf_based: bool = False,
) -> torch.Tensor:
    """Keep-mask (N,) after non-maximum suppression by projected-joint distance.

    pj2d: (N, 71, 2) pixels; scales: (N,) camera scale s; confs: (N,) center confidences.
    For i < j, D_ij = mean_k ||pj2d_i,k - pj2d_j,k|| / max(2 s_i, 2 s_j); a pair with
    D_ij < threshold * image_side / 640 is a duplicate and loses its smaller-scale member
    (farther away), or its lower-confidence member when ``conf_based`` (long-image path).
    """
    n = pj2d.shape[0]
    keep = torch.ones(n, dtype=torch.bool, device=pj2d.device)
    if n <= 1:
        return keep
    dist = torch.norm(pj2d.unsqueeze(1) - pj2d.unsqueeze(0), p=2, dim=-1).mean(-1)
    size = scales * 2
    size_i, size_j = size.unsqueeze(1).expand(n, n), size.unsqueeze(0).expand(n, n)
    normalised = dist / torch.where(size_i > size_j, size_i, size_j)
    upper = torch.triu(torch.ones_like(normalised), diagonal=1) >= 0.5
    normalised = torch.where(upper, normalised, torch.full_like(normalised, 10000.0))
    first, second = torch.where(normalised < threshold * image_side / 640)
    rank = confs if conf_based else size
    keep[torch.where(rank[first] < rank[second], first, second)] = False
    return keep


def remove_outliers(
    cam_trans: torch.Tensor, scales: torch.Tensor, relative_threshold: float, scale_threshold: float
) -> torch.Tensor:
    """Keep-mask (N,) dropping people far from everyone else *and* small (likely false positives).

    For N >= 3: m_i = mean distance from person i to the others after dropping the nearest
    (itself) and the farthest; person i is removed when m_i / mean_{j != i} m_j exceeds
    ``relative_threshold`` and its camera scale is below ``scale_threshold``.
    """
    n = cam_trans.shape[0]
    if n < 3:
        return torch.ones(n, dtype=torch.bool, device=cam_trans.device)
    dist = torch.norm(cam_trans.unsqueeze(1) - cam_trans.unsqueeze(0), p=2, dim=-1)
    mean_dist = torch.sort(dist).values[:, 1:-1].mean(1)
    relative = mean_dist / ((mean_dist.sum() - mean_dist) / (n - 1))
    return ~((relative > relative_threshold) & (scales < scale_threshold))
