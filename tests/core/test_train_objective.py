"""The objective honours validity flags and per-person weights, and the official weights."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from core.models import build_network
from core.nets.config import NetworkConfig
from core.train.augment import AugmentPlan, apply_plan
from core.train.batch import TrainBatch, collate, sample_arrays
from core.train.objective import (
    BEV_V6_WEIGHTS,
    ROMP_V1_WEIGHTS,
    ObjectiveConfig,
    compute_losses,
    forward_dense,
    make_targets,
)
from jobs.synthetic import labelled_stick_figures

PERSON_TERMS = ("keypoints_2d", "mpjpe", "pa_mpjpe", "pose", "shape", "prior", "cam")


@pytest.fixture(scope="module")
def setup(body_models):
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    rows = [sample_arrays(apply_plan(*labelled_stick_figures(body_models, rng, 64, 64, 2), AugmentPlan(), 64), 3)
            for _ in range(2)]
    batch = TrainBatch.from_arrays(collate(rows))
    net = build_network(NetworkConfig("romp", "small", 64)).eval()
    with torch.no_grad():
        dense = forward_dense(net, batch.image)
    return net, dense, batch, body_models.smpl


def terms_of(setup, batch):
    net, dense, _, body = setup
    config = ObjectiveConfig.official("romp")
    with torch.no_grad():
        return {k: v.item() for k, v in compute_losses(net, dense, make_targets(net, batch, config), batch, body,
                                                       config).raw.items()}


def edited(batch, **changes):
    values = {name: getattr(batch, name).clone() for name in batch.__dataclass_fields__}
    for name, (index, value) in changes.items():
        values[name][index] = value
    return TrainBatch(**values)


def test_zero_weight_person_does_not_count(setup):
    batch = setup[2]
    silent = edited(batch, weight=((0, 1), 0.0))
    base = terms_of(setup, silent)
    noise = torch.randn(71, 3)
    scrambled = edited(silent, joints3d=((0, 1), noise), smpl_thetas=((0, 1), torch.randn(72)),
                       smpl_betas=((0, 1), torch.randn(11) * 3), cam_trans=((0, 1), torch.tensor([2.0, 1.0, 9.0])))
    after = terms_of(setup, scrambled)
    for name in PERSON_TERMS:
        assert after[name] == pytest.approx(base[name], rel=1e-6), name
    # with its weight back, the scrambled labels do count
    loud = terms_of(setup, edited(scrambled, weight=((0, 1), 1.0)))
    assert loud["mpjpe"] > after["mpjpe"] and loud["pose"] != pytest.approx(after["pose"])


def test_validity_flags_switch_terms_off(setup):
    batch = setup[2]
    base = terms_of(setup, batch)
    no_smpl = edited(batch, has_smpl=((0, 0), False))
    a = terms_of(setup, no_smpl)
    b = terms_of(setup, edited(no_smpl, smpl_thetas=((0, 0), torch.randn(72))))
    assert a["pose"] == pytest.approx(b["pose"]) and a["pose"] != pytest.approx(base["pose"])
    no_3d = edited(batch, has_joints3d=((1, 0), False), has_cam=((1, 0), False))
    c = terms_of(setup, no_3d)
    d = terms_of(setup, edited(no_3d, joints3d=((1, 0), torch.randn(71, 3)), cam_trans=((1, 0), torch.ones(3))))
    for name in ("mpjpe", "pa_mpjpe", "cam"):
        assert c[name] == pytest.approx(d[name]), name
    # an image whose people are not all annotated gives no centre-map term
    partial = terms_of(setup, edited(batch, all_labelled=((0,), False)))
    assert partial["center_map"] != pytest.approx(base["center_map"])


def test_uniform_weights_scale_out(setup):
    batch = setup[2]
    base = terms_of(setup, batch)
    doubled = terms_of(setup, replace(batch, weight=batch.weight * 2))
    for name in PERSON_TERMS:
        assert doubled[name] == pytest.approx(base[name], rel=1e-6), name


def test_official_weights():
    assert (ROMP_V1_WEIGHTS.mpjpe, ROMP_V1_WEIGHTS.pa_mpjpe, ROMP_V1_WEIGHTS.keypoints_2d, ROMP_V1_WEIGHTS.pose,
            ROMP_V1_WEIGHTS.shape, ROMP_V1_WEIGHTS.prior, ROMP_V1_WEIGHTS.center_map,
            ROMP_V1_WEIGHTS.cam) == (200, 360, 400, 80, 6, 1.6, 160, 200)
    assert (BEV_V6_WEIGHTS.shape, BEV_V6_WEIGHTS.center_map, BEV_V6_WEIGHTS.center_map_3d,
            BEV_V6_WEIGHTS.relative_age, BEV_V6_WEIGHTS.relative_depth) == (60, 100, 1000, 4000, 400)
    custom = ObjectiveConfig.official("bev", match_to_peaks=True)
    assert custom.match_to_peaks and custom.max_supervised == 64 and custom.weights == BEV_V6_WEIGHTS
