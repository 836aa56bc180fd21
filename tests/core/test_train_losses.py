"""Every loss term against an independent computation (naive loops, SciPy, hand values)."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from core.train.labels import flip_thetas
from core.train.losses import (
    age_class_loss,
    camera_loss,
    focal_loss,
    focal_loss_3d,
    keypoint_2d_loss,
    kid_offset_loss,
    mpjpe_loss,
    pa_mpjpe_loss,
    pose_loss,
    relative_depth_loss,
    shape_loss,
    weighted_mean,
)
from core.train.prior import JOINT_LIMITS, euler_xyz, joint_limit_prior


def naive_focal(pred, gt):
    """CornerNet focal loss of one image, element by element (official formula)."""
    pos_sum = neg_sum = 0.0
    npos = 0
    for p, g in zip(pred.ravel(), gt.ravel(), strict=True):
        pc = min(max(p, 1e-3), 1 - 1e-3)
        if g == 1:
            npos += 1
            pos_sum += math.log(pc) * (1 - p) ** 2
        else:
            neg_sum += math.log(1 - pc) * p**2 * (1 - g) ** 4
    return -(pos_sum + neg_sum) / (npos + 1e-4) if npos else -neg_sum


def test_focal_loss_matches_loop():
    rng = np.random.default_rng(0)
    pred = rng.uniform(-0.2, 1.2, (3, 1, 8, 8))
    gt = rng.uniform(0, 0.9, (3, 1, 8, 8))
    gt[0, 0, 2, 3] = gt[0, 0, 5, 5] = 1.0
    gt[1, 0, 0, 0] = 1.0  # image 2 has no positive: negatives only
    out = focal_loss(torch.tensor(pred), torch.tensor(gt))
    np.testing.assert_allclose(out.numpy(), [naive_focal(pred[b], gt[b]) for b in range(3)], rtol=1e-10)


def test_focal_loss_3d_averages_depth_slices():
    rng = np.random.default_rng(1)
    pred = rng.uniform(0, 1, (2, 4, 6, 6))
    gt = rng.uniform(0, 0.9, (2, 4, 6, 6))
    gt[0, 1, 2, 2] = gt[0, 3, 4, 4] = 1.0
    out = focal_loss_3d(torch.tensor(pred), torch.tensor(gt))
    for b in range(2):
        npos = (gt[b] == 1).sum()
        pos = np.mean([sum(math.log(min(max(p, 1e-3), 1 - 1e-3)) * (1 - p) ** 2
                           for p, g in zip(pred[b, z].ravel(), gt[b, z].ravel(), strict=True) if g == 1)
                       for z in range(4)])
        neg = np.mean([sum(math.log(1 - min(max(p, 1e-3), 1 - 1e-3)) * p**2 * (1 - g) ** 4
                           for p, g in zip(pred[b, z].ravel(), gt[b, z].ravel(), strict=True) if g < 1)
                       for z in range(4)])
        expected = -(pos + neg) / (npos + 1e-4) if npos else -neg
        np.testing.assert_allclose(out[b].item(), expected, rtol=1e-10)


def test_keypoint_2d_loss_masked_mean():
    pred, gt = torch.zeros(2, 3, 2), torch.tensor([[[3.0, 4.0], [0.0, 1.0], [9.0, 9.0]]] * 2)
    valid = torch.tensor([[True, True, False], [False, False, False]])
    out = keypoint_2d_loss(pred, gt, valid)
    np.testing.assert_allclose(out.numpy(), [3.0, 0.0], atol=1e-5)  # (5 + 1) / 2; nothing valid -> 0


def random_joints(rng, n=3, j=71):
    return torch.tensor(rng.normal(0, 0.3, (n, j, 3)))


def test_mpjpe_is_hip_aligned():
    rng = np.random.default_rng(2)
    gt = random_joints(rng)
    shifted = gt + torch.tensor([1.0, -2.0, 5.0])
    valid = torch.ones(3, 71, dtype=torch.bool)
    assert mpjpe_loss(shifted, gt, valid).abs().max() < 1e-12
    pred = gt + torch.tensor(rng.normal(0, 0.05, gt.shape))
    hips = [45, 46]
    naive = [np.mean([np.linalg.norm((pred[i, k] - pred[i, hips].mean(0)) - (gt[i, k] - gt[i, hips].mean(0)))
                      for k in range(71)]) for i in range(3)]
    np.testing.assert_allclose(mpjpe_loss(pred, gt, valid).numpy(), naive, rtol=1e-10)


def test_pa_mpjpe_removes_similarity_and_respects_mask():
    rng = np.random.default_rng(3)
    gt = random_joints(rng, n=2, j=20)
    rot = torch.tensor(Rotation.random(2, random_state=4).as_matrix())
    pred = 1.7 * torch.einsum("nij,nkj->nki", rot, gt) + torch.tensor([0.3, -1.0, 2.0])
    valid = torch.ones(2, 20, dtype=torch.bool)
    assert pa_mpjpe_loss(pred, gt, valid).abs().max() < 1e-9
    # masked-out joints neither drive the fit nor count in the error
    noisy = pred.clone()
    noisy[:, :5] += 10.0
    valid[:, :5] = False
    assert pa_mpjpe_loss(noisy, gt, valid).abs().max() < 1e-9
    assert pa_mpjpe_loss(pred[:0], gt[:0], valid[:0]).numel() == 0


def test_pose_loss_against_scipy_rotations():
    rng = np.random.default_rng(5)
    gt = rng.normal(0, 0.5, (2, 72))
    pred_aa = gt[:, :66].reshape(2, 22, 3) + rng.normal(0, 0.2, (2, 22, 3))
    pred = torch.tensor(Rotation.from_rotvec(pred_aa.reshape(-1, 3)).as_matrix().reshape(2, 22, 3, 3))
    out = pose_loss(pred, torch.tensor(gt))
    gt_mats = Rotation.from_rotvec(gt[:, :66].reshape(-1, 3)).as_matrix().reshape(2, 22, 3, 3)
    frob = np.linalg.norm((pred.numpy() - gt_mats).reshape(2, 22, 9), axis=-1)
    np.testing.assert_allclose(out.numpy(), frob[:, 0] + frob[:, 1:].mean(1), rtol=1e-6)
    same = torch.tensor(Rotation.from_rotvec(gt[:, :66].reshape(-1, 3)).as_matrix().reshape(2, 22, 3, 3))
    assert pose_loss(same, torch.tensor(gt)).abs().max() < 1e-6


def test_shape_camera_age_and_offset_values():
    pred = torch.zeros(2, 11)
    gt = torch.zeros(2, 11)
    gt[0, 0], gt[0, 1] = 3.0, 4.0
    pred[1, :10] = 2.0
    out = shape_loss(pred, gt, torch.tensor([True, False]))
    np.testing.assert_allclose(out.numpy(), [math.hypot(3.0, 4.0 * 0.64) / 20, 4.0 / 20])
    np.testing.assert_allclose(camera_loss(torch.tensor([[1.0, 2.0, 2.0]]), torch.zeros(1, 3)).numpy(), [3.0])
    kid = torch.tensor([0.1, 0.3, 0.5, 0.8, 1.1, 0.1, 0.3])
    cls = torch.tensor([0, 1, 1, 3, 3, -1, 2])
    np.testing.assert_allclose(age_class_loss(kid, cls).numpy(),
                               [0.01, 0.0, 0.04, 0.0, 0.04, 0.0, 0.09], atol=1e-7)
    np.testing.assert_allclose(kid_offset_loss(kid[:2], torch.tensor([0.0, 0.5])).numpy(), [0.01, 0.04], atol=1e-7)


def naive_depth_loss(depths, layers, valid, weights, margin=0.3):
    """relative_depth_loss of the official code, one image at a time (with pair weights)."""
    per_image = []
    for d, lay, ok, w in zip(depths, layers, valid, weights, strict=True):
        idx = np.flatnonzero(ok)
        num = den = 0.0
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                i, j = idx[a], idx[b]
                dist, dl = d[j] - d[i], lay[j] - lay[i]
                if dl == 0:
                    loss = dist**2
                elif dl < 0 and dist - dl * margin > 0:
                    loss = math.log(1 + math.exp(dist))
                elif dl > 0 and dist - dl * margin < 0:
                    loss = math.log(1 + math.exp(-dist))
                else:
                    continue
                num += w[i] * w[j] * loss
                den += w[i] * w[j]
        if den:
            per_image.append(num / den)
    return np.mean(per_image) if per_image else 0.0


def test_relative_depth_loss_matches_pairwise_loop():
    rng = np.random.default_rng(6)
    depths = rng.uniform(2, 8, (3, 5))
    layers = rng.integers(0, 3, (3, 5))
    valid = rng.random((3, 5)) > 0.2
    valid[2] = [True, False, False, False, False]  # a single person: no pair
    weights = rng.uniform(0.5, 1.0, (3, 5))
    out = relative_depth_loss(torch.tensor(depths), torch.tensor(layers), torch.tensor(valid), torch.tensor(weights))
    np.testing.assert_allclose(out.item(), naive_depth_loss(depths, layers, valid, weights), rtol=1e-10)
    # correctly ordered people with enough separation cost nothing
    one = torch.ones(1, 2)
    ordered = relative_depth_loss(torch.tensor([[2.0, 4.0]]), torch.tensor([[0, 1]]), one.bool(), one)
    assert ordered.item() == 0.0


def test_weighted_mean_masks():
    values = torch.tensor([1.0, 100.0, 3.0])
    assert weighted_mean(values, torch.tensor([1.0, 0.0, 1.0])).item() == 2.0
    assert weighted_mean(values, torch.zeros(3)).item() == 0.0
    assert weighted_mean(values[:0], torch.zeros(0)).item() == 0.0


def rotmats_of(thetas):
    return torch.tensor(Rotation.from_rotvec(np.asarray(thetas).reshape(-1, 3)).as_matrix()).reshape(-1, 24, 3, 3)


def test_joint_limit_prior_zero_inside_positive_outside_and_mirror_symmetric():
    rest = rotmats_of(np.zeros(72))
    assert joint_limit_prior(rest[:, 1:22]).item() == 0.0
    bad = np.zeros(72)
    bad[4 * 3] = -0.5  # left knee bent forwards: 0.4 rad past its -0.1 limit
    np.testing.assert_allclose(joint_limit_prior(rotmats_of(bad)[:, 1:22]).item(), 0.4**2, rtol=1e-6)
    rng = np.random.default_rng(7)
    poses = rng.normal(0, 1.0, (6, 72))
    prior = joint_limit_prior(rotmats_of(poses)[:, 1:22])
    mirrored = joint_limit_prior(rotmats_of(flip_thetas(poses))[:, 1:22])
    np.testing.assert_allclose(prior.numpy(), mirrored.numpy(), rtol=1e-9)
    assert (prior > 0).all()
    # Euler decomposition round trip
    angles = torch.tensor(rng.uniform(-1.2, 1.2, (5, 3)))
    mats = torch.tensor(Rotation.from_euler("XYZ", angles.numpy()).as_matrix())
    np.testing.assert_allclose(euler_xyz(mats).numpy(), angles.numpy(), atol=1e-9)
    assert len(JOINT_LIMITS) == 21


def test_joint_limit_gradient_points_back_inside():
    aa = torch.zeros(1, 24, 3)
    aa[0, 4, 0] = -0.5
    aa.requires_grad_(True)
    from smplx.lbs import batch_rodrigues

    mats = batch_rodrigues(aa.reshape(-1, 3)).reshape(1, 24, 3, 3)
    joint_limit_prior(mats[:, 1:22]).sum().backward()
    assert aa.grad is not None and aa.grad[0, 4, 0] < 0  # descending increases the knee angle


@pytest.mark.parametrize("n", [1, 2, 3])
def test_pa_mpjpe_batch_sizes_2_and_3(n):
    """The VIBE transpose bug hit batches of exactly 2 or 3 people: values must not depend on N."""
    rng = np.random.default_rng(8)
    gt, pred = random_joints(rng, n, 14), random_joints(rng, n, 14)
    valid = torch.ones(n, 14, dtype=torch.bool)
    alone = torch.cat([pa_mpjpe_loss(pred[i:i + 1], gt[i:i + 1], valid[i:i + 1]) for i in range(n)])
    np.testing.assert_allclose(pa_mpjpe_loss(pred, gt, valid).numpy(), alone.numpy(), rtol=1e-10)
