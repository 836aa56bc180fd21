import math

import numpy as np
import pytest
import torch

from core.cameras import (
    FOCAL_512,
    bev_cam_to_trans,
    perspective_project,
    pnp_translation,
    romp_cam_to_trans,
    weak_perspective_project,
)


def test_bev_depth_formula():
    s = torch.tensor([0.05, 0.5, 1.0, 3.0])
    cam = torch.stack([s, torch.tensor([0.1, -0.2, 0.0, 0.3]), torch.tensor([-0.5, 0.25, 0.0, 0.9])], 1)
    trans = bev_cam_to_trans(cam)
    depth = 1 / (s * math.tan(math.radians(30)) + 1e-3)
    torch.testing.assert_close(trans[:, 2], depth.float())
    torch.testing.assert_close(trans[:, 0], cam[:, 2] * depth * math.tan(math.radians(30)))
    torch.testing.assert_close(trans[:, 1], cam[:, 1] * depth * math.tan(math.radians(30)))


def test_bev_camera_puts_root_at_cam_xy():
    # a point at the root projects back to (x, y) of the camera (up to the 1e-3 depth epsilon)
    cam = torch.tensor([[0.4, -0.3, 0.6]])
    uv = perspective_project(torch.zeros(1, 1, 3), bev_cam_to_trans(cam))
    torch.testing.assert_close(uv[0, 0], torch.tensor([0.6, -0.3]) * FOCAL_512 / 256 * math.tan(math.radians(30)),
                               atol=2e-3, rtol=0)


def test_weak_perspective_and_closed_form_translation():
    points = torch.tensor([[[0.1, 0.2, 5.0], [-0.3, 0.0, 1.0]]])
    cam = torch.tensor([[2.0, 0.1, -0.2]])
    torch.testing.assert_close(weak_perspective_project(points, cam), torch.tensor([[[0.3, 0.2], [-0.5, -0.2]]]))
    torch.testing.assert_close(romp_cam_to_trans(cam), torch.tensor([[0.1, -0.2, 1.0]]))


def _project_px(j3d, trans):
    p = j3d + trans
    return p[:, :2] / p[:, 2:] * FOCAL_512 + 256


def test_pnp_recovers_exact_translation():
    rng = np.random.default_rng(0)
    j3d = rng.normal(0, 0.3, (3, 24, 3)).astype(np.float32)
    trans = np.array([[0.2, -0.1, 4.0], [-0.5, 0.3, 8.0], [0.0, 0.0, 2.5]])
    j2d = np.stack([_project_px(j3d[i], trans[i]) for i in range(3)]).astype(np.float32)
    out, official = pnp_translation(j3d, j2d)
    np.testing.assert_allclose(out, trans, atol=2e-3)
    assert official.all() and out.dtype == np.float32


def test_pnp_validity_mask_and_fallback():
    rng = np.random.default_rng(1)
    j3d = rng.normal(0, 0.3, (1, 24, 3)).astype(np.float32)
    trans = np.array([0.1, -3.0, 3.0])  # most joints far above the canvas (y < -2 px)
    j2d = _project_px(j3d[0], trans)[None].astype(np.float32)
    assert (j2d[0, :, 1] > -2).sum() < 4
    out, official = pnp_translation(j3d, j2d)
    assert not official[0]  # the official code returns [-1, -1, -1] here
    np.testing.assert_allclose(out[0], trans, atol=1e-3)  # meshfleet's least-squares fit


@pytest.mark.parametrize("n", [0, 1])
def test_pnp_small_batches(n):
    out, official = pnp_translation(np.zeros((n, 24, 3), np.float32), np.zeros((n, 24, 2), np.float32))
    assert out.shape == (n, 3) and official.shape == (n,)
