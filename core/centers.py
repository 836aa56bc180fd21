"""Body-center heatmap parsing (ROMP 2D, BEV 3D).

Peaks are local maxima of a 5-wide max-pool, then the top ``MAX_PERSONS`` per image, kept when
the raw map value is strictly above the threshold. No sigmoid: the maps are trained into [0, 1]
directly. The two-stage top-k of the official parsers is kept so that ties resolve identically.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MAX_PERSONS = 64


@dataclass
class CenterPeaks:
    """Detected centers of a batch, image-major, best first within an image.

    batch_ids: (N,) int64 image index; scores: (N,) map value at the peak;
    index: (N, D) int64 peak position -- (flat y*W+x,) for 2D maps, (z, y, x) for 3D maps.
    """

    batch_ids: torch.Tensor
    index: torch.Tensor
    scores: torch.Tensor


def keep_local_maxima(maps: torch.Tensor, pool: int = 5) -> torch.Tensor:
    """Zero every value that is not the maximum of its ``pool``-wide neighbourhood.

    maps: (B, 1, H, W) or (B, D, H, W) treated as a (D, H, W) volume per image.
    """
    if maps.shape[1] == 1:
        pooled = F.max_pool2d(maps, pool, 1, (pool - 1) // 2)
    else:
        pooled = F.max_pool3d(maps.unsqueeze(1), pool, 1, (pool - 1) // 2).squeeze(1)
    return maps * torch.eq(pooled, maps).to(maps.dtype)


def _topk_groups(maps: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> top-k over each channel, then top-k overall: scores, channel, flat index."""
    b, c, h, w = maps.shape
    scores, inds = torch.topk(maps.reshape(b, c, -1), k)
    best, order = torch.topk(scores.reshape(b, -1), k)
    flat = torch.gather(inds.reshape(b, -1), 1, order) % (h * w)
    return best, order // k, flat


def parse_center_map_2d(center_maps: torch.Tensor, threshold: float) -> CenterPeaks:
    """ROMP: (B, 1, 64, 64) -> peaks with ``index`` (N, 1) = flat y * 64 + x."""
    nms = keep_local_maxima(center_maps)
    scores, _, flat = _topk_groups(nms, MAX_PERSONS)
    mask = scores > threshold
    batch_ids = torch.where(mask)[0]
    return CenterPeaks(batch_ids=batch_ids, index=flat[mask].unsqueeze(1), scores=scores[mask])


def parse_center_map_3d(center_3d: torch.Tensor, threshold: float) -> CenterPeaks:
    """BEV: (B, 64, 128, 128) depth-height-width -> peaks with ``index`` (N, 3) = (z, y, x)."""
    nms = keep_local_maxima(center_3d)
    w = nms.shape[-1]
    scores, depth, flat = _topk_groups(nms, MAX_PERSONS)
    mask = scores > threshold
    batch_ids = torch.where(mask)[0]
    zyx = torch.stack([depth[mask], flat[mask] // w, flat[mask] % w], dim=1)
    return CenterPeaks(batch_ids=batch_ids, index=zyx, scores=scores[mask])
