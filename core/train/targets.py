"""Training targets from a batch's people: body centres, centre heatmaps (2D and BEV's 3D), and
the map cells whose parameters are supervised.

All functions are batched torch over (B images, P person rows) and follow the official training
code (reference 11; ``romp/lib/maps_utils/centermap.py``, ``dataset/image_base.py``):

* body centre: mean of the visible torso joints (Neck, Neck_LSP, R/L Shoulder, Pelvis, R/L Hip),
  else of all visible joints; people without 2D joints use their box (official ``parse_bboxes``).
* 2D heatmap: a Gaussian per person of radius ``r = uint8(|hw / 2| * M / 16 + M / 32)``
  (hw: the person's box height / width in normalised [-1, 1] units, M the map side; the
  official ``_calc_radius_``), diameter 2r + 1, sigma = diameter / 6, combined by max, the peak
  cell set to 1. (The official ROMP / BEV code does not use CornerNet's ``gaussian_radius``; this
  adaptive rule is what the released models were trained with.)
* collision-aware centres (ROMP's CAR): a person whose nearest neighbour is closer than 0.25
  (normalised; 2 * 64 / 512) is pushed apart from it when their Gaussians would overlap.
* 3D heatmap (BEV): per person a 3D Gaussian at (depth bin of its camera scale, y, x) with depth
  extent ``(4 + 4 z / D) // 2 * 2 + 1`` and image radius ``uint8((1 - z / D) / 2 * M / 16 + M / 32)``.
* supervision cells: the ground-truth centre cells (the map parameters there are supervised),
  or optionally the nearest predicted peak in the same image (``match_preds_to_gts_for_supervision``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.centers import CenterPeaks

# official torso joints of _calc_center_, in the 71-joint set: Neck, Neck_LSP, R/L Shoulder,
# Pelvis (SPIN extra), R/L Hip (LSP)
TORSO_JOINTS = (12, 47, 17, 16, 49, 45, 46)
OCCLUSION_DISTANCE = 2 * 64 / 512.0  # detect_occluded_person threshold, normalised units
COLLISION_FACTOR = 0.2  # --collision_factor
CENTER_LIMIT = 0.96  # centres pushed onto the border are put back to +-0.96


def body_centers(joints2d: torch.Tensor, joints2d_valid: torch.Tensor, bbox: torch.Tensor,
                 person_valid: torch.Tensor, has_joints2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P, 2) body centres (x, y) in normalised canvas units and (B, P) validity.

    joints2d (B, P, J, 2), joints2d_valid (B, P, J), bbox (B, P, 4) normalised, person_valid and
    has_joints2d (B, P). A person with 2D joints but none visible gets no centre (the official
    loader drops them); one without 2D joints uses its box: (x0 + x1) / 2, 0.6 y0 + 0.4 y1.
    """
    vis = joints2d_valid.to(joints2d.dtype)
    torso = vis[:, :, list(TORSO_JOINTS)]
    torso_sum = (joints2d[:, :, list(TORSO_JOINTS)] * torso.unsqueeze(-1)).sum(2)
    all_sum = (joints2d * vis.unsqueeze(-1)).sum(2)
    n_torso, n_all = torso.sum(2, keepdim=True), vis.sum(2, keepdim=True)
    from_joints = torch.where(n_torso > 0, torso_sum / n_torso.clamp_min(1), all_sum / n_all.clamp_min(1))
    from_box = torch.stack([(bbox[..., 0] + bbox[..., 2]) / 2, 0.6 * bbox[..., 1] + 0.4 * bbox[..., 3]], -1)
    box_ok = ((bbox[..., 2] > bbox[..., 0]) & (bbox[..., 3] > bbox[..., 1])
              & (from_box.abs() < 1).all(-1))
    centers = torch.where(has_joints2d.unsqueeze(-1), from_joints, from_box)
    valid = person_valid & torch.where(has_joints2d, n_all[..., 0] > 0, box_ok)
    return torch.where(valid.unsqueeze(-1), centers, torch.zeros_like(centers)), valid


