"""A skeleton as the export formats describe one: names, parents and rest positions of J joints.

The SMPL names are those of the SMPL paper and ``smplx`` (``core.body_models.JOINT_NAMES[:24]`` are
ROMP's labels for the same joints); the end sites close the five leaf bones (BVH needs one per leaf)
at points of the 71-joint set: the big toes, the head top and the middle finger tips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SMPL_KINEMATIC_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand",
    "right_hand",
)
# leaf joint -> index in the 71-joint set of the point that ends its bone (see core.body_models.JOINT_NAMES)
SMPL_END_SITES = {10: 29, 11: 32, 15: 48, 22: 37, 23: 42}  # L_BigToe, R_BigToe, Head_top, L/R middle tips


@dataclass(frozen=True)
class Skeleton:
    """J joints in a tree: ``parents`` (J,) with -1 for the root, which comes first and precedes
    every child; ``rest_joints`` (J, 3) metres, the joint positions of the rest (bind) pose, whose
    joint frames are all aligned with the world axes (as SMPL's are); ``end_sites`` (J, 3) metres,
    rest positions of the points that end leaf bones (rows of non-leaves are ignored)."""

    names: tuple[str, ...]
    parents: np.ndarray
    rest_joints: np.ndarray
    end_sites: np.ndarray

    def __post_init__(self) -> None:
        j = len(self.names)
        if self.parents.shape != (j,) or self.rest_joints.shape != (j, 3) or self.end_sites.shape != (j, 3):
            raise ValueError(f"skeleton of {j} names has parents {self.parents.shape}, rest joints "
                             f"{self.rest_joints.shape}, end sites {self.end_sites.shape}")
        if self.parents[0] != -1 or any(not 0 <= p < i for i, p in enumerate(self.parents[1:], start=1)):
            raise ValueError("parents must list the root (-1) first and each parent before its children")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def offsets(self) -> np.ndarray:
        """(J, 3) rest offset of each joint from its parent; the root's is its rest position."""
        parent_pos = np.where((self.parents < 0)[:, None], 0.0, self.rest_joints[np.maximum(self.parents, 0)])
        return self.rest_joints - parent_pos

    def children(self, joint: int) -> list[int]:
        return [int(c) for c in np.flatnonzero(self.parents == joint)]


def smpl_skeleton(joints71: np.ndarray, parents: np.ndarray) -> Skeleton:
    """The SMPL skeleton of one rest shape: ``joints71`` (71, 3) the zero-pose 71-joint set of the body
    model (metres, body frame), ``parents`` (24,) its kinematic tree."""
    end_sites = np.zeros((24, 3))
    for leaf, point in SMPL_END_SITES.items():
        end_sites[leaf] = joints71[point]
    return Skeleton(SMPL_KINEMATIC_NAMES, np.asarray(parents, np.int64), np.asarray(joints71[:24], np.float64),
                    end_sites)
