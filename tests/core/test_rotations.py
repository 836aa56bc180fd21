import math

import pytest
import torch
from smplx.lbs import batch_rodrigues

from core.rotations import rot6d_to_axis_angle, rot6d_to_rotmat, rotmat_to_axis_angle


def test_rot6d_gives_orthonormal_right_handed_matrices():
    rot = rot6d_to_rotmat(torch.randn(500, 6))
    eye = torch.eye(3).expand(500, 3, 3)
    torch.testing.assert_close(rot.transpose(1, 2) @ rot, eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(500), atol=1e-5, rtol=0)


def test_rot6d_layout_is_interleaved():
    # elements (0, 2, 4) are the first column, (1, 3, 5) the second
    x = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    expected = torch.tensor([[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]])
    torch.testing.assert_close(rot6d_to_rotmat(x), expected)
    torch.testing.assert_close(rot6d_to_rotmat(torch.tensor([[1.0, 0, 0, 1, 0, 0]])), torch.eye(3)[None])


@pytest.mark.parametrize("max_angle", [1e-3, 1.0, 3.0])
def test_axis_angle_round_trip(max_angle):
    torch.manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(300, 3), dim=1)
    aa = axis * torch.rand(300, 1) * max_angle
    back = rotmat_to_axis_angle(batch_rodrigues(aa))
    torch.testing.assert_close(back, aa, atol=2e-4, rtol=0)


def test_near_pi_and_identity():
    aa = torch.tensor([[math.pi - 1e-4, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    back = rotmat_to_axis_angle(batch_rodrigues(aa))
    torch.testing.assert_close(batch_rodrigues(back), batch_rodrigues(aa), atol=1e-3, rtol=0)
    assert torch.isfinite(back).all()


def test_degenerate_6d_gives_zero_not_nan():
    out = rot6d_to_axis_angle(torch.zeros(2, 12))
    assert out.shape == (2, 6) and torch.isfinite(out).all()


def test_empty_batch():
    assert rot6d_to_axis_angle(torch.zeros(0, 126)).shape == (0, 63)
