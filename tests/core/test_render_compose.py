"""Compositing and extra views for `meshfleet render`: overlays, palettes, joints, side / top views."""

import numpy as np
import pytest
import torch

from core.render import (
    SIDE,
    TOP,
    PeopleMeshes,
    draw_joints,
    fit_view,
    overlay,
    panel,
    render,
    to_uint8,
    track_palette,
)
from core.render.primitives import uv_sphere


def test_overlay_opaque_and_semi_transparent():
    image = np.full((4, 5, 3), 200, dtype=np.uint8)
    color = np.zeros((4, 5, 3), dtype=np.float32)
    color[..., 2] = 1.0
    mask = np.zeros((4, 5), dtype=np.int64)
    mask[1:3, 2:4] = 1
    opaque = overlay(image, color, mask)
    assert (opaque[mask > 0] == [0, 0, 255]).all() and (opaque[mask == 0] == 200).all()
    half = overlay(image, color, mask, alpha=0.5)
    assert (half[mask > 0] == [100, 100, 228]).all()  # 0.5 * 200 and 0.5 * (255 + 200), rounded
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, color, mask, alpha=1.5)


def test_track_palette_is_stable_distinct_and_grey_for_untracked():
    ids = np.arange(20)
    colors = track_palette(ids)
    assert colors.shape == (20, 3) and (colors >= 0).all() and (colors <= 1).all()
    assert np.array_equal(track_palette([7, 3]), colors[[7, 3]])
    gaps = np.linalg.norm(colors[:, None] - colors[None], axis=-1) + np.eye(20) * 9
    assert gaps.min() > 0.05  # no two of 20 tracks look alike
    assert np.allclose(track_palette([-1])[0], 0.6)


def test_draw_joints_uses_the_pixel_centre_convention_and_skips_hidden_joints():
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    joints = np.array([[[10.5, 20.5], [30.5, 20.5], [5.5, 5.5]]])
    visible = np.array([[True, True, False]])
    out = draw_joints(image, joints, np.array([[1.0, 0.0, 0.0]]), bones=[(0, 1), (1, 2)], visible=visible,
                      radius=2, thickness=1)
    assert tuple(out[20, 10]) == (255, 0, 0) and tuple(out[20, 30]) == (255, 0, 0)
    assert out[20, 20, 0] > 0  # the bone between the visible joints
    assert out[:12, :12].max() == 0  # the hidden joint and its bone are not drawn
    assert image.max() == 0  # input untouched


def test_fit_view_frames_everyone_and_orders_depth():
    verts, faces = uv_sphere(12, 24)
    near, far = verts * 0.3 + torch.tensor([0.5, 0.2, 3.0]), verts * 0.3 + torch.tensor([-0.5, 0.2, 6.0])
    people = torch.stack([near, far])
    # (row, col) axis compared: side view, the far sphere is to the right; top view, it is higher up
    for rotation, image_axis, sign in ((SIDE, 1, 1), (TOP, 0, -1)):
        view = fit_view(people, rotation, 60, 80, margin=1.2)
        moved = view.apply(people)
        uv = view.camera.project(moved)
        assert (uv[..., 0] > 0).all() and (uv[..., 0] < 80).all() and (uv[..., 1] > 0).all() and (uv[..., 1] < 60).all()
        span = torch.stack([(uv[..., 0] - 40).abs().max() / 40, (uv[..., 1] - 30).abs().max() / 30]).max()
        assert span > 0.8 / 1.2  # fitted tightly, not just far away
        out = render(PeopleMeshes.from_images([moved], faces), view.camera)
        centroid = [torch.nonzero(out.instance[0] == p + 1).float().mean(dim=0) for p in range(2)]
        assert sign * (centroid[1][image_axis] - centroid[0][image_axis]) > 5


def test_fit_view_of_nobody_and_panel():
    view = fit_view(torch.zeros(0, 10, 3), TOP, 30, 40)
    assert view.distance > 0
    joined = panel([np.zeros((20, 30, 3), np.uint8), np.full((40, 40, 3), 255, np.uint8)], height=20)
    assert joined.shape == (20, 50, 3) and joined[:, 30:].min() == 255
    assert to_uint8(np.array([0.0, 0.5, 1.2])).tolist() == [0, 128, 255]
