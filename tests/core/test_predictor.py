import copy

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from core.cameras import FOCAL_512
from core.predictor import Predictor
from core.preprocess import SquarePad
from core.settings import PredictorSettings
from jobs.synthetic import draw_scene

ARRAY_SHAPES = {
    "center_conf": (), "cam": (3,), "cam_trans": (3,), "smpl_thetas": (72,),
    "joints": (71, 3), "pj2d_org": (71, 2),
}


@pytest.fixture(scope="module")
def romp(romp_net, body_models):
    return Predictor(romp_net, body_models, PredictorSettings(device="cpu", batch_size=4))


@pytest.fixture(scope="module")
def bev(bev_net, body_models):
    return Predictor(bev_net, body_models, PredictorSettings(device="cpu", batch_size=4))


@pytest.fixture(scope="module")
def romp_out(romp, scenes):
    return romp.predict(scenes)


@pytest.fixture(scope="module")
def bev_out(bev, scenes):
    return bev.predict(scenes[:2])


def _check_columns(out, num_betas):
    n = len(out)
    assert n > 0
    for name, shape in ARRAY_SHAPES.items():
        value = getattr(out, name)
        assert value.shape == (n, *shape) and value.dtype == np.float32, name
        assert np.isfinite(value).all(), name
    assert out.smpl_betas.shape == (n, num_betas) and out.smpl_betas.dtype == np.float32
    assert out.image_index.dtype == np.int64 and out.person.dtype == np.int32
    assert np.all(out.smpl_thetas[:, 66:] == 0)  # hands are not regressed
    for i in np.unique(out.image_index):
        assert out.person[out.image_index == i].tolist() == list(range((out.image_index == i).sum()))


def test_romp_columns(romp_out):
    _check_columns(romp_out, 10)
    assert romp_out.age_class is None and romp_out.verts is None
    assert (romp_out.cam[:, 0] > 0).all()  # s = 1.1 ** raw


def test_bev_columns(bev_out):
    _check_columns(bev_out, 11)
    kid = bev_out.smpl_betas[:, 10]
    expected = np.select([(kid > -0.05) & (kid <= 0.15), (kid > 0.15) & (kid <= 0.45),
                          (kid > 0.45) & (kid <= 0.75), (kid > 0.75) & (kid <= 1.0)], [0, 1, 2, 3], -1)
    np.testing.assert_array_equal(bev_out.age_class, expected)
    # BEV joints are root-aligned on the LSP hips
    np.testing.assert_allclose(bev_out.joints[:, [45, 46]].mean(1), 0, atol=1e-5)


def _assert_same(batched, singles, tolerances):
    """Same people per image (in any order: near-tied confidences may swap) with equal values."""
    assert [len(s) for s in singles] == [int((batched.image_index == i).sum()) for i in range(len(singles))]
    for i, single in enumerate(singles):
        rows = batched.rows_of(i)
        cost = np.abs(batched.smpl_thetas[rows][:, None] - single.smpl_thetas[None]).max(-1)
        match_b, match_s = linear_sum_assignment(cost)
        for name in ("center_conf", "cam", "cam_trans", "smpl_thetas", "smpl_betas", "joints", "pj2d_org"):
            np.testing.assert_allclose(getattr(batched, name)[rows][match_b], getattr(single, name)[match_s],
                                       atol=tolerances.get(name, 2e-4), err_msg=name)


def test_romp_batch_equals_single_calls(romp, romp_out, scenes):
    singles = [romp.predict([im]) for im in scenes]
    _assert_same(romp_out, singles, {"pj2d_org": 0.05, "cam_trans": 2e-3, "joints": 1e-4})


def test_bev_batch_equals_single_calls(bev, bev_out, scenes):
    singles = [bev.predict([im]) for im in scenes[:2]]
    _assert_same(bev_out, singles, {"pj2d_org": 0.05, "cam_trans": 1e-3, "joints": 1e-4})


def _project_documented(joints, trans, h, w):
    """The documented camera in original pixels: f = 443.4 * S / 512, c = (S/2 - left, S/2 - top)."""
    pad = SquarePad.of(h, w)
    f = FOCAL_512 * pad.side / 512
    p = joints + trans[:, None]
    u = f * p[..., 0] / (p[..., 2] + 1e-6) + pad.side / 2 - pad.left
    v = f * p[..., 1] / (p[..., 2] + 1e-6) + pad.side / 2 - pad.top
    return np.stack([u, v], -1)


def test_bev_pj2d_org_is_the_documented_camera(bev_out):
    h, w = bev_out.image_hw[bev_out.image_index].T
    for i in range(len(bev_out)):
        proj = _project_documented(bev_out.joints[i:i + 1], bev_out.cam_trans[i:i + 1], h[i], w[i])[0]
        np.testing.assert_allclose(bev_out.pj2d_org[i], proj, atol=0.02)


def test_romp_pj2d_org_is_weak_perspective_and_cam_trans_fits_it(romp_out):
    for i in range(len(romp_out)):
        h, w = romp_out.image_hw[romp_out.image_index[i]]
        pad = SquarePad.of(int(h), int(w))
        s, tx, ty = romp_out.cam[i]
        j = romp_out.joints[i]
        expected = np.stack([((s * j[:, 0] + tx) + 1) * pad.side / 2 - pad.left,
                             ((s * j[:, 1] + ty) + 1) * pad.side / 2 - pad.top], -1)
        np.testing.assert_allclose(romp_out.pj2d_org[i], expected, atol=0.05)
        if not romp_out.pnp_fallback[i]:
            # EPnP-RANSAC with a 20 px (512 canvas) reprojection threshold
            persp = _project_documented(j[None, :24], romp_out.cam_trans[i:i + 1], int(h), int(w))[0]
            err = np.linalg.norm(persp - romp_out.pj2d_org[i, :24], axis=1) * 512 / pad.side
            assert np.median(err) < 20


