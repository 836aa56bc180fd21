"""Reading a BVH motion onto SMPL's 24 joints: the file's text in, (T, 72) axis-angle poses out (no I/O).

The skeleton must name SMPL's 24 joints as :data:`core.formats.skeleton.SMPL_KINEMATIC_NAMES` does
(what ``meshfleet export bvh`` writes); names match ignoring case and separators, and ``l_`` / ``r_``
prefixes stand for ``left_`` / ``right_`` (``Pelvis``, ``L_Hip``, ``LeftHip`` and ``left_hip`` are all
accepted). Other joints may sit in between (their rotations are composed into the next SMPL joint's) or
hang off the tree (ignored).

Only rotations are read. Each joint's rotation channels, in the order its ``CHANNELS`` line lists them,
mean the local rotation ``R = R_c1 R_c2 R_c3`` (e.g. ``Zrotation Xrotation Yrotation`` is ``Rz Rx Ry``,
the convention of core/formats/bvh.py), angles in degrees; any order is accepted. Position channels
(the root translation) and the OFFSETs are ignored: a BVH has no rest rotations, so its rest pose is
all joint frames aligned with the world axes, and the poses read equal SMPL's only when that rest pose
is SMPL's T-pose orientation (as export writes it); bone lengths may differ from SMPL's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
from scipy.spatial.transform import Rotation

from core.formats.motion import MotionFileError
from core.formats.skeleton import SMPL_KINEMATIC_NAMES, SMPL_PARENTS

CHANNEL_NAMES = {f"{axis}{kind}" for axis in "xyz" for kind in ("position", "rotation")}  # matched in lower case


@dataclass(frozen=True)
class BvhJoint:
    """One ROOT / JOINT of the hierarchy: ``parent`` index (-1 for the root), ``channels`` as listed."""

    name: str
    parent: int
    channels: tuple[str, ...]


@dataclass(frozen=True)
class SmplMotion:
    """poses (T, 72) axis-angle radians, SMPL's joint order: joint 0 the pelvis rotation in the file's
    world, the rest local to their SMPL parents; frame_time seconds per frame."""

    poses: np.ndarray
    frame_time: float


def smpl_motion_from_bvh(text: str, name: str) -> SmplMotion:
    """The BVH file's text -> its frames as SMPL poses; ``name`` (the file) starts every error message.

    Raises :class:`MotionFileError` when the text is not a BVH or its joints do not map onto SMPL's 24.
    """
    tokens = text.split()
    try:
        joints, motion_at = parse_hierarchy(tokens)
        frame_time, values = _parse_motion(tokens[motion_at:], sum(len(j.channels) for j in joints))
    except (IndexError, ValueError) as err:
        raise MotionFileError(f"{name}: not a readable BVH file ({err})") from None
    smpl_of = _smpl_joints(joints, name)
    world = _world_rotations(joints, _local_rotations(joints, values))
    local = np.empty((len(values), 24, 3, 3))
    local[:, 0] = world[:, smpl_of[0]]
    parents = [smpl_of[p] for p in SMPL_PARENTS[1:]]
    local[:, 1:] = np.swapaxes(world[:, parents], -1, -2) @ world[:, smpl_of[1:]]
    poses = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(len(values), 72)
    return SmplMotion(poses, frame_time)


def parse_hierarchy(tokens: list[str]) -> tuple[list[BvhJoint], int]:
    """Whitespace tokens of a BVH -> (its joints, parents before children, in the order the motion lines
    hold their channels; the index of the ``MOTION`` token)."""
    joints: list[BvhJoint] = []
    open_blocks: list[int] = []  # joint index per open '{', -1 for an End Site
    block = -1  # what the next '{' opens
    if tokens[0] != "HIERARCHY":
        _fail(f"starts with {tokens[0]!r}, not HIERARCHY")
    i = 1
    while tokens[i] != "MOTION":
        word = tokens[i]
        if word in ("ROOT", "JOINT"):
            inside = open_blocks[-1] if open_blocks else -2  # -1: in an End Site, -2: at the top
            if (word == "ROOT" and (inside != -2 or joints)) or (word == "JOINT" and inside < 0):
                _fail(f"misplaced {word} {tokens[i + 1]}")
            joints.append(BvhJoint(tokens[i + 1], open_blocks[-1] if open_blocks else -1, ()))
            block, i = len(joints) - 1, i + 2
        elif word == "End":  # End Site
            block, i = -1, i + 2
        elif word == "{":
            open_blocks.append(block)
            i += 1
        elif word == "}":
            open_blocks.pop()
            i += 1
        elif word == "OFFSET":
            i += 4
        elif word == "CHANNELS" and open_blocks and open_blocks[-1] >= 0:
            count, owner = int(tokens[i + 1]), open_blocks[-1]
            unknown = [c for c in tokens[i + 2:i + 2 + count] if c.lower() not in CHANNEL_NAMES]
            if unknown:
                _fail(f"unknown channel {unknown[0]!r} of {joints[owner].name}")
            joints[owner] = BvhJoint(joints[owner].name, joints[owner].parent, tuple(tokens[i + 2:i + 2 + count]))
            i += 2 + count
        else:
            _fail(f"unexpected {word!r} in the hierarchy")
    if not joints or open_blocks:
        _fail("the hierarchy has no joints or an unclosed '{'")
    return joints, i


def _parse_motion(tokens: list[str], channels: int) -> tuple[float, np.ndarray]:
    """Tokens from ``MOTION`` on -> (frame time, (T, channels) values)."""
    if tokens[1] != "Frames:" or tokens[3:5] != ["Frame", "Time:"]:
        _fail("the MOTION section lacks 'Frames:' or 'Frame Time:'")
    frames, frame_time = int(tokens[2]), float(tokens[5])
    values = np.asarray(tokens[6:], np.float64)
    if frames < 1 or values.size != frames * channels or not np.isfinite(values).all():
        _fail(f"expected {frames} frames of {channels} finite channel values, got {values.size} values")
    return frame_time, values.reshape(frames, channels)


def _fail(message: str) -> NoReturn:
    raise ValueError(message)


def smpl_key(name: str) -> str:
    """The form joint names are matched in: lower case, ``l_`` / ``r_`` -> ``left`` / ``right``, letters
    and digits only (``L_Hip``, ``LeftHip``, ``left_hip`` -> ``lefthip``)."""
    key = re.sub(r"^([lr])[_\-. ]", lambda m: "left" if m[1] == "l" else "right", name.lower())
    return re.sub(r"[^a-z0-9]", "", key)


def _smpl_joints(joints: list[BvhJoint], name: str) -> list[int]:
    """(24,) index of each SMPL joint in ``joints``, each SMPL parent an ancestor of its child."""
    index: dict[str, int] = {}
    for k, joint in enumerate(joints):
        index.setdefault(smpl_key(joint.name), k)
    missing = [n for n in SMPL_KINEMATIC_NAMES if smpl_key(n) not in index]
    if missing:
        raise MotionFileError(f"{name}: BVH joints do not map onto SMPL's 24 joints; missing {', '.join(missing)} "
                              f"(expected the names of `meshfleet export bvh`: {', '.join(SMPL_KINEMATIC_NAMES)})")
    smpl_of = [index[smpl_key(n)] for n in SMPL_KINEMATIC_NAMES]
    for j, parent in enumerate(SMPL_PARENTS[1:], start=1):
        k = joints[smpl_of[j]].parent
        while k >= 0 and k != smpl_of[parent]:
            k = joints[k].parent
        if k < 0:
            raise MotionFileError(f"{name}: BVH joint {joints[smpl_of[j]].name} is not below "
                                  f"{joints[smpl_of[parent]].name}, as SMPL's {SMPL_KINEMATIC_NAMES[j]} is "
                                  f"below {SMPL_KINEMATIC_NAMES[parent]}")
    return smpl_of


def _local_rotations(joints: list[BvhJoint], values: np.ndarray) -> np.ndarray:
    """(T, C) channel values -> (T, N, 3, 3) each joint's local rotation (identity without channels)."""
    frames = len(values)
    local = np.broadcast_to(np.eye(3), (frames, len(joints), 3, 3)).copy()
    first = 0
    for k, joint in enumerate(joints):
        axes = [(c, ch[0].upper()) for c, ch in enumerate(joint.channels, start=first)
                if ch.lower().endswith("rotation")]
        first += len(joint.channels)
        if axes:  # upper case: intrinsic axes, R = R_c1 R_c2 R_c3
            columns, order = [c for c, _ in axes], "".join(a for _, a in axes)
            local[:, k] = Rotation.from_euler(order, values[:, columns], degrees=True).as_matrix()
    return local


def _world_rotations(joints: list[BvhJoint], local: np.ndarray) -> np.ndarray:
    """(T, N, 3, 3) local rotations -> rotations in the file's world (parents come first)."""
    world = local.copy()
    for k, joint in enumerate(joints):
        if joint.parent >= 0:
            world[:, k] = world[:, joint.parent] @ local[:, k]
    return world