def heatmap_radius(box_hw: torch.Tensor, map_size: int) -> torch.Tensor:
    """(...) int64 Gaussian radius on an M-map for boxes (..., 2) of (h, w) in normalised units."""
    scale = torch.linalg.vector_norm(box_hw / 2.0, dim=-1)
    return torch.floor(scale * (map_size / 16.0) + map_size / 32.0).clamp(0, 255).long()


def collision_aware_centers(centers: torch.Tensor, valid: torch.Tensor, radius: torch.Tensor, map_size: int,
                            factor: float = COLLISION_FACTOR) -> torch.Tensor:
    """ROMP's collision-aware representation: (B, P, 2) centres pushed apart, clipped to [-1, 1].

    Person i is 'occluded' by its nearest valid neighbour j when they are closer than 0.25 and j
    is not itself occluded (in row order); then, if closer than (r_i + r_j + 1) / M * 2, both move
    apart along their line by half of ``factor`` times the shortfall each (official order and
    ``+1e-4`` terms kept).
    """
    b, p = valid.shape
    out = centers.clone()
    if p < 2:
        return out
    dist = torch.cdist(centers, centers)
    pair_ok = valid.unsqueeze(1) & valid.unsqueeze(2) & ~torch.eye(p, dtype=torch.bool, device=valid.device)
    dist = torch.where(pair_ok & (dist > 0), dist, torch.full_like(dist, float("inf")))
    nearest = dist.argmin(dim=2)
    near_enough = dist.gather(2, nearest.unsqueeze(2)).squeeze(2) < OCCLUSION_DISTANCE
    occluder = torch.full((b, p), -1, dtype=torch.long, device=valid.device)
    rows = torch.arange(b, device=valid.device)
    for i in range(p):  # sequential, as the official loop: an occluder must not be occluded itself
        j = nearest[:, i]
        free = occluder[rows, j] < 0
        occluder[:, i] = torch.where(near_enough[:, i] & free, j, occluder[:, i])
    for i in range(p):
        j = occluder[:, i].clamp_min(0)
        active = occluder[:, i] >= 0
        ci, cj = out[rows, i], out[rows, j]
        gap = torch.linalg.vector_norm(cj - ci, dim=-1) + 1e-4
        least = (radius[rows, j] + radius[rows, i] + 1).to(out.dtype) / map_size * 2
        push = active & (gap < least)
        offset = ((least - gap) / gap).abs().unsqueeze(-1) * (cj - ci + 1e-4) * factor
        offset = torch.where(push.unsqueeze(-1), offset, torch.zeros_like(offset))
        out[rows, i] = ci - offset / 2
        out[rows, j] = out[rows, j] + offset / 2
    out = out.clamp(-1.0, 1.0)
    out = torch.where(out == -1.0, torch.full_like(out, -CENTER_LIMIT), out)
    return torch.where(out == 1.0, torch.full_like(out, CENTER_LIMIT), out)


def center_cells(centers: torch.Tensor, map_size: int, low: int = 0) -> torch.Tensor:
    """(..., 2) normalised (x, y) -> (..., 2) int64 cells (y, x): trunc((c + 1) / 2 * M), clamped
    to [low, M - 1] (the 2D parser clamps to 0, BEV's ``denormalize_center`` to 1)."""
    cells = torch.trunc((centers + 1) / 2 * map_size).long().clamp(low, map_size - 1)
    return cells.flip(-1)


def _paste_max(out: torch.Tensor, flat_index: torch.Tensor, values: torch.Tensor, keep: torch.Tensor) -> None:
    """out.view(-1)[flat_index] = max(out, values) where ``keep``."""
    out.view(-1).scatter_reduce_(0, flat_index[keep], values[keep], reduce="amax")


