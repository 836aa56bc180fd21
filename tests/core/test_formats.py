"""The pure export writers: glTF, BVH and AMASS npz bytes, read back by independent readers."""

import io

import numpy as np
import pytest
import torch
import trimesh

from core.formats.amass import amass_npz_bytes
from core.formats.bvh import bvh_bytes
from core.formats.gltf import Animation, SkinnedMesh, glb_bytes, skin_influences
from core.formats.motion import (
    euler_zxy_degrees,
    fill_gaps,
    quaternions_xyzw,
    rotation_matrices,
    to_world,
)
from core.formats.skeleton import SMPL_KINEMATIC_NAMES, smpl_skeleton
from tests.export_readers import CAMERA_TO_WORLD, GlbFile, bvh_joints, khronos_report

MM = 1e-3


def _rz(a):
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def _rx(a):
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def _ry(a):
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


@pytest.fixture(scope="module")
def walk(body_models):
    """Six frames of one SMPL body in the camera frame (upright: root turned 180 deg about x), with
    its body-model joints in the world frame: the reference every writer must reproduce."""
    rng = np.random.default_rng(11)
    t = 6
    thetas = rng.normal(0.0, 0.35, (t, 72))
    thetas[:, :3] = [np.pi - 0.2, 0.3, 0.1] + rng.normal(0.0, 0.1, (t, 3))
    betas = rng.normal(0.0, 1.0, 10)
    trans = np.array([0.3, 0.2, 4.0]) + np.cumsum(rng.normal(0.0, 0.05, (t, 3)), axis=0)
    layer = body_models.smpl
    with torch.no_grad():
        posed = layer(torch.tensor(betas, dtype=torch.float32).expand(t, -1), torch.tensor(thetas, dtype=torch.float32))
        rest = layer(torch.tensor(betas, dtype=torch.float32)[None], torch.zeros(1, 72))
    reference = (posed.joints[:, :24].double().numpy() + trans[:, None]) * CAMERA_TO_WORLD
    skeleton = smpl_skeleton(rest.joints[0].double().numpy(), layer.parents.numpy())
    poses, root = to_world(thetas, trans, skeleton.rest_joints[0])
    return {"layer": layer, "betas": betas, "rest_verts": rest.verts[0].double().numpy(), "skeleton": skeleton,
            "poses": poses, "root": root, "reference": reference, "fps": 25.0}


