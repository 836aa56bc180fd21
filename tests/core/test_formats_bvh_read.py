"""Reading BVH motion onto SMPL's 24 joints: meshfleet's own BVH read back, hand-written files with other
channel orders and joint names, bvhio's independent parse, and skeletons that cannot be mapped."""

from __future__ import annotations

import bvhio
import numpy as np
import pytest
from pyglm import glm
from scipy.spatial.transform import Rotation

from core.formats.bvh import bvh_bytes
from core.formats.bvh_read import smpl_motion_from_bvh
from core.formats.motion import MotionFileError, euler_zxy_degrees, rotation_matrices
from core.formats.skeleton import SMPL_KINEMATIC_NAMES, SMPL_PARENTS, Skeleton

TOLERANCE = 1e-5  # rotation-matrix entries; the writer rounds angles to 1e-6 degrees (~2e-8 rad)
ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def _skeleton(rng: np.random.Generator) -> Skeleton:
    """SMPL's tree with random rest positions (the reader ignores offsets)."""
    rest = np.cumsum(rng.normal(0.0, 0.1, (24, 3)), axis=0)
    return Skeleton(SMPL_KINEMATIC_NAMES, np.asarray(SMPL_PARENTS), rest, rest + 0.05)


def _bvh_text(names, parents, orders, angles_deg, frame_time=0.04) -> str:
    """A BVH with joint k named names[k], rotation channels in orders[k] (root: positions first) and the
    (T, J, 3) angles in that order; written here, independently of meshfleet's writer."""
    children = {k: [c for c, p in enumerate(parents) if p == k] for k in range(len(names))}
    lines, listed = ["HIERARCHY"], []

    def joint(k: int, depth: int) -> None:
        pad = "  " * depth
        channels = " ".join(f"{a}rotation" for a in orders[k])
        channels = f"CHANNELS 6 Xposition Yposition Zposition {channels}" if k == 0 else f"CHANNELS 3 {channels}"
        lines.extend([f"{pad}{'ROOT' if k == 0 else 'JOINT'} {names[k]}", f"{pad}{{", f"{pad}  OFFSET 0 0.1 0",
                      f"{pad}  {channels}"])
        listed.append(k)
        for c in children[k]:
            joint(c, depth + 1)
        if not children[k]:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0 0.1 0", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    joint(0, 0)
    frames = len(angles_deg)
    values = np.concatenate([np.full((frames, 3), 0.5), angles_deg[:, listed].reshape(frames, -1)], axis=1)
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {frame_time}"]
    lines += [" ".join(f"{v:.9f}" for v in row) for row in values]
    return "\n".join(lines) + "\n"


def _random_orders_file(rng: np.random.Generator, frames: int = 4) -> tuple[str, np.ndarray, list[str]]:
    """A BVH on SMPL's joints with a random channel order per joint: (text, (T, 24, 3, 3) the local
    rotations it holds, the orders)."""
    rotmats = Rotation.random(frames * 24, random_state=rng).as_matrix().reshape(frames, 24, 3, 3)
    orders = [ORDERS[i] for i in rng.integers(len(ORDERS), size=24)]
    angles = np.stack([Rotation.from_matrix(rotmats[:, k]).as_euler(o, degrees=True) for k, o in enumerate(orders)],
                      axis=1)
    return _bvh_text(SMPL_KINEMATIC_NAMES, SMPL_PARENTS, orders, angles), rotmats, orders


def test_what_meshfleets_writer_wrote_reads_back_to_the_same_rotations():
    rng = np.random.default_rng(3)
    poses = rng.normal(0.0, 0.8, (7, 72))
    poses[3, 3 * 18:3 * 18 + 3] = [0.0, np.pi / 2, 0.0]  # x = 90 deg in Rz Rx Ry terms: gimbal lock
    poses[4, 3 * 5:3 * 5 + 3] = [0.0, 0.0, 3.0]  # near a half turn
    rotmats = rotation_matrices(poses)
    data = bvh_bytes(_skeleton(rng), euler_zxy_degrees(rotmats), rng.normal(0.0, 1.0, (7, 3)), 1 / 30)
    motion = smpl_motion_from_bvh(data.decode(), "walk.track3.bvh")
    assert motion.poses.shape == (7, 72)
    assert np.abs(rotation_matrices(motion.poses) - rotmats).max() < TOLERANCE
    assert motion.frame_time == pytest.approx(1 / 30, abs=1e-8)