def render_heatmap_2d(centers: torch.Tensor, valid: torch.Tensor, radius: torch.Tensor, map_size: int) -> torch.Tensor:
    """(B, 1, M, M) official adaptive-scale heatmap (see module doc) of the valid people."""
    b = valid.shape[0]
    out = torch.zeros(b, 1, map_size, map_size, dtype=centers.dtype, device=centers.device)
    batch, person = torch.where(valid)
    if batch.numel() == 0:
        return out
    x = torch.trunc((centers[batch, person, 0] + 1) / 2 * map_size).long()
    y = torch.trunc((centers[batch, person, 1] + 1) / 2 * map_size).long()
    r = radius[batch, person]
    inside = (x >= 0) & (y >= 0) & (x < map_size) & (y < map_size)
    reach = int(r.max())
    offsets = torch.arange(-reach, reach + 1, device=centers.device)
    dy, dx = offsets.view(1, -1, 1), offsets.view(1, 1, -1)
    sigma = ((2 * r + 1).to(centers.dtype) / 6).view(-1, 1, 1)
    values = torch.exp(-(dx**2 + dy**2).to(centers.dtype) / (2 * sigma**2))
    xs, ys = x.view(-1, 1, 1) + dx, y.view(-1, 1, 1) + dy
    keep = ((dx.abs() <= r.view(-1, 1, 1)) & (dy.abs() <= r.view(-1, 1, 1)) & inside.view(-1, 1, 1)
            & (xs >= 0) & (ys >= 0) & (xs < map_size) & (ys < map_size))
    flat = batch.view(-1, 1, 1) * map_size * map_size + ys.clamp(0, map_size - 1) * map_size + xs.clamp(0, map_size - 1)
    _paste_max(out, flat, values.expand_as(flat), keep)
    peak = batch * map_size * map_size + y.clamp(0, map_size - 1) * map_size + x.clamp(0, map_size - 1)
    out.view(-1)[peak[inside]] = 1.0
    return out


