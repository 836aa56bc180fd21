"""A track's SMPL parameters (camera frame, as stored in results) -> one motion in a Y-up metre world.

Camera frame of ROMP / BEV (OpenCV's): x right, y down, z forward, metres, the camera at the origin.
World frame of every export (glTF's convention; BVH and the npz use the same): right-handed, Y up,
metres, the camera at the origin looking down -Z, so ``world = CAMERA_TO_WORLD @ camera`` =
``(x, -y, -z)``: a 180-degree turn about x. A person standing upright in the image stands upright
(+Y) in the world, in front of the camera (negative z).

SMPL rotates the pelvis about its own rest position, so a body whose 24 joints are
``FK(thetas, betas) + t`` in the camera has in the world: pelvis rotation ``C R0``, pelvis position
``C (J0 + t)`` (J0: the rest pelvis joint), the other 23 local rotations unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from smplx.lbs import batch_rodrigues

from core.rotations import axis_angle_to_quaternion, quaternion_to_axis_angle, rotmat_to_axis_angle

CAMERA_TO_WORLD = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class WorldMotion:
    """T frames of one body in the world frame.

    poses (T, 3J) axis-angle radians: joint 0 the pelvis rotation in the world, the rest local to
    their parents as in SMPL; root_positions (T, 3) metres, the pelvis joint; frames (T,) video frame
    indices, consecutive; fps frames per second.
    """

    poses: np.ndarray
    root_positions: np.ndarray
    frames: np.ndarray
    fps: float

    @property
    def times(self) -> np.ndarray:
        """(T,) seconds from the first frame."""
        return (self.frames - self.frames[0]) / self.fps


def fill_gaps(frames: np.ndarray, thetas: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, ...]:
    """Observations at increasing ``frames`` (N,) -> every frame from the first to the last.

    thetas (N, 3J) axis-angle, trans (N, 3). Frames between two observations get each joint's
    rotation by spherical interpolation and the translation linearly. Returns (frames (T,),
    thetas (T, 3J), trans (T, 3), observed (T,) bool).
    """
    frames = np.asarray(frames, np.int64)
    full = np.arange(frames[0], frames[-1] + 1)
    observed = np.isin(full, frames)
    if observed.all():
        return full, np.asarray(thetas, np.float64), np.asarray(trans, np.float64), observed
    after = np.minimum(np.searchsorted(frames, full), len(frames) - 1)
    before = np.where(frames[after] == full, after, after - 1)
    span = np.maximum(frames[after] - frames[before], 1)
    alpha = ((full - frames[before]) / span)[:, None]
    quats = axis_angle_to_quaternion(torch.from_numpy(np.asarray(thetas, np.float64).reshape(len(frames), -1, 3)))
    q = _slerp(quats.numpy()[before], quats.numpy()[after], alpha[:, :, None])
    filled = quaternion_to_axis_angle(torch.from_numpy(q)).numpy().reshape(len(full), -1)
    moved = (1 - alpha) * trans[before] + alpha * trans[after]
    return full, filled, moved, observed


def _slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions (..., 4) by ``t`` (..., 1), the short way round."""
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    angle = np.arccos(np.clip(np.abs(dot), 0.0, 1.0))
    sin = np.sin(angle)
    near = sin < 1e-8  # (almost) the same rotation: linear is exact enough
    w0 = np.where(near, 1 - t, np.sin((1 - t) * angle) / np.where(near, 1.0, sin))
    w1 = np.where(near, t, np.sin(t * angle) / np.where(near, 1.0, sin))
    q = w0 * q0 + w1 * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def to_world(thetas: np.ndarray, body_trans: np.ndarray, rest_root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame SMPL parameters -> (world poses (T, 72), world pelvis positions (T, 3)).

    thetas (T, 72) axis-angle; body_trans (T, 3) metres, where the body frame sits in the camera
    (``cam_trans``, less the root-alignment offset when the results were root-aligned); rest_root (3,)
    the rest pelvis joint of the track's shape.
    """
    thetas = np.asarray(thetas, np.float64)
    orient = batch_rodrigues(torch.from_numpy(thetas[:, :3]))
    world_orient = torch.from_numpy(CAMERA_TO_WORLD) @ orient
    poses = thetas.copy()
    poses[:, :3] = rotmat_to_axis_angle(world_orient).numpy()
    root = (np.asarray(body_trans, np.float64) + rest_root) @ CAMERA_TO_WORLD.T
    return poses, root


def rotation_matrices(poses: np.ndarray) -> np.ndarray:
    """(T, 3J) axis-angle -> (T, J, 3, 3) rotation matrices (Rodrigues, as SMPL)."""
    t = poses.shape[0]
    return batch_rodrigues(torch.from_numpy(np.asarray(poses, np.float64).reshape(-1, 3))).numpy().reshape(t, -1, 3, 3)


def quaternions_xyzw(poses: np.ndarray) -> np.ndarray:
    """(T, 3J) axis-angle -> (T, J, 4) unit quaternions (x, y, z, w), glTF's order, each joint's
    kept in one hemisphere from frame to frame so that interpolation takes the short way."""
    t = poses.shape[0]
    wxyz = axis_angle_to_quaternion(torch.from_numpy(np.asarray(poses, np.float64).reshape(t, -1, 3))).numpy()
    q = np.concatenate([wxyz[..., 1:], wxyz[..., :1]], axis=-1)
    if t > 1:
        flips = np.sign(np.sum(q[1:] * q[:-1], axis=-1))
        signs = np.cumprod(np.concatenate([np.ones((1, q.shape[1])), np.where(flips == 0, 1.0, flips)]), axis=0)
        q = q * signs[..., None]
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def euler_zxy_degrees(rotmats: np.ndarray) -> np.ndarray:
    """(T, J, 3, 3) rotations -> (T, J, 3) angles (z, x, y) in degrees with R = Rz(z) Rx(x) Ry(y),
    the rotation that BVH channels ``Zrotation Xrotation Yrotation`` describe; each angle unwrapped
    over time (a whole turn added where that keeps curves continuous: the same rotation)."""
    r = np.asarray(rotmats, np.float64)
    cos_x = np.hypot(r[..., 0, 1], r[..., 1, 1])
    x = np.arctan2(r[..., 2, 1], cos_x)  # stable near +-90 deg, unlike arcsin
    z = np.arctan2(-r[..., 0, 1], r[..., 1, 1])
    y = np.arctan2(-r[..., 2, 0], r[..., 2, 2])
    locked = cos_x < 1e-9  # gimbal lock (x = +-90 deg): z and y turn about one axis; put it all in y
    z = np.where(locked, 0.0, z)
    y = np.where(locked, np.arctan2(r[..., 0, 2], r[..., 0, 0]), y)
    return np.unwrap(np.degrees(np.stack([z, x, y], axis=-1)), period=360.0, axis=0)
