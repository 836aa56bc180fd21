"""Temporal smoothing of per-track SMPL parameters with One-Euro filters (Casiez et al.).

Parameters follow the official ``-t`` option: pose with ``min_cutoff = smooth_coeff`` (default 3;
smaller is smoother) and ``beta = 0.7``; camera ``(1.6, 0.7)``; shape ``(0.6, 0.7)``; derivative
cutoff 1 Hz. Two changes, both documented:

* the global rotation is filtered as a unit quaternion (kept in one hemisphere, renormalised),
  not as the official raw 3x3 matrix, so the result is always a rotation;
* the filter uses the real time step between a track's observations (frame gap / fps), so a
  track that reappears after a gap is not treated as a huge jump in one frame.

``cam_trans`` is recomputed from the smoothed camera for BEV (as the official code does); ROMP's
PnP translation is filtered directly, with the camera's parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from core.cameras import bev_cam_to_trans
from core.rotations import axis_angle_to_quaternion, quaternion_to_axis_angle


@dataclass(frozen=True)
class SmoothingConfig:
    smooth_coeff: float = 3.0
    beta: float = 0.7
    cam_min_cutoff: float = 1.6
    betas_min_cutoff: float = 0.6
    d_cutoff: float = 1.0


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuroFilter:
    """Element-wise One-Euro filter over arrays of one shape."""

    min_cutoff: float
    beta: float
    d_cutoff: float = 1.0
    x_prev: np.ndarray | None = None
    dx_prev: np.ndarray | None = None

    def __call__(self, x: np.ndarray, dt: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.x_prev is None:
            self.x_prev, self.dx_prev = x, np.zeros_like(x)
            return x
        assert self.dx_prev is not None
        dx = (x - self.x_prev) / dt
        a_d = _alpha(self.d_cutoff, dt)
        dx_hat = a_d * dx + (1 - a_d) * self.dx_prev
        a = _alpha(self.min_cutoff + self.beta * np.abs(dx_hat), dt)
        x_hat = a * x + (1 - a) * self.x_prev
        self.x_prev, self.dx_prev = x_hat, dx_hat
        return x_hat


@dataclass
class TrackSmoother:
    """Filters of one track."""

    config: SmoothingConfig
    last_frame: int | None = None
    filters: dict[str, OneEuroFilter] = field(default_factory=dict)
    last_quat: np.ndarray | None = None

    def _filter(self, name: str, min_cutoff: float, x: np.ndarray, dt: float) -> np.ndarray:
        if name not in self.filters:
            self.filters[name] = OneEuroFilter(min_cutoff, self.config.beta, self.config.d_cutoff)
        return self.filters[name](x, dt)

    def __call__(self, frame: int, fps: float, thetas: np.ndarray, betas: np.ndarray, cam: np.ndarray,
                 trans: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        gap = 1 if self.last_frame is None else max(1, frame - self.last_frame)
        self.last_frame = frame
        dt = gap / fps
        c = self.config
        quat = axis_angle_to_quaternion(torch.from_numpy(thetas[:3].astype(np.float64))).numpy()
        if self.last_quat is not None and float(quat @ self.last_quat) < 0:
            quat = -quat  # q and -q are the same rotation: stay in one hemisphere
        quat = self._filter("global_rot", c.smooth_coeff, quat, dt)
        quat = quat / np.linalg.norm(quat)
        self.last_quat = quat
        global_rot = quaternion_to_axis_angle(torch.from_numpy(quat)).numpy()
        body = self._filter("body_pose", c.smooth_coeff, thetas[3:], dt)
        return (np.concatenate([global_rot, body]).astype(np.float32),
                self._filter("betas", c.betas_min_cutoff, betas, dt).astype(np.float32),
                self._filter("cam", c.cam_min_cutoff, cam, dt).astype(np.float32),
                self._filter("trans", c.cam_min_cutoff, trans, dt).astype(np.float32))


@dataclass
class PoseSmoother:
    """One :class:`TrackSmoother` per track id; feed frames in order. ``model``: romp or bev."""

    model: str = "bev"
    config: SmoothingConfig = field(default_factory=SmoothingConfig)
    tracks: dict[int, TrackSmoother] = field(default_factory=dict)

    def update(self, frame: int, fps: float, track_ids: np.ndarray, thetas: np.ndarray, betas: np.ndarray,
               cam: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Smoothed copies of the per-person arrays of one frame; people without a track id are
        passed through unchanged."""
        out = [thetas.copy(), betas.copy(), cam.copy(), trans.copy()]
        for i, tid in enumerate(track_ids):
            if tid < 0:
                continue
            smoother = self.tracks.setdefault(int(tid), TrackSmoother(self.config))
            for column, value in zip(out, smoother(frame, fps, thetas[i], betas[i], cam[i], trans[i]), strict=True):
                column[i] = value
        if self.model == "bev" and len(cam):
            tracked = track_ids >= 0
            out[3][tracked] = bev_cam_to_trans(torch.from_numpy(out[2][tracked])).numpy()
        return out[0], out[1], out[2], out[3]
