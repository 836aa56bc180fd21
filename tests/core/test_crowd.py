import numpy as np
import torch

from core import crowd


def test_official_crop_geometry_360x1080():
    plan = crowd.plan_crops(360, 1080, 0.8)
    assert plan.pad == 288
    assert plan.count == 20  # one more than (aspect - 1) / (1 - overlap) + 1 suggests
    assert plan.boxes[1, 0] == 71 and plan.boxes[2, 0] == 143  # truncated left edges
    assert plan.boxes[-2].tolist() == [1295, 1655, 0, 360]
    assert plan.boxes[-1].tolist() == [1296, 1655, 0, 360]  # reuses the previous right edge
    padded, pad = crowd.pad_sides(np.ones((360, 1080, 3), np.uint8), 0.8)
    assert padded.shape == (360, 1656, 3) and pad == 288
    assert plan.crop(padded, 19).shape == (360, 359, 3)


def test_long_image_trigger():
    assert crowd.is_long_image(100, 200) and not crowd.is_long_image(100, 199)


def test_boundary_trimming_rules():
    plan = crowd.plan_crops(100, 400, 0.5)
    x = torch.tensor([-0.99, 0.0, 0.99])
    r = plan.boundary_ratio(0)
    assert 0 < r < 1
    assert crowd.keep_inside_boundaries(x, plan, 0).tolist() == [True, True, False]
    assert crowd.keep_inside_boundaries(x, plan, 1).tolist() == [True, True, False]  # no left trim for crop 1
    assert crowd.keep_inside_boundaries(x, plan, 2).tolist() == [False, True, False]
    assert crowd.keep_inside_boundaries(x, plan, plan.count - 1).tolist() == [False, True, True]


def test_crop_camera_to_full_image():
    plan = crowd.plan_crops(100, 300, 0.5)
    k = 1
    left, right = int(plan.boxes[k, 0]) - plan.pad, int(plan.boxes[k, 1]) - plan.pad
    cam = torch.tensor([[1.0, 0.2, 0.0]])  # centred in the crop
    full = crowd.crop_cam_to_image(cam, plan, k, (100, 300))
    centre_px = (full[0, 2] + 1) * 300 / 2
    assert abs(centre_px.item() - (left + right) / 2) < 1e-4
    torch.testing.assert_close(full[0, :2], torch.tensor([100 / 300, 0.2 * 100 / 300]))
