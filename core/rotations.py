"""Rotation representations used by ROMP / BEV.

The networks regress the 6D representation of Zhou et al. with the *interleaved* layout of the
official code: a 6-vector is read as a 3x2 matrix in row-major order, so its two columns (the
first two basis vectors) are elements (0, 2, 4) and (1, 3, 5).

Rotation matrix -> axis-angle goes through a quaternion with the branch structure of kornia's
(and the official code's) ``rotation_matrix_to_quaternion``, so that near-singular matrices
take the same branch as the official implementation; NaNs become 0 as there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rot6d_to_rotmat(rot6d: torch.Tensor) -> torch.Tensor:
    """(..., 6) interleaved 6D -> (..., 3, 3) rotation matrices with columns [b1, b2, b3]."""
    lead = rot6d.shape[:-1]
    pairs = rot6d.reshape(-1, 3, 2)
    a1, a2 = pairs[:, :, 0], pairs[:, :, 1]
    b1 = F.normalize(a1, dim=1, eps=1e-6)
    b2 = F.normalize(a2 - (b1 * a2).sum(dim=1, keepdim=True) * b1, dim=-1, eps=1e-6)
    b3 = torch.cross(b1, b2, dim=1)
    return torch.stack([b1, b2, b3], dim=-1).reshape(*lead, 3, 3)


def rotmat_to_quaternion(rotmat: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(N, 3, 3) rotation matrices -> (N, 4) quaternions (w, x, y, z).

    Chooses among the four classic formulas by the diagonal of R^T, exactly as kornia does,
    including its ``eps`` test on the last diagonal element.
    """
    m = rotmat.transpose(1, 2)
    m00, m01, m02 = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    m10, m11, m12 = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    m20, m21, m22 = m[:, 2, 0], m[:, 2, 1], m[:, 2, 2]

    t0 = 1 + m00 - m11 - m22
    t1 = 1 - m00 + m11 - m22
    t2 = 1 - m00 - m11 + m22
    t3 = 1 + m00 + m11 + m22
    q0 = torch.stack([m12 - m21, t0, m01 + m10, m20 + m02], -1)
    q1 = torch.stack([m20 - m02, m01 + m10, t1, m12 + m21], -1)
    q2 = torch.stack([m01 - m10, m20 + m02, m12 + m21, t2], -1)
    q3 = torch.stack([t3, m12 - m21, m20 - m02, m01 - m10], -1)

    small_z = m22 < eps
    x_over_y = m00 > m11
    x_below_minus_y = m00 < -m11
    c0 = (small_z & x_over_y).unsqueeze(1).to(q0.dtype)
    c1 = (small_z & ~x_over_y).unsqueeze(1).to(q0.dtype)
    c2 = (~small_z & x_below_minus_y).unsqueeze(1).to(q0.dtype)
    c3 = (~small_z & ~x_below_minus_y).unsqueeze(1).to(q0.dtype)

    q = q0 * c0 + q1 * c1 + q2 * c2 + q3 * c3
    t = t0.unsqueeze(1) * c0 + t1.unsqueeze(1) * c1 + t2.unsqueeze(1) * c2 + t3.unsqueeze(1) * c3
    return q / torch.sqrt(t) * 0.5


def quaternion_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions (w, x, y, z) -> (..., 3) axis-angle in radians (ceres algorithm)."""
    qx, qy, qz, qw = quat[..., 1], quat[..., 2], quat[..., 3], quat[..., 0]
    sin_sq = qx * qx + qy * qy + qz * qz
    sin_theta = torch.sqrt(sin_sq)
    two_theta = 2.0 * torch.where(
        qw < 0.0, torch.atan2(-sin_theta, -qw), torch.atan2(sin_theta, qw)
    )
    k = torch.where(sin_sq > 0.0, two_theta / sin_theta, torch.full_like(sin_theta, 2.0))
    return torch.stack([qx * k, qy * k, qz * k], dim=-1)


def rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle; NaNs (degenerate input) become 0."""
    lead = rotmat.shape[:-2]
    aa = quaternion_to_axis_angle(rotmat_to_quaternion(rotmat.reshape(-1, 3, 3)))
    aa = torch.where(torch.isnan(aa), torch.zeros_like(aa), aa)
    return aa.reshape(*lead, 3)


def rot6d_to_axis_angle(rot6d: torch.Tensor) -> torch.Tensor:
    """(N, 6K) interleaved 6D rotations -> (N, 3K) axis-angle, the official ``rot6D_to_angular``."""
    n, k = rot6d.shape[0], rot6d.shape[1] // 6
    return rotmat_to_axis_angle(rot6d_to_rotmat(rot6d.reshape(n, k, 6))).reshape(n, 3 * k)


def axis_angle_to_quaternion(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 4) unit quaternions (w, x, y, z)."""
    angle = torch.norm(axis_angle, dim=-1, keepdim=True)
    half = angle / 2
    scale = torch.where(angle > 1e-8, torch.sin(half) / angle.clamp_min(1e-8), 0.5 - angle**2 / 48)
    return torch.cat([torch.cos(half), axis_angle * scale], dim=-1)
