"""BVH (Biovision hierarchy) text: a skeleton and its motion, one line per frame.

The root has six channels ``Xposition Yposition Zposition Zrotation Xrotation Yrotation`` and
OFFSET 0 0 0, so its position channels are the absolute root position whether a reader adds them
to the offset or replaces it (readers differ); every other joint has ``Zrotation Xrotation
Yrotation`` and OFFSET = its rest offset from the parent. Channel angles (z, x, y) in degrees mean
the local rotation ``Rz(z) Rx(x) Ry(y)``. Leaf joints end in an End Site. Units are the skeleton's
(metres here).
"""

from __future__ import annotations

import io

import numpy as np

from core.formats.skeleton import Skeleton

ROOT_CHANNELS = "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
JOINT_CHANNELS = "CHANNELS 3 Zrotation Xrotation Yrotation"


def depth_first(skeleton: Skeleton) -> list[int]:
    """Joint indices in the order the hierarchy lists them (and the motion lines hold them)."""
    order: list[int] = []
    stack = [0]
    while stack:
        joint = stack.pop()
        order.append(joint)
        stack.extend(reversed(skeleton.children(joint)))
    return order


def bvh_bytes(skeleton: Skeleton, euler_zxy: np.ndarray, root_positions: np.ndarray, frame_time: float) -> bytes:
    """The .bvh file: euler_zxy (T, J, 3) degrees as from ``motion.euler_zxy_degrees`` (the root's
    in the world), root_positions (T, 3), frame_time seconds per frame."""
    out = io.StringIO()
    out.write("HIERARCHY\n")
    _write_joint(out, skeleton, 0, 0)
    order = depth_first(skeleton)
    out.write(f"MOTION\nFrames: {len(root_positions)}\nFrame Time: {frame_time:.8f}\n")
    values = np.concatenate([root_positions, euler_zxy[:, order].reshape(len(root_positions), -1)], axis=1)
    np.savetxt(out, values, fmt="%.6f")
    return out.getvalue().encode()


def _write_joint(out: io.StringIO, skeleton: Skeleton, joint: int, depth: int) -> None:
    pad = "  " * depth
    offset = np.zeros(3) if joint == 0 else skeleton.offsets()[joint]
    out.write(f"{pad}{'ROOT' if joint == 0 else 'JOINT'} {skeleton.names[joint]}\n{pad}{{\n")
    out.write(f"{pad}  OFFSET {_xyz(offset)}\n{pad}  {ROOT_CHANNELS if joint == 0 else JOINT_CHANNELS}\n")
    children = skeleton.children(joint)
    for child in children:
        _write_joint(out, skeleton, child, depth + 1)
    if not children:
        tip = skeleton.end_sites[joint] - skeleton.rest_joints[joint]
        out.write(f"{pad}  End Site\n{pad}  {{\n{pad}    OFFSET {_xyz(tip)}\n{pad}  }}\n")
    out.write(f"{pad}}}\n")


def _xyz(v: np.ndarray) -> str:
    return " ".join(f"{float(c):.6f}" for c in v)