def test_glb_animation_reproduces_the_body_model_joints(walk, tmp_path):
    layer, skeleton = walk["layer"], walk["skeleton"]
    mesh = SkinnedMesh(walk["rest_verts"], layer.faces.numpy(), layer.lbs_weights.double().numpy())
    times = np.arange(len(walk["poses"])) / walk["fps"]
    path = tmp_path / "walk.glb"
    path.write_bytes(glb_bytes("walk", skeleton, mesh, Animation(times, quaternions_xyzw(walk["poses"]), walk["root"]),
                               extras={"source": "walk.mp4"}))
    glb = GlbFile(path)
    assert glb.joint_names() == list(SMPL_KINEMATIC_NAMES)
    key_times, joints = glb.animated_joints()
    np.testing.assert_allclose(key_times, times, atol=1e-6)
    assert np.abs(joints - walk["reference"]).max() < MM
    inverse_bind = glb.accessor(glb.gltf.skins[0].inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    np.testing.assert_allclose(inverse_bind[:, :3, 3], -skeleton.rest_joints, atol=1e-6)
    scene = trimesh.load(path)
    (geometry,) = scene.geometry.values()
    assert geometry.vertices.shape == walk["rest_verts"].shape and len(geometry.faces) == len(layer.faces)
    np.testing.assert_allclose(geometry.vertices, walk["rest_verts"], atol=1e-6)  # the rest (bind) shape


def test_khronos_validator_finds_no_errors(walk, tmp_path):
    layer = walk["layer"]
    mesh = SkinnedMesh(walk["rest_verts"], layer.faces.numpy(), layer.lbs_weights.double().numpy())
    times = np.arange(len(walk["poses"])) / walk["fps"]
    path = tmp_path / "walk.glb"
    path.write_bytes(glb_bytes("walk", walk["skeleton"], mesh,
                               Animation(times, quaternions_xyzw(walk["poses"]), walk["root"])))
    report = khronos_report(path)
    assert report["numErrors"] == 0, report["messages"]


def test_bvh_forward_kinematics_reproduces_the_body_model_joints(walk, tmp_path):
    path = tmp_path / "walk.bvh"
    path.write_bytes(bvh_bytes(walk["skeleton"], euler_zxy_degrees(rotation_matrices(walk["poses"])), walk["root"],
                               1.0 / walk["fps"]))
    frame_time, joints = bvh_joints(path, list(SMPL_KINEMATIC_NAMES))
    assert frame_time == pytest.approx(1 / 25)
    assert joints.shape == walk["reference"].shape and np.abs(joints - walk["reference"]).max() < MM


def test_amass_npz_is_smpl_parameters_of_the_same_body(walk):
    trans = walk["root"] - walk["skeleton"].rest_joints[0]
    data = amass_npz_bytes(walk["poses"], trans, walk["betas"], 25.0, "neutral", extra={"frames": np.arange(6)})
    npz = np.load(io.BytesIO(data), allow_pickle=False)
    assert {"poses", "trans", "betas", "mocap_framerate", "gender", "frames"} == set(npz.files)
    assert npz["poses"].shape == (6, 72) and str(npz["gender"]) == "neutral" and float(npz["mocap_framerate"]) == 25
    with torch.no_grad():
        body = walk["layer"](torch.tensor(npz["betas"], dtype=torch.float32).expand(6, -1),
                             torch.tensor(npz["poses"], dtype=torch.float32))
    joints = body.joints[:, :24].double().numpy() + npz["trans"][:, None]
    assert np.abs(joints - walk["reference"]).max() < MM
    with pytest.raises(ValueError, match="replace"):
        amass_npz_bytes(walk["poses"], trans, walk["betas"], 25.0, "neutral", extra={"poses": trans})


def test_euler_zxy_is_exact_including_gimbal_lock():
    rng = np.random.default_rng(0)
    aa = rng.normal(0.0, 1.5, (50, 3))
    aa[0] = [np.pi / 2, 0, 0]  # x = +90 deg: gimbal lock
    aa[1] = [-np.pi / 2, 0, 0]
    rot = rotation_matrices(aa.reshape(1, -1))[0]
    angles = np.radians(euler_zxy_degrees(rot[None])[0])
    rebuilt = np.stack([_rz(z) @ _rx(x) @ _ry(y) for z, x, y in angles])
    np.testing.assert_allclose(rebuilt, rot, atol=1e-7)  # smplx.batch_rodrigues is orthonormal to ~3e-8


def test_euler_angles_are_continuous_over_time():
    angle = np.linspace(0, 4 * np.pi, 40)  # two whole turns about z
    rot = rotation_matrices(np.stack([np.zeros(40), np.zeros(40), angle], axis=1))[:, None, 0]
    z = euler_zxy_degrees(rot)[:, 0, 0]
    assert np.abs(np.diff(z)).max() < 30 and z[-1] == pytest.approx(720, abs=1e-6)


def test_quaternions_stay_in_one_hemisphere():
    angle = np.linspace(0, 3 * np.pi, 30)  # crosses pi, where axis-angle flips the quaternion's sign
    q = quaternions_xyzw(np.stack([angle, np.zeros(30), np.zeros(30)], axis=1))[:, 0]
    assert (np.sum(q[1:] * q[:-1], axis=1) > 0).all()
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)


def test_fill_gaps_interpolates_missing_frames_only():
    frames = np.array([3, 4, 7])
    thetas = np.zeros((3, 6))
    thetas[:, 0] = [0.0, 0.3, 0.9]  # rotations about x of the root
    trans = np.array([[0.0, 0, 0], [1.0, 0, 0], [4.0, 0, 0]])
    full, filled, moved, observed = fill_gaps(frames, thetas, trans)
    assert full.tolist() == [3, 4, 5, 6, 7] and observed.tolist() == [True, True, False, False, True]
    np.testing.assert_allclose(filled[:, 0], [0.0, 0.3, 0.5, 0.7, 0.9], atol=1e-12)  # slerp about one axis
    np.testing.assert_allclose(moved[:, 0], [0, 1, 2, 3, 4])


def test_skin_influences_keep_every_weight_largest_first():
    weights = np.zeros((3, 24))
    weights[0, :6] = [0.05, 0.3, 0.1, 0.25, 0.2, 0.1]  # six influences: two sets of four
    weights[1, 5] = 1.0
    weights[2, [0, 23]] = 0.5
    joints, values = skin_influences(weights)
    assert joints.shape == (3, 8)
    assert joints[0, :4].tolist() == [1, 3, 4, 2] and values[1, 0] == 1.0 and joints[1, 0] == 5
    np.testing.assert_allclose(values.sum(1), 1.0)
    rebuilt = np.zeros_like(weights)
    for v in range(3):
        np.add.at(rebuilt[v], joints[v], values[v])
    np.testing.assert_allclose(rebuilt, weights)
