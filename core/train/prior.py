"""An open pose prior: per-joint range-of-motion limits on Euler angles.

The official ROMP / BEV prior is SMPLify's 8-Gaussian mixture fitted to CMU mocap
(``gmm_08.pkl``), distributed under the SMPL-family licence; meshfleet does not ship or need it.
Instead each of the 21 body joints gets a box of allowed angles about its local x, y, z axes
(R = Rx(a) Ry(b) Rz(c)), and the prior is the squared distance of each angle to its interval
(zero inside). The limits are generous approximations of human range of motion in SMPL's joint
frames (x to the body's left, y up, z forward in the rest pose; e.g. knees flex about +x only,
the left elbow about -y, the right about +y, as SMPLify's angle prior assumes), chosen so that
the table is mirror-symmetric: a pose and its left/right mirror image have the same penalty.
"""

from __future__ import annotations

import torch

# (x_lo, x_hi, y_lo, y_hi, z_lo, z_hi) radians, SMPL body joints 1..21
JOINT_LIMITS = (
    (-2.4, 0.6, -0.8, 0.8, -0.5, 1.2),  # 1 L_Hip: flexion is -x, abduction +z
    (-2.4, 0.6, -0.8, 0.8, -1.2, 0.5),  # 2 R_Hip
    (-0.6, 1.0, -0.6, 0.6, -0.5, 0.5),  # 3 Spine
    (-0.1, 2.6, -0.4, 0.4, -0.2, 0.2),  # 4 L_Knee: flexion +x
    (-0.1, 2.6, -0.4, 0.4, -0.2, 0.2),  # 5 R_Knee
    (-0.6, 1.0, -0.6, 0.6, -0.5, 0.5),  # 6 Thorax
    (-0.8, 0.9, -0.5, 0.5, -0.5, 0.5),  # 7 L_Ankle
    (-0.8, 0.9, -0.5, 0.5, -0.5, 0.5),  # 8 R_Ankle
    (-0.6, 1.0, -0.6, 0.6, -0.5, 0.5),  # 9 Thorax_up
    (-0.8, 0.8, -0.3, 0.3, -0.3, 0.3),  # 10 L_Toe
    (-0.8, 0.8, -0.3, 0.3, -0.3, 0.3),  # 11 R_Toe
    (-0.7, 0.9, -1.2, 1.2, -0.6, 0.6),  # 12 Neck
    (-0.4, 0.4, -0.5, 0.5, -0.5, 0.5),  # 13 L_Collar
    (-0.4, 0.4, -0.5, 0.5, -0.5, 0.5),  # 14 R_Collar
    (-0.6, 0.8, -1.0, 1.0, -0.5, 0.5),  # 15 Head
    (-1.6, 1.6, -2.0, 1.6, -2.0, 1.6),  # 16 L_Shoulder
    (-1.6, 1.6, -1.6, 2.0, -1.6, 2.0),  # 17 R_Shoulder
    (-1.5, 1.5, -2.7, 0.1, -0.4, 0.4),  # 18 L_Elbow: flexion -y
    (-1.5, 1.5, -0.1, 2.7, -0.4, 0.4),  # 19 R_Elbow: flexion +y
    (-1.5, 1.5, -1.0, 1.0, -1.0, 1.0),  # 20 L_Wrist
    (-1.5, 1.5, -1.0, 1.0, -1.0, 1.0),  # 21 R_Wrist
)
ASIN_LIMIT = 1 - 1e-6  # keeps asin's gradient finite at gimbal lock


def euler_xyz(rotmats: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotations R = Rx(a) Ry(b) Rz(c) -> (..., 3) angles (a, b, c), b in [-pi/2, pi/2]."""
    b = torch.asin(rotmats[..., 0, 2].clamp(-ASIN_LIMIT, ASIN_LIMIT))
    a = torch.atan2(-rotmats[..., 1, 2], rotmats[..., 2, 2])
    c = torch.atan2(-rotmats[..., 0, 1], rotmats[..., 0, 0])
    return torch.stack([a, b, c], dim=-1)


def joint_limit_prior(body_rotmats: torch.Tensor) -> torch.Tensor:
    """(N, 21, 3, 3) body-joint rotations (SMPL joints 1..21) -> (N,) summed squared violations
    of :data:`JOINT_LIMITS` (radians^2). Not the licensed GMM prior (see module doc)."""
    limits = body_rotmats.new_tensor(JOINT_LIMITS).view(21, 3, 2)
    angles = euler_xyz(body_rotmats)
    below = torch.relu(limits[..., 0] - angles)
    above = torch.relu(angles - limits[..., 1])
    return (below**2 + above**2).sum((-1, -2))
