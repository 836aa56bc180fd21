"""The open body model meshfleet ships: loaders, SMPL conventions, joints by meaning, the age direction."""

import contextlib
import io
import json

import numpy as np
import pytest
import smplx
import torch

from core.body_model_fit import partition_of_unity, principal_directions, rotation_between
from core.body_models import JOINT_NAMES, NUM_JOINTS, BodyModelSet, with_kid_shape
from core.open_body_model import SHIPPED_DIR, is_open_model_dir, read_open_model, smplx_struct
from core.smpl_pickle import BodyModelFileError

NUM_VERTS = 13718


@pytest.fixture(scope="module")
def model():
    return read_open_model(SHIPPED_DIR)


@pytest.fixture(scope="module")
def bodies():
    return BodyModelSet.open(for_bev=True).eval()


@pytest.fixture(scope="module")
def manifest():
    return json.loads((SHIPPED_DIR / "manifest.json").read_text())


def _smplx(arrays, num_betas):
    with contextlib.redirect_stdout(io.StringIO()):
        return smplx.SMPL("", data_struct=smplx_struct(arrays), num_betas=num_betas)


def _height(verts: torch.Tensor) -> torch.Tensor:
    return verts[..., 1].amax(-1) - verts[..., 1].amin(-1)


def test_shipped_set_is_named_and_sized(bodies, manifest):
    assert bodies.name == f"open-{manifest['version']}" == manifest["body_model_set"]
    assert bodies.num_verts == NUM_VERTS and bodies.smpla.num_betas == 11 and bodies.smil.num_betas == 10
    out = bodies.smpla_forward(torch.zeros(2, 11), torch.zeros(2, 72))
    assert out.verts.shape == (2, NUM_VERTS, 3) and out.joints.shape == (2, NUM_JOINTS, 3)
    assert (SHIPPED_DIR / "LICENSE.txt").read_text().count("NAVER") >= 1
    assert "Apache" in (SHIPPED_DIR / "LICENSE.txt").read_text() and "CC0" in (SHIPPED_DIR / "LICENSE.txt").read_text()
    assert sum(p.stat().st_size for p in SHIPPED_DIR.iterdir()) < 3_000_000


@pytest.mark.parametrize("which", ["smpl", "smpla", "smil"])
def test_meshfleet_and_smplx_give_identical_vertices(bodies, model, which):
    arrays = {"smpl": model.smpl, "smpla": with_kid_shape(model.smpl, model.kid_template), "smil": model.smil}[which]
    layer = _smplx(arrays, arrays.num_betas)
    rng = np.random.default_rng(3)
    betas = torch.tensor(rng.normal(0, 1, (3, arrays.num_betas)), dtype=torch.float32)
    if which == "smpla":
        betas[:, 10] = torch.tensor([0.0, 0.3, 0.7])  # below the SMIL swap
    thetas = torch.tensor(rng.normal(0, 0.4, (3, 72)), dtype=torch.float32)
    ours = getattr(bodies, which)(betas, thetas)
    ref = layer(betas=betas, global_orient=thetas[:, :3], body_pose=thetas[:, 3:])
    assert torch.equal(ours.verts, ref.vertices)
    assert torch.equal(ours.joints[:, :24], ref.joints[:, :24])


def test_zero_pose_gives_the_template(bodies, model):
    out = bodies.smpl_forward(torch.zeros(1, 10), torch.zeros(1, 72))
    np.testing.assert_allclose(out.verts[0].numpy(), model.smpl.v_template, atol=1e-6)
    np.testing.assert_allclose(out.joints[0, :24].numpy(), model.smpl.J_regressor @ model.smpl.v_template, atol=1e-6)
    assert not model.smpl.posedirs.any()  # no pose correctives, as documented


def test_rows_are_partitions_of_unity(model):
    arrays = model.smpl
    for name in ("J_regressor", "extra_regressor", "h36m_regressor"):
        rows = getattr(arrays, name)
        assert rows.min() >= 0 and np.all(rows.sum(axis=1) == 1.0), name
    assert (arrays.J_regressor > 0).sum(axis=1).max() <= 8
    assert arrays.weights.min() >= 0 and np.all(arrays.weights.sum(axis=1) == 1.0)
    assert arrays.J_regressor.shape == (24, NUM_VERTS) and arrays.h36m_regressor.shape == (17, NUM_VERTS)


def test_held_out_joint_regressor_error_is_reported_and_bounded(manifest):
    error = manifest["metrics"]["joint_regressor_held_out_error_mm"]
    assert error["bodies"] >= 100 and error["mean"] <= 8.0 and error["max"] <= 60.0


