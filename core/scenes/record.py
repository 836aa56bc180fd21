"""The scene record: everything one synthetic image or video is made from, and nothing derived.

Every output of ``meshfleet synth`` (image, mask, labels, benchmark layouts, oracle) is computed from
one :class:`Scene`, so they cannot disagree. Shapes: P people, T frames (1 for an image), V vertices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Pinhole camera, square pixels, principal point at the image centre (pixel (row v, column u)
    covers [u, u+1) x [v, v+1)). Camera frame: x right, y down, z forward (metres). The ground plane is
    ``height_m`` below the camera along gravity ``(0, cos pitch, sin pitch)`` (pitch > 0 looks down)."""

    width: int
    height: int
    focal: float
    pitch: float
    height_m: float

    @property
    def principal_point(self) -> tuple[float, float]:
        return self.width / 2.0, self.height / 2.0

    @property
    def gravity(self) -> np.ndarray:
        """(3,) unit 'down' vector in the camera frame."""
        return np.array([0.0, np.cos(self.pitch), np.sin(self.pitch)])

    def level_from_camera(self) -> np.ndarray:
        """(3, 3) rotation taking camera coordinates to the level frame (y along gravity, z horizontal)."""
        c, s = np.cos(self.pitch), np.sin(self.pitch)
        return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points -> (..., 2) pixels (u, v); depth clamped at 1 mm."""
        cx, cy = self.principal_point
        z = np.maximum(points[..., 2], 1e-3)
        return np.stack([self.focal * points[..., 0] / z + cx, self.focal * points[..., 1] / z + cy], axis=-1)


@dataclass(frozen=True)
class Outfit:
    """One person's colours (RGB in [0, 1]): skin, hair, top, bottom, shoes, and the pattern of the top
    and bottom (``solid``, ``stripes``, ``checks``) with its second colour and period (metres)."""

    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    top: tuple[float, float, float]
    bottom: tuple[float, float, float]
    shoes: tuple[float, float, float]
    pattern_color: tuple[float, float, float]
    pattern: str = "solid"
    pattern_period: float = 0.1
    long_sleeves: bool = True
    long_legs: bool = True


@dataclass(frozen=True)
class Look:
    """Scene-wide appearance. light_dir: (3,) unit vector toward the light, camera frame; ambient and
    diffuse shading weights; tint: RGB multiplier of the light. background: ``gradient``, ``noise``,
    ``floor`` or ``folder``; colors (2, 3) RGB; scale: noise cell (fraction of the image) or floor tile (m);
    texture_seed: seed of the noise texture; folder_pick: index into the user's sorted background files,
    crop (fx, fy, size): a window of the image's aspect, ``size`` of the largest such window, placed at
    fractions (fx, fy) of the free room. Degradations: blur_sigma
    (px, 0 = none), noise_sigma (8-bit levels), jpeg_quality."""

    light_dir: tuple[float, float, float]
    ambient: float
    diffuse: float
    tint: tuple[float, float, float]
    background: str
    colors: tuple[tuple[float, float, float], tuple[float, float, float]]
    scale: float
    texture_seed: int = 0
    folder_pick: int = -1
    crop: tuple[float, float, float] = (0.0, 0.0, 1.0)
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    jpeg_quality: int = 90


@dataclass
class Scene:
    """One scene: ``index`` within the dataset, ``kind`` ``image`` or ``video`` (T frames at ``fps``).

    Per person (P): age_class (P,) int8, pose (P,) names, outfits; per frame (T, P, ...): betas (P, 11)
    constant over time; thetas (T, P, 72) axis-angle, global orient in the camera frame; trans (T, P, 3)
    metres added to the body model output (verts_cam = M(theta, beta) + trans); track_id (P,) int64
    (identity over the video; person index + 1).
    """

    index: int
    kind: str
    stem: str
    camera: Camera
    look: Look
    betas: np.ndarray
    thetas: np.ndarray
    trans: np.ndarray
    age_class: np.ndarray
    pose: tuple[str, ...]
    outfits: tuple[Outfit, ...]
    fps: float = 0.0
    notes: dict = field(default_factory=dict)

    @property
    def num_people(self) -> int:
        return int(self.betas.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.thetas.shape[0])

    @property
    def track_id(self) -> np.ndarray:
        return np.arange(1, self.num_people + 1, dtype=np.int64)

    def keep_people(self, keep: np.ndarray) -> Scene:
        """The same scene with only the people where ``keep`` (P,) is true (indices renumbered)."""
        idx = np.flatnonzero(keep)
        return Scene(self.index, self.kind, self.stem, self.camera, self.look, self.betas[idx],
                     self.thetas[:, idx], self.trans[:, idx], self.age_class[idx],
                     tuple(self.pose[i] for i in idx), tuple(self.outfits[i] for i in idx), self.fps,
                     {**self.notes, "removed": int(len(keep) - len(idx))})