def test_a_hand_written_xyz_file_with_other_names_gives_the_known_rotations():
    # names as other tools spell them: case, separators, L_/R_ and Left/Right prefixes
    names = ["Pelvis", "L_Hip", "RightHip", "Spine1", "LeftKnee", "R_Knee", "SPINE2", "left-ankle", "right_ankle",
             "Spine3", "LeftFoot", "RightFoot", "Neck", "LeftCollar", "RightCollar", "Head", "L_Shoulder",
             "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand"]
    angles = np.zeros((1, 24, 3))
    angles[0, 18] = [0.0, 90.0, 0.0]  # left elbow: 90 deg about y
    angles[0, 4] = [90.0, 90.0, 0.0]  # left knee: Rx(90) Ry(90) = [[0,0,1],[1,0,0],[0,1,0]], 120 deg about (1,1,1)
    text = _bvh_text(names, SMPL_PARENTS, ["XYZ"] * 24, angles, frame_time=0.01)
    motion = smpl_motion_from_bvh(text, "hand.bvh")
    expected = np.zeros(72)
    expected[3 * 18:3 * 18 + 3] = [0.0, np.pi / 2, 0.0]
    expected[3 * 4:3 * 4 + 3] = 2 * np.pi / 3 / np.sqrt(3)
    assert np.abs(motion.poses[0] - expected).max() < 1e-8 and motion.frame_time == 0.01


def test_joints_between_smpl_joints_compose_into_the_next_one():
    rng = np.random.default_rng(5)
    rotmats = Rotation.random(2 * 25, random_state=rng).as_matrix().reshape(2, 25, 3, 3)
    # an extra joint 'spine_twist' (index 24) between spine2 and spine3; its rotation belongs to spine3
    names = [*SMPL_KINEMATIC_NAMES, "spine_twist"]
    parents = [*SMPL_PARENTS, 6]
    parents[9] = 24
    angles = np.stack([Rotation.from_matrix(rotmats[:, k]).as_euler("ZXY", degrees=True) for k in range(25)], axis=1)
    motion = smpl_motion_from_bvh(_bvh_text(names, parents, ["ZXY"] * 25, angles), "extra.bvh")
    expected = rotmats[:, :24].copy()
    expected[:, 9] = rotmats[:, 24] @ rotmats[:, 9]
    assert np.abs(rotation_matrices(motion.poses) - expected).max() < TOLERANCE


def test_bvhio_reads_the_same_local_rotations(tmp_path):
    text, rotmats, _ = _random_orders_file(np.random.default_rng(8))
    path = tmp_path / "orders.bvh"
    path.write_text(text)
    ours = rotation_matrices(smpl_motion_from_bvh(text, str(path)).poses)
    assert np.abs(ours - rotmats).max() < TOLERANCE
    container = bvhio.readAsBvh(str(path))
    joints = {joint.Name: joint for joint, _, _ in container.Root.layout()}
    theirs = np.array([[np.array(glm.mat3_cast(joints[name].Keyframes[t].Rotation).to_list()).T
                        for name in SMPL_KINEMATIC_NAMES] for t in range(container.FrameCount)])
    assert container.FrameCount == len(ours) and np.abs(ours - theirs).max() < TOLERANCE


def test_an_unmappable_skeleton_is_refused_naming_the_file_and_the_missing_joints():
    text, _, _ = _random_orders_file(np.random.default_rng(1), frames=1)
    text = text.replace("JOINT left_wrist", "JOINT LeftForeArmTwist").replace("JOINT right_hand", "JOINT RHand")
    with pytest.raises(MotionFileError) as err:
        smpl_motion_from_bvh(text, "mixamo.bvh")
    message = str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in message
    assert message.startswith("mixamo.bvh: ") and "missing left_wrist, right_hand (" in message


@pytest.mark.parametrize("broken", ["", "HIERARCHY\nROOT a\n{\n", "not a bvh", "MOTION_ONLY"])
def test_text_that_is_not_a_bvh_is_refused_naming_the_file(broken):
    with pytest.raises(MotionFileError, match=r"^x\.bvh: not a readable BVH file"):
        smpl_motion_from_bvh(broken, "x.bvh")


def test_frames_that_do_not_fill_the_channels_are_refused():
    text, _, _ = _random_orders_file(np.random.default_rng(2), frames=2)
    with pytest.raises(MotionFileError, match="expected 2 frames of 75"):
        smpl_motion_from_bvh(text.rstrip("\n").rsplit("\n", 1)[0], "short.bvh")


def test_smpl_parents_are_the_shipped_open_models():
    from core.open_body_model import SHIPPED_DIR, read_open_model

    assert tuple(read_open_model(SHIPPED_DIR).smpl.parents) == SMPL_PARENTS
