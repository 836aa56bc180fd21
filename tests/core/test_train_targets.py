"""Centre targets against hand-computed official values and naive per-person loops."""

import math

import numpy as np
import pytest
import torch

from core.centers import CenterPeaks
from core.nets.bev import cam3d_anchors
from core.train.targets import (
    TORSO_JOINTS,
    body_centers,
    center_cells,
    center_targets,
    collision_aware_centers,
    depth_bins,
    heatmap_radius,
    match_to_peaks,
    render_heatmap_2d,
    render_heatmap_3d,
)


@pytest.mark.parametrize(("hw", "size", "radius"), [
    # r = uint8(|hw / 2| * M / 16 + M / 32), computed by hand
    ((2.0, 2.0), 64, 7),    # sqrt(2) * 4 + 2 = 7.66
    ((1.0, 0.5), 64, 4),    # 0.559 * 4 + 2 = 4.24
    ((0.2, 0.3), 64, 2),    # 0.180 * 4 + 2 = 2.72
    ((2.0, 2.0), 128, 15),  # sqrt(2) * 8 + 4 = 15.31
    ((0.5, 0.4), 16, 0),    # the official test_centermaps size: 0.320 * 1 + 0.5 = 0.82
    ((0.0, 0.0), 32, 1),    # the minimum radius M / 32
])
def test_official_radius_values(hw, size, radius):
    assert int(heatmap_radius(torch.tensor([hw]), size)[0]) == radius


def naive_heatmap_2d(centers, radii, size):
    """The official generate_heatmap_adaptive_scale, transcribed as a loop over people."""
    heatmap = np.zeros((size, size))
    for (cx, cy), r in zip(centers, radii, strict=True):
        d = 2 * r + 1
        sigma = d / 6
        yy, xx = np.ogrid[-r:r + 1, -r:r + 1]
        g = np.exp(-(xx * xx + yy * yy) / (2 * sigma * sigma))
        x, y = int((cx + 1) / 2 * size), int((cy + 1) / 2 * size)
        if x < 0 or y < 0 or x >= size or y >= size:
            continue
        left, right = min(x, r), min(size - x, r + 1)
        top, bottom = min(y, r), min(size - y, r + 1)
        patch = heatmap[y - top:y + bottom, x - left:x + right]
        np.maximum(patch, g[r - top:r + bottom, r - left:r + right], out=patch)
        heatmap[y, x] = 1
    return heatmap


def test_heatmap_2d_matches_official_loop():
    rng = np.random.default_rng(0)
    size = 32
    centers = rng.uniform(-1, 0.99, (2, 5, 2))
    centers[0, 0] = (-0.999, 0.999)  # at the border: truncated Gaussian
    radii = rng.integers(0, 5, (2, 5))
    valid = np.array([[True, True, True, False, True], [True, False, False, False, False]])
    out = render_heatmap_2d(torch.tensor(centers), torch.tensor(valid), torch.tensor(radii), size)
    assert out.shape == (2, 1, size, size)
    for b in range(2):
        expected = naive_heatmap_2d(centers[b][valid[b]], radii[b][valid[b]], size)
        np.testing.assert_allclose(out[b, 0].numpy(), expected, atol=1e-12)