def test_age_direction_shrinks_the_adult_to_the_infant_monotonically(bodies, manifest):
    steps = torch.linspace(0, 0.8, 9)  # up to the SMIL swap threshold
    betas = torch.zeros(len(steps), 11)
    betas[:, 10] = steps
    heights = _height(bodies.smpla(betas, torch.zeros(len(steps), 72)).verts)
    assert torch.all(heights[1:] < heights[:-1])
    assert 1.6 < float(heights[0]) < 1.8 and float(heights[-1]) < 1.0
    infant = _height(bodies.smpla(torch.tensor([[0.0] * 10 + [1.0]]), torch.zeros(1, 72)).verts)
    assert 0.6 < float(infant) < float(heights[-1])
    assert manifest["metrics"]["height_by_age_coefficient_m"]["1.0"] == pytest.approx(float(infant), abs=2e-3)


def test_babies_are_meshed_by_the_infant_model(bodies):
    betas = torch.zeros(2, 11)
    betas[:, 0] = torch.tensor([1.0, -1.0])
    betas[:, 10] = torch.tensor([0.9, 0.5])
    thetas = torch.zeros(2, 72)
    out = bodies.smpla_forward(betas, thetas)
    assert torch.equal(out.verts[0], bodies.smil(betas[:1, :10], thetas[:1]).verts[0])
    assert torch.equal(out.verts[1], bodies.smpla(betas[1:], thetas[1:]).verts[0])


def test_joints_sit_where_their_names_say(bodies):
    j = bodies.smpl_forward(torch.zeros(1, 10), torch.zeros(1, 72)).joints[0].numpy()
    at = {name: j[i] for i, name in enumerate(JOINT_NAMES)}
    x, y, z = 0, 1, 2
    for left, right in (("L_Eye", "R_Eye"), ("L_Ear", "R_Ear"), ("L_BigToe", "R_BigToe"), ("L_Hand_thumb",
                                                                                        "R_Hand_thumb")):
        assert at[left][x] > 0.02 and at[right][x] < -0.02  # +x is the body's left, as SMPL
        np.testing.assert_allclose(at[left] * [-1, 1, 1], at[right], atol=2e-3)  # the mesh is symmetric
    assert at["Head_top"][y] == j[:, y].max() and at["Nose"][z] > at["L_Eye"][z] > at["L_Ear"][z]  # faces +z
    assert at["L_BigToe"][z] > at["L_Ankle"][z] > at["L_Heel"][z] and at["L_Heel"][y] < at["L_Ankle"][y]
    assert at["L_Hand_middle"][x] > at["L_Hand"][x] > at["L_Wrist"][x] > at["L_Elbow"][x] > at["L_Shoulder"][x]
    np.testing.assert_allclose(at["L_Wrist"][y], at["L_Shoulder"][y], atol=0.01)  # T-pose: arms level
    assert at["L_Hand_thumb"][z] > at["L_Hand_pinky"][z]  # palms down: thumbs forward
    np.testing.assert_allclose(at["Pelvis"], (at["L_Hip"] + at["R_Hip"]) / 2, atol=1e-6)


def test_from_dir_reads_an_open_model_and_gender_is_refused(tmp_path):
    assert is_open_model_dir(SHIPPED_DIR) and not is_open_model_dir(tmp_path)
    assert BodyModelSet.from_dir(SHIPPED_DIR).name.startswith("open-")
    with pytest.raises(BodyModelFileError, match="gender-neutral"):
        BodyModelSet.open(gender="male")
    (tmp_path / "manifest.json").write_text('{"format": "something else"}')
    with pytest.raises(BodyModelFileError, match="manifest"):
        BodyModelSet.from_dir(tmp_path)


def test_fit_helpers():
    a = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    b = np.array([[0.0, 1.0, 0.0], [0.6, 0.8, 0.0]])
    r = rotation_between(a, b)
    np.testing.assert_allclose(np.einsum("bij,bj->bi", r, a), b, atol=1e-12)
    np.testing.assert_allclose(r @ np.swapaxes(r, 1, 2), np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-12)
    counts = partition_of_unity(np.array([[1.0, 1.0, 1.0], [0.2, 0.0, 0.7]]), 4)
    assert counts.sum(axis=1).tolist() == [16, 16] and counts[1, 1] == 0
    samples = np.random.default_rng(0).normal(0, 1, (500, 2)) * [3.0, 0.5]
    _, dirs, explained = principal_directions(samples, 2, np.array([1.0, 1.0]))
    np.testing.assert_allclose(np.abs(dirs), [[3.0, 0.0], [0.0, 0.5]], atol=0.25)
    assert np.all(dirs.sum(axis=0) > 0) and explained[0] > explained[1]