def test_crowd_mode_splits_long_images(bev, bev_net, body_models):
    assert bev.prepare_image(draw_scene(360, 1080, 3)).inputs.shape[0] == 20
    assert bev.prepare_image(draw_scene(360, 700, 3)).inputs.shape[0] == 1  # w/h < 2
    no_crowd = Predictor(bev_net, body_models, PredictorSettings(device="cpu", crowd=False))
    assert no_crowd.prepare_image(draw_scene(360, 1080, 3)).inputs.shape[0] == 1
    coarse = Predictor(bev_net, body_models, PredictorSettings(device="cpu", overlap_ratio=0.5, batch_size=8))
    image = draw_scene(128, 384, 4, seed=5)  # 1:3
    prepared = coarse.prepare_image(image)
    assert prepared.inputs.shape[0] == coarse_crops(128, 384, 0.5)
    out = coarse.predict([image])
    assert len(out) > 0
    _check_columns(out, 11)
    h, w = 128, 384
    proj = _project_documented(out.joints, out.cam_trans, h, w)
    np.testing.assert_allclose(out.pj2d_org, proj, atol=0.05)


def coarse_crops(h, w, overlap):
    pad = int(h * overlap)
    return int(np.ceil(((w + 2 * pad) / h - 1) / (1 - overlap))) + 1


def test_explicit_thresholds_win_over_crowd_defaults(bev_net, body_models):
    default = Predictor(bev_net, body_models, PredictorSettings(device="cpu"))
    assert default.thresholds.center == 0.08 and default.thresholds.overlap == 0.8
    explicit = Predictor(bev_net, body_models, PredictorSettings(device="cpu", center_thresh=0.3, nms_thresh=5))
    assert explicit.thresholds.center == 0.3 and explicit.thresholds.nms == 5
    plain = Predictor(bev_net, body_models, PredictorSettings(device="cpu", crowd=False))
    assert plain.thresholds.center == 0.1
    agora = PredictorSettings(bev_variant="bev_ft_agora")
    assert agora.thresholds("bev").center == 0.12 and agora.thresholds("bev").overlap == 0.46


def test_no_detection_gives_empty_columns(romp_net, body_models, scenes):
    silent = copy.deepcopy(romp_net)  # a center head whose last conv outputs -10 everywhere: no peak passes
    last = silent.final_layers[2][-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.constant_(last.bias, -10.0)
    out = Predictor(silent, body_models, PredictorSettings(device="cpu", center_thresh=1.0)).predict(scenes[:2])
    assert len(out) == 0
    assert out.joints.shape == (0, 71, 3) and out.smpl_betas.shape == (0, 10)
    assert out.image_hw.tolist() == [[240, 320], [200, 150]]


def test_save_verts(romp_net, body_models, scenes):
    out = Predictor(romp_net, body_models, PredictorSettings(device="cpu", save_verts=True)).predict(scenes[2:])
    assert out.verts.shape == (len(out), 6890, 3) and out.verts.dtype == np.float32


def test_settings_validation(romp_net, body_models):
    with pytest.raises(ValueError, match="needs a CUDA device"):
        Predictor(romp_net, body_models, PredictorSettings(device="cpu", precision="bf16"))
    with pytest.raises(ValueError, match="precision"):
        PredictorSettings(precision="int8")
    with pytest.raises(ValueError, match="overlap_ratio"):
        PredictorSettings(overlap_ratio=1.0)
    with pytest.raises(TypeError, match="ROMPNet or BEVNet"):
        Predictor(torch.nn.Linear(1, 1), body_models, PredictorSettings())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_fp32_and_bf16_match_cpu(romp_net, body_models, scenes, romp_out):
    gpu = Predictor(romp_net, body_models, PredictorSettings(device="cuda")).predict(scenes)
    np.testing.assert_allclose(gpu.smpl_thetas, romp_out.smpl_thetas, atol=1e-3)
    bf16 = Predictor(romp_net, body_models, PredictorSettings(device="cuda", precision="bf16")).predict(scenes)
    assert len(bf16) > 0 and np.isfinite(bf16.joints).all()
    Predictor(romp_net, body_models, PredictorSettings(device="cpu"))  # move back for other tests


@pytest.mark.parametrize("kind", ["romp", "bev"])
def test_compact_network_at_another_input_size(kind, body_models, scenes):
    """A meshfleet ``small`` network at 128 px input (16^2 / 32^2 maps) runs the same pipeline."""
    from core.models import build_network
    from core.nets.config import NetworkConfig

    torch.manual_seed(0)
    net = build_network(NetworkConfig(kind, "small", 128))
    predictor = Predictor(net, body_models, PredictorSettings(device="cpu", center_thresh=0.0, root_align=True))
    prepared = predictor.prepare(scenes[:2])
    assert prepared.inputs.shape == (2, 128, 128, 3)
    out = predictor.run(prepared)
    _check_columns(out, 10 if kind == "romp" else 11)
    assert set(out.image_index.tolist()) == {0, 1}
