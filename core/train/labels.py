"""Ground-truth people of one training image, and the left/right tables flipping needs.

:class:`ImageLabels` holds the annotation dataset's per-person columns (docs: ANNOTATIONS, one
row per person) for one image, in its own pixels and camera. Augmentation
(:mod:`core.train.augment`) turns it into a :class:`~core.train.batch.TrainSample` on the
network's square canvas.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from core.body_models import JOINT_NAMES, NUM_JOINTS

NUM_THETAS = 72
NUM_BETAS = 11  # 10 shape coefficients + BEV's age (kid) offset
LABEL_FLAGS = ("has_joints2d", "has_joints3d", "has_smpl", "has_depth_layer", "has_age")
# The 17 H36M-regressor joints (54-70) are in the LSP order R/L ankle, knee, hip, L/R hip, knee,
# ankle (mirror pairs 0-5, 1-4, 2-3), R/L wrist, elbow, shoulder (6-11, 7-10, 8-9), then 5 central
# joints (reference 3.4).
H36M17_MIRROR = (5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16)
H36M17_FIRST = 54


def _mirror_name(name: str) -> str:
    for a, b in (("L_", "R_"), ("R_", "L_")):
        if name.startswith(a):
            return b + name[len(a):]
    return name


def joint_flip_permutation() -> np.ndarray:
    """(71,) index of every joint's mirror image (left <-> right), from the 71 joint names."""
    names = list(JOINT_NAMES[:H36M17_FIRST])
    perm = [names.index(_mirror_name(n)) for n in names]
    perm += [H36M17_FIRST + i for i in H36M17_MIRROR]
    return np.asarray(perm, dtype=np.int64)


JOINT_FLIP = joint_flip_permutation()
SMPL_FLIP = JOINT_FLIP[:24]  # the 24 SMPL kinematic joints come first and map among themselves


def flip_thetas(thetas: np.ndarray) -> np.ndarray:
    """Mirror SMPL axis-angle poses (..., 72) about the camera's x = 0 plane: swap left/right joints
    and negate the y and z axis-angle components (a rotation R becomes M R M, M = diag(-1, 1, 1))."""
    pose = np.asarray(thetas).reshape(*np.shape(thetas)[:-1], 24, 3)[..., SMPL_FLIP, :].copy()
    pose[..., 1:] *= -1
    return pose.reshape(np.shape(thetas))


@dataclass
class ImageLabels:
    """The people of one image (N of them), as annotated: pixels of the image and its camera.

    joints2d (N, 71, 2) px; joints2d_visible (N, 71) bool; joints3d (N, 71, 3) camera frame, m;
    smpl_thetas (N, 72) axis-angle (global orient in the camera frame); smpl_betas (N, 11);
    cam_trans (N, 3) m (verts = M(theta, beta) + cam_trans); bbox (N, 4) x0, y0, x1, y1 px of the
    visible instance; depth_layer, age_class (N,) int (-1 unknown); has_* (N,) bool validity per
    label type; weight (N,) per-person loss weight; focal_px and principal_point (2,) px: the camera.
    """

    joints2d: np.ndarray
    joints2d_visible: np.ndarray
    joints3d: np.ndarray
    smpl_thetas: np.ndarray
    smpl_betas: np.ndarray
    cam_trans: np.ndarray
    bbox: np.ndarray
    depth_layer: np.ndarray
    age_class: np.ndarray
    has_joints2d: np.ndarray
    has_joints3d: np.ndarray
    has_smpl: np.ndarray
    has_depth_layer: np.ndarray
    has_age: np.ndarray
    weight: np.ndarray
    focal_px: float
    principal_point: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.weight)
        expected = {"joints2d": (n, NUM_JOINTS, 2), "joints2d_visible": (n, NUM_JOINTS),
                    "joints3d": (n, NUM_JOINTS, 3), "smpl_thetas": (n, NUM_THETAS), "smpl_betas": (n, NUM_BETAS),
                    "cam_trans": (n, 3), "bbox": (n, 4), "principal_point": (2,)}
        for name in ("depth_layer", "age_class", *LABEL_FLAGS):
            expected[name] = (n,)
        for name, shape in expected.items():
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {np.shape(getattr(self, name))}")

    @property
    def count(self) -> int:
        return len(self.weight)

    def take(self, rows: np.ndarray) -> ImageLabels:
        """The people ``rows`` (indices or mask), same camera."""
        keep = {f.name: getattr(self, f.name)[rows] for f in fields(self)
                if f.name not in ("focal_px", "principal_point")}
        return ImageLabels(**keep, focal_px=self.focal_px, principal_point=self.principal_point)
