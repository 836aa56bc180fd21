import numpy as np
import pytest
import smplx.vertex_ids
import smplx.vertex_joint_selector
import torch

from core.body_models import (
    H36M_TO_J17,
    JOINT_NAMES,
    NUM_JOINTS,
    VERTEX_JOINT_IDS,
    BodyModelFiles,
    BodyModelSet,
    root_align,
)
from core.smpl_pickle import BodyModelFileError, load_model_pickle
from jobs.synthetic import synthetic_model_dict, write_model_pickle


def rodrigues_np(aa: np.ndarray) -> np.ndarray:
    theta = np.linalg.norm(aa)
    if theta < 1e-12:
        return np.eye(3)
    k = aa / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def lbs_np(raw: dict, betas: np.ndarray, thetas: np.ndarray):
    """Independent float64 SMPL: shape + pose blend shapes, kinematic chain, skinning."""
    k = betas.shape[0]
    v = raw["v_template"] + raw["shapedirs"][:, :, :k] @ betas
    joints = raw["J_regressor"] @ v
    rots = [rodrigues_np(thetas[3 * i:3 * i + 3]) for i in range(24)]
    pose_feature = np.concatenate([(r - np.eye(3)).ravel() for r in rots[1:]])
    v = v + raw["posedirs"] @ pose_feature
    parents = raw["kintree_table"][0].astype(np.int64)
    world = []
    for i in range(24):
        local = np.eye(4)
        local[:3, :3] = rots[i]
        local[:3, 3] = joints[i] - (joints[parents[i]] if i else 0)
        world.append(local if i == 0 else world[parents[i]] @ local)
    posed_joints = np.stack([w[:3, 3] for w in world])
    skin = []
    for w in world:
        m = w.copy()
        m[:3, 3] -= w[:3, :3] @ joints[len(skin)]
        skin.append(m)
    transforms = np.einsum("vj,jab->vab", raw["weights"], np.stack(skin))
    verts = np.einsum("vab,vb->va", transforms, np.concatenate([v, np.ones((len(v), 1))], 1))[:, :3]
    return verts, posed_joints


@pytest.fixture(scope="module")
def raw(body_model_dir):
    return load_model_pickle(body_model_dir / "SMPL_NEUTRAL.pkl")


def test_71_joints_match_independent_computation(body_models, body_model_dir, raw):
    rng = np.random.default_rng(0)
    betas = rng.normal(0, 1, 10)
    thetas = rng.normal(0, 0.4, 72)
    out = body_models.smpl_forward(torch.tensor(betas[None], dtype=torch.float32),
                                   torch.tensor(thetas[None], dtype=torch.float32))
    assert out.joints.shape == (1, NUM_JOINTS, 3) and out.verts.shape == (1, 6890, 3)
    verts, joints24 = lbs_np(raw, betas, thetas)
    extra = np.load(body_model_dir / "J_regressor_extra.npy")
    h36m = np.load(body_model_dir / "J_regressor_h36m.npy")
    expected = np.concatenate([joints24, verts[list(VERTEX_JOINT_IDS)], extra @ verts, h36m[list(H36M_TO_J17)] @ verts])
    np.testing.assert_allclose(out.verts[0].numpy(), verts, atol=2e-5)
    np.testing.assert_allclose(out.joints[0].numpy(), expected, atol=2e-5)
    assert len(JOINT_NAMES) == NUM_JOINTS


def test_zero_pose_gives_template_joints(body_models, raw):
    out = body_models.smpl_forward(torch.zeros(1, 10), torch.zeros(1, 72))
    np.testing.assert_allclose(out.joints[0, :24].numpy(), raw["J_regressor"] @ raw["v_template"], atol=1e-5)
    np.testing.assert_allclose(out.verts[0].numpy(), raw["v_template"], atol=1e-5)


def test_vertex_joints_follow_smplx_order():
    selector = smplx.vertex_joint_selector.VertexJointSelector(smplx.vertex_ids.vertex_ids["smplh"])
    assert tuple(selector.extra_joints_idxs.tolist()) == VERTEX_JOINT_IDS


def test_root_alignment_on_lsp_hips(body_models):
    out = root_align(body_models.smpl_forward(torch.randn(3, 10), torch.randn(3, 72) * 0.3))
    assert torch.allclose(out.joints[:, [45, 46]].mean(1), torch.zeros(3, 3), atol=1e-6)


def test_smpla_kid_direction_reaches_centred_kid_template(body_models, body_model_dir):
    kid = np.load(body_model_dir / "smpl_kid_template.npy")
    betas = torch.zeros(1, 11)
    betas[0, 10] = 0.5  # below the SMIL threshold: SMPL-A halfway to the kid template
    out = body_models.smpla_forward(betas, torch.zeros(1, 72))
    template = body_models.smpla.v_template.numpy()
    expected = template + 0.5 * ((kid - kid.mean(0)) - template)
    np.testing.assert_allclose(out.verts[0].numpy(), expected, atol=1e-5)


def test_smil_swap_above_threshold(body_models):
    betas = torch.randn(4, 11) * 0.5
    betas[:, 10] = torch.tensor([0.1, 0.8, 0.81, 0.95])  # 0.8 exactly stays SMPL-A (strict >)
    thetas = torch.randn(4, 72) * 0.2
    out = body_models.smpla_forward(betas, thetas)
    smil = body_models.smil(betas[2:, :10], thetas[2:])
    smpla = body_models.smpla(betas[:2], thetas[:2])
    torch.testing.assert_close(out.verts[2:], smil.verts)
    torch.testing.assert_close(out.joints[:2], smpla.joints)
    assert not torch.allclose(out.verts[2], body_models.smpla(betas[2:3], thetas[2:3]).verts[0])


def test_missing_files_are_named(tmp_path):
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(b"")
    with pytest.raises(BodyModelFileError, match="J_regressor_extra.npy"):
        BodyModelFiles.find(tmp_path)


def test_bev_needs_kid_template_and_smil(tmp_path, body_model_dir):
    for name in ("SMPL_NEUTRAL.pkl", "J_regressor_extra.npy", "J_regressor_h36m.npy"):
        (tmp_path / name).write_bytes((body_model_dir / name).read_bytes())
    assert BodyModelSet.from_dir(tmp_path).smpla is None
    with pytest.raises(BodyModelFileError, match="smpl_kid_template.npy and smil_web.pkl"):
        BodyModelSet.from_dir(tmp_path, for_bev=True)


def test_gendered_models_and_bad_regressor(tmp_path, body_model_dir):
    for name in ("J_regressor_extra.npy", "J_regressor_h36m.npy"):
        (tmp_path / name).write_bytes((body_model_dir / name).read_bytes())
    write_model_pickle(tmp_path / "SMPL_FEMALE.pkl", synthetic_model_dict(np.random.default_rng(9), 10))
    female = BodyModelSet.from_dir(tmp_path, gender="female")
    assert female.smpl.num_betas == 10
    with pytest.raises(BodyModelFileError, match="SMPL_MALE.pkl"):
        BodyModelSet.from_dir(tmp_path, gender="male")
    np.save(tmp_path / "J_regressor_extra.npy", np.zeros((8, 6890)))
    with pytest.raises(BodyModelFileError, match="J_regressor_extra.npy has shape"):
        BodyModelSet.from_dir(tmp_path, gender="female")