def naive_heatmap_3d(zyx, depth, size):
    """The official generate_centermap_3dheatmap_adaptive_scale as a loop (float64)."""
    heatmap = np.zeros((depth, size, size))
    for z, y, x in zyx:
        u = z / depth
        d = (int(4 + u * 4) // 2) * 2 + 1
        w = int((1 - u) / 2 * size / 16 + size / 32) * 2 + 1
        s = np.linalg.norm([w / 2, w / 2, d / 2]) * 2 / 6
        for k in range(depth):
            for i in range(size):
                for j in range(size):
                    if abs(k - z) <= d // 2 and abs(i - y) <= w // 2 and abs(j - x) <= w // 2:
                        v = math.exp(-((k - z) ** 2 + (i - y) ** 2 + (j - x) ** 2) / s**2)
                        heatmap[k, i, j] = max(heatmap[k, i, j], v)
    return heatmap


def test_heatmap_3d_matches_official_loop():
    depth, size = 16, 32
    zyx = np.array([[[0, 5, 6], [9, 31, 0], [15, 16, 16]]])
    out = render_heatmap_3d(torch.tensor(zyx), torch.ones(1, 3, dtype=torch.bool), depth, size)
    np.testing.assert_allclose(out[0].numpy(), naive_heatmap_3d(zyx[0], depth, size), atol=1e-6)
    # hand values at M = 128, D = 64: z = 0 -> depth extent 5, width 2 * 8 + 1 = 17;
    # z = 40 -> (4 + 2.5) // 2 * 2 + 1 = 7 bins, 2 * uint8(0.1875 * 8 + 4) + 1 = 11 cells
    one = render_heatmap_3d(torch.tensor([[[0, 60, 60], [40, 20, 20]]]), torch.ones(1, 2, dtype=torch.bool), 64, 128)[0]
    near, far = one[:, 40:80, 40:80] > 0, one[:, :40, :40] > 0
    assert near.any(dim=(1, 2)).sum() == 3 and near.any(dim=(0, 1)).sum() == 17  # 5 bins, clipped at z = 0
    assert far.any(dim=(1, 2)).sum() == 7 and far.any(dim=(0, 1)).sum() == 11
    assert one[0, 60, 60] == 1 and one[40, 20, 20] == 1


def test_body_centres_rules():
    joints = torch.zeros(1, 4, 71, 2)
    valid = torch.zeros(1, 4, 71, dtype=torch.bool)
    # person 0: torso joints visible at +-0.2 around (0.1, 0.3), a far hand ignored
    for k, j in enumerate(TORSO_JOINTS):
        joints[0, 0, j] = torch.tensor([0.1 + 0.2 * (-1) ** k, 0.3])
        valid[0, 0, j] = True
    joints[0, 0, 20] = torch.tensor([0.9, 0.9])
    valid[0, 0, 20] = True
    # person 1: only limbs visible -> their mean
    joints[0, 1, [4, 7]] = torch.tensor([[0.5, 0.5], [0.7, 0.1]])
    valid[0, 1, [4, 7]] = True
    # person 2: has 2D joints but none visible -> no centre; person 3: no 2D joints -> its box
    bbox = torch.tensor([[[0, 0, 0, 0], [0, 0, 0, 0], [-0.5, -0.5, 0.5, 0.5], [-0.4, -0.2, 0.0, 0.8]]])
    has2d = torch.tensor([[True, True, True, False]])
    centers, ok = body_centers(joints, valid, bbox, torch.ones(1, 4, dtype=torch.bool), has2d)
    assert ok.tolist() == [[True, True, False, True]]
    torso = joints[0, 0, list(TORSO_JOINTS)].mean(0)
    np.testing.assert_allclose(centers[0, 0], torso)
    np.testing.assert_allclose(centers[0, 1], [0.6, 0.3])
    np.testing.assert_allclose(centers[0, 3], [-0.2, 0.6 * -0.2 + 0.4 * 0.8])


def naive_collision(centers, radii, size, factor=0.2):
    """detect_occluded_person + the CAR push of the official loader, per image."""
    c = centers.copy()
    n = len(c)
    occluder = -np.ones(n, int)
    for i in range(n):
        dist = np.sqrt(((centers - centers[i]) ** 2).sum(-1))
        if (dist > 0).sum() > 0 and (dist[dist > 0] < 2 * 64 / 512).sum() > 0:
            j = np.where(dist == np.min(dist[dist > 0]))[0][0]
            if occluder[j] < 0:
                occluder[i] = j
    for i, j in enumerate(occluder):
        if j > -1:
            gap = np.sqrt(((c[j] - c[i]) ** 2).sum()) + 1e-4
            least = (radii[j] + radii[i] + 1) / size * 2
            if gap < least:
                offset = abs((least - gap) / gap) * (c[j] - c[i] + 1e-4) * factor
                c[i] -= offset / 2
                c[j] += offset / 2
    c = np.clip(c, -1, 1)
    c[c == -1] = -0.96
    c[c == 1] = 0.96
    return c


def test_collision_aware_centres_match_official_loop():
    rng = np.random.default_rng(3)
    size = 64
    centers = np.concatenate([rng.uniform(-0.2, 0.2, (4, 2)), [[0.9, -0.9], [0.999, 0.999]]])
    radii = rng.integers(2, 8, 6)
    out = collision_aware_centers(torch.tensor(centers[None]), torch.ones(1, 6, dtype=torch.bool),
                                  torch.tensor(radii[None]), size)
    np.testing.assert_allclose(out[0].numpy(), naive_collision(centers, radii, size), atol=1e-12)
    assert not np.allclose(out[0, :4].numpy(), centers[:4])  # the crowded ones moved apart


def test_cells_depth_bins_and_3d_targets():
    anchors = torch.from_numpy(cam3d_anchors(map_size=64)).float()
    assert anchors.numel() == 32
    s = anchors[[0, 10, 31]] + 1e-4
    assert depth_bins(s, anchors).tolist() == [0, 10, 31]
    assert center_cells(torch.tensor([[-1.0, 0.999], [0.0, 0.5]]), 64, low=1).tolist() == [[63, 1], [48, 32]]
    joints = torch.zeros(1, 2, 71, 2)
    joints[0, 0, :, 0], joints[0, 1, :, 0] = -0.5, 0.5
    valid = torch.ones(1, 2, 71, dtype=torch.bool)
    box = torch.tensor([[[-0.6, -0.3, -0.4, 0.3], [0.4, -0.3, 0.6, 0.3]]])
    t = center_targets(joints, valid, box, torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 2, dtype=torch.bool), 64,
                       scales=anchors[[3, 20]].view(1, 2), has_scale=torch.tensor([[True, True]]), anchors=anchors)
    assert t.cells[0].tolist() == [[3, 32, 16], [20, 32, 48]]
    assert t.heatmap[0, 0, 32, 16] == 1 and t.heatmap[0, 0, 32, 48] == 1
    assert t.heatmap_3d is not None and t.heatmap_3d[0, 3, 32, 16] == 1 and t.heatmap_3d[0, 20, 32, 48] == 1
    assert t.heatmap_3d_valid is not None and bool(t.heatmap_3d_valid[0])
    partial = center_targets(joints, valid, box, torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 2, dtype=torch.bool),
                             64, scales=anchors[[3, 20]].view(1, 2), has_scale=torch.tensor([[True, False]]),
                             anchors=anchors)
    assert partial.heatmap_3d_valid is not None and not bool(partial.heatmap_3d_valid[0])  # a person without depth


def test_match_to_peaks_nearest_in_same_image():
    peaks = CenterPeaks(batch_ids=torch.tensor([0, 0, 1]), index=torch.tensor([[5 * 16 + 5], [10 * 16 + 12], [3]]),
                        scores=torch.ones(3))
    gt_batch = torch.tensor([0, 0, 1, 2])
    gt = torch.tensor([[0, 9, 11], [0, 4, 4], [0, 15, 15], [0, 7, 7]])
    out = match_to_peaks(gt_batch, gt, peaks, 16)
    assert out.tolist() == [[0, 10, 12], [0, 5, 5], [0, 0, 3], [0, 7, 7]]  # image 2 has no peak: own cell