def depth_bins(scales: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(...) camera scales s -> (...) int64 index of the nearest depth anchor (``convert_scale_to_depth_level``)."""
    return torch.argmin((scales.unsqueeze(-1) - anchors.to(scales)).abs(), dim=-1)


def render_heatmap_3d(zyx: torch.Tensor, valid: torch.Tensor, depth: int, map_size: int) -> torch.Tensor:
    """(B, D, M, M) BEV 3D centre heatmap of people at cells ``zyx`` (B, P, 3) int64 where ``valid``.

    Per person: depth extent d = (4 + 4 z / D) // 2 * 2 + 1 (5 or 7 bins), square width
    w = 2 uint8((1 - z / D) / 2 * M / 16 + M / 32) + 1, value exp(-|offset|^2 / s^2) with
    s = |(w / 2, w / 2, d / 2)| * 2 / 6 (official ``generate_centermap_3dheatmap_adaptive_scale``,
    computed in float64 rather than float16: identical for power-of-two D).
    """
    b = valid.shape[0]
    out = torch.zeros(b, depth, map_size, map_size, device=zyx.device)
    batch, person = torch.where(valid)
    if batch.numel() == 0:
        return out
    z, y, x = zyx[batch, person].unbind(-1)
    u = z.double() / depth
    d = (torch.floor(4 + u * 4).long() // 2) * 2 + 1
    w = torch.floor((1 - u) / 2 * (map_size / 16.0) + map_size / 32.0).long().clamp(0, 255) * 2 + 1
    s = torch.sqrt(2 * (w.double() / 2) ** 2 + (d.double() / 2) ** 2) * 2 / 6
    reach_d, reach_w = int(d.max()) // 2, int(w.max()) // 2
    od = torch.arange(-reach_d, reach_d + 1, device=zyx.device).view(1, -1, 1, 1)
    ow = torch.arange(-reach_w, reach_w + 1, device=zyx.device)
    oy, ox = ow.view(1, 1, -1, 1), ow.view(1, 1, 1, -1)
    values = torch.exp(-(od**2 + oy**2 + ox**2).double() / s.view(-1, 1, 1, 1) ** 2).float()
    zs, ys, xs = z.view(-1, 1, 1, 1) + od, y.view(-1, 1, 1, 1) + oy, x.view(-1, 1, 1, 1) + ox
    half_d, half_w = (d // 2).view(-1, 1, 1, 1), (w // 2).view(-1, 1, 1, 1)
    keep = ((od.abs() <= half_d) & (oy.abs() <= half_w) & (ox.abs() <= half_w)
            & (zs >= 0) & (zs < depth) & (ys >= 0) & (ys < map_size) & (xs >= 0) & (xs < map_size))
    flat = (((batch.view(-1, 1, 1, 1) * depth + zs.clamp(0, depth - 1)) * map_size + ys.clamp(0, map_size - 1))
            * map_size + xs.clamp(0, map_size - 1))
    _paste_max(out, flat, values.expand_as(flat), keep)
    return out


@dataclass
class CenterTargets:
    """Targets of one batch. centers (B, P, 2) normalised (after CAR); valid (B, P); radius (B, P);
    heatmap (B, 1, M, M); cells (B, P, 3) int64 (z, y, x) supervised map cells (z = 0 for ROMP);
    heatmap_3d (B, D, M, M) and heatmap_3d_valid (B,) for BEV, else None."""

    centers: torch.Tensor
    valid: torch.Tensor
    radius: torch.Tensor
    heatmap: torch.Tensor
    cells: torch.Tensor
    heatmap_3d: torch.Tensor | None = None
    heatmap_3d_valid: torch.Tensor | None = None


def center_targets(joints2d: torch.Tensor, joints2d_valid: torch.Tensor, bbox: torch.Tensor,
                   person_valid: torch.Tensor, has_joints2d: torch.Tensor, map_size: int,
                   collision_aware: bool = True, scales: torch.Tensor | None = None,
                   has_scale: torch.Tensor | None = None, anchors: torch.Tensor | None = None) -> CenterTargets:
    """Everything above for one batch. For BEV pass the people's camera scales (B, P), their
    validity and the depth anchors; the 3D map of an image is valid when every person has one."""
    centers, valid = body_centers(joints2d, joints2d_valid, bbox, person_valid, has_joints2d)
    radius = heatmap_radius(torch.stack([bbox[..., 3] - bbox[..., 1], bbox[..., 2] - bbox[..., 0]], -1), map_size)
    if collision_aware:
        centers = collision_aware_centers(centers, valid, radius, map_size)
    heatmap = render_heatmap_2d(centers, valid, radius, map_size)
    if scales is None or anchors is None:
        yx = center_cells(centers, map_size, low=0)
        cells = torch.cat([torch.zeros_like(yx[..., :1]), yx], -1)
        return CenterTargets(centers, valid, radius, heatmap, cells)
    has_scale = valid if has_scale is None else has_scale & valid
    cells = torch.cat([depth_bins(scales, anchors).unsqueeze(-1), center_cells(centers, map_size, low=1)], -1)
    heatmap_3d = render_heatmap_3d(cells, has_scale, anchors.numel(), map_size)
    complete = (has_scale == valid).all(dim=1) & valid.any(dim=1)
    return CenterTargets(centers, valid, radius, heatmap, cells, heatmap_3d, complete)


def match_to_peaks(gt_batch: torch.Tensor, gt_cells: torch.Tensor, peaks: CenterPeaks, map_size: int) -> torch.Tensor:
    """For each ground-truth person (N,) at cells (N, 3) the nearest predicted peak of the same
    image (official ``match_gt_pred``); people of images without peaks keep their own cell.

    peaks.index is (K, 1) flat y * M + x (ROMP) or (K, 3) z, y, x (BEV). Returns (N, 3) int64.
    """
    if peaks.index.shape[1] == 1:
        flat = peaks.index[:, 0]
        peak_cells = torch.stack([torch.zeros_like(flat), flat // map_size, flat % map_size], -1)
    else:
        peak_cells = peaks.index
    if peak_cells.shape[0] == 0 or gt_cells.shape[0] == 0:
        return gt_cells.clone()
    dist = torch.cdist(gt_cells.double(), peak_cells.double())
    same = gt_batch.unsqueeze(1) == peaks.batch_ids.unsqueeze(0)
    dist = torch.where(same, dist, torch.full_like(dist, float("inf")))
    best = dist.argmin(dim=1)
    found = same.any(dim=1)
    return torch.where(found.unsqueeze(-1), peak_cells[best].long(), gt_cells)
