"""The training batch contract: what the data loader yields and the training step consumes.

A loader turns each annotated image into a :class:`TrainSample` (:func:`core.train.augment.augment`),
then :func:`sample_arrays` pads it to ``max_people`` rows -- a dict of fixed-shape numpy arrays,
which Ray Data's ``iter_torch_batches`` (or :func:`collate`) stacks into the dict that
:meth:`TrainBatch.from_arrays` reads. B images, P = max_people, J = 71 joints, S = input size:

=================  ================  =======  ===============================================
key                shape             dtype    meaning
=================  ================  =======  ===============================================
image              (B, S, S, 3)      uint8    RGB network input (pad-to-square + resize done)
person_valid       (B, P)            bool     row holds a person (False = padding)
weight             (B, P)            float32  per-person loss weight
joints2d           (B, P, J, 2)      float32  normalised canvas coords, [-1, 1] = input square
joints2d_valid     (B, P, J)         bool     visible, inside the input, has_joints2d
joints3d           (B, P, J, 3)      float32  metres, relative to the hip midpoint (45/46)
cam_trans          (B, P, 3)         float32  hip-midpoint translation, canonical FOV-60 camera
has_cam            (B, P)            bool     cam_trans is valid
smpl_thetas        (B, P, 72)        float32  axis-angle, global orient in the camera frame
smpl_betas         (B, P, 11)        float32  10 shape + age (kid) offset
bbox               (B, P, 4)         float32  visible box x0, y0, x1, y1, normalised canvas
depth_layer        (B, P)            int64    depth layer rank (0 nearest), -1 unknown
age_class          (B, P)            int64    0 adult, 1 teen, 2 kid, 3 baby, -1 unknown
has_joints2d ...   (B, P)            bool     has_joints2d/3d, has_smpl, has_depth_layer, has_age
all_labelled       (B,)              bool     every person in the image is annotated (centre
                                              maps may treat the rest of the image as background)
=================  ================  =======  ===============================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from core.body_models import NUM_JOINTS
from core.train.labels import LABEL_FLAGS, NUM_BETAS, NUM_THETAS


@dataclass
class TrainSample:
    """One augmented image and its N people (unpadded numpy; shapes as the batch table, no B/P)."""

    image: np.ndarray
    joints2d: np.ndarray
    joints2d_valid: np.ndarray
    joints3d: np.ndarray
    cam_trans: np.ndarray
    has_cam: np.ndarray
    smpl_thetas: np.ndarray
    smpl_betas: np.ndarray
    bbox: np.ndarray
    depth_layer: np.ndarray
    age_class: np.ndarray
    has_joints2d: np.ndarray
    has_joints3d: np.ndarray
    has_smpl: np.ndarray
    has_depth_layer: np.ndarray
    has_age: np.ndarray
    weight: np.ndarray

    @property
    def count(self) -> int:
        return len(self.weight)


# per-person fields: (trailing shape, dtype)
PERSON_FIELDS: dict[str, tuple[tuple[int, ...], type]] = {
    "weight": ((), np.float32),
    "joints2d": ((NUM_JOINTS, 2), np.float32),
    "joints2d_valid": ((NUM_JOINTS,), np.bool_),
    "joints3d": ((NUM_JOINTS, 3), np.float32),
    "cam_trans": ((3,), np.float32),
    "has_cam": ((), np.bool_),
    "smpl_thetas": ((NUM_THETAS,), np.float32),
    "smpl_betas": ((NUM_BETAS,), np.float32),
    "bbox": ((4,), np.float32),
    "depth_layer": ((), np.int64),
    "age_class": ((), np.int64),
    **{flag: ((), np.bool_) for flag in LABEL_FLAGS},
}
PADDING = {"depth_layer": -1, "age_class": -1}


def sample_arrays(sample: TrainSample, max_people: int, all_labelled: bool = True) -> dict[str, np.ndarray]:
    """Pad ``sample`` to ``max_people`` rows (extra people are dropped): the per-image batch row."""
    n = min(sample.count, max_people)
    out: dict[str, np.ndarray] = {"image": sample.image}
    for name, (shape, dtype) in PERSON_FIELDS.items():
        padded: np.ndarray = np.full((max_people, *shape), PADDING.get(name, 0), dtype=dtype)
        padded[:n] = getattr(sample, name)[:n]
        out[name] = padded
    valid = np.zeros(max_people, np.bool_)
    valid[:n] = True
    out["person_valid"] = valid
    out["all_labelled"] = np.asarray(all_labelled and sample.count <= max_people)
    return out


def collate(rows: Sequence[Mapping[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack per-image rows into batch tensors (what ``iter_torch_batches`` does)."""
    return {key: torch.from_numpy(np.stack([row[key] for row in rows])) for key in rows[0]}


@dataclass
class TrainBatch:
    """The batch as tensors (see the module table)."""

    image: torch.Tensor
    person_valid: torch.Tensor
    weight: torch.Tensor
    joints2d: torch.Tensor
    joints2d_valid: torch.Tensor
    joints3d: torch.Tensor
    cam_trans: torch.Tensor
    has_cam: torch.Tensor
    smpl_thetas: torch.Tensor
    smpl_betas: torch.Tensor
    bbox: torch.Tensor
    depth_layer: torch.Tensor
    age_class: torch.Tensor
    has_joints2d: torch.Tensor
    has_joints3d: torch.Tensor
    has_smpl: torch.Tensor
    has_depth_layer: torch.Tensor
    has_age: torch.Tensor
    all_labelled: torch.Tensor

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, torch.Tensor | np.ndarray]) -> TrainBatch:
        """Read the loader's dict (tensors or arrays); raises ``ValueError`` naming a bad key."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(f"training batch lacks {missing}")
        values = {n: torch.as_tensor(arrays[n]) for n in names}
        b, p = values["person_valid"].shape
        for name, (shape, _) in PERSON_FIELDS.items():
            if tuple(values[name].shape) != (b, p, *shape):
                raise ValueError(f"training batch: {name} has shape {tuple(values[name].shape)}, "
                                 f"expected {(b, p, *shape)}")
        return cls(**values)

    def to(self, device: torch.device | str) -> TrainBatch:
        return TrainBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def size(self) -> int:
        return int(self.person_valid.shape[0])
