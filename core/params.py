"""Unpacking of the regressed per-person parameter vectors of ROMP (145) and BEV (146)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.rotations import rot6d_to_axis_angle

NUM_BODY_JOINTS_REGRESSED = 21  # SMPL joints 1..21; the two hand joints are zero


@dataclass
class SMPLParams:
    """cam (N, 3); smpl_thetas (N, 72) axis-angle = global orient (3) + body pose (69, hands 0);
    smpl_betas (N, 10) for ROMP or (N, 11) for BEV (last = kid/age offset)."""

    cam: torch.Tensor
    smpl_thetas: torch.Tensor
    smpl_betas: torch.Tensor


def unpack_params(params: torch.Tensor, num_betas: int) -> SMPLParams:
    """(N, 3 + 6 + 126 + num_betas) -> :class:`SMPLParams` (6D -> axis-angle, hands padded)."""
    n = params.shape[0]
    pose_end = 3 + 6 + 6 * NUM_BODY_JOINTS_REGRESSED
    if params.shape[1] != pose_end + num_betas:
        raise ValueError(f"expected {pose_end + num_betas} parameters per person, got {params.shape[1]}")
    global_orient = rot6d_to_axis_angle(params[:, 3:9])
    body_pose = rot6d_to_axis_angle(params[:, 9:pose_end])
    hands = params.new_zeros(n, 6)
    thetas = torch.cat([global_orient, body_pose, hands], dim=1)
    return SMPLParams(
        cam=params[:, :3].clone(), smpl_thetas=thetas, smpl_betas=params[:, pose_end:].clone()
    )


# BEV relative-age classes from the kid offset betas[:, 10]: class i covers (edge i, edge i+1]
AGE_EDGES = (-0.05, 0.15, 0.45, 0.75, 1.0)
AGE_CLASS_NAMES = ("adult", "teen", "kid", "baby")  # ids 0..3; -1 = outside every bin
AGE_CENTERS = (0.0, 0.3, 0.6, 0.9)  # class centres (official constants.age_threshold, middle values)


def age_class(kid_offset: torch.Tensor) -> torch.Tensor:
    """(N,) kid offset -> (N,) int8 age class id (adult 0, teen 1, kid 2, baby 3, else -1)."""
    out = torch.full(kid_offset.shape, -1, dtype=torch.int8, device=kid_offset.device)
    for cls, (lower, upper) in enumerate(zip(AGE_EDGES[:-1], AGE_EDGES[1:], strict=True)):
        out[(kid_offset > lower) & (kid_offset <= upper)] = cls
    return out
