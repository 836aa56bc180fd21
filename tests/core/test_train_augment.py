"""Augmentation keeps pixels, 2D labels and 3D labels consistent."""

import numpy as np
import pytest
import torch

from core.cameras import perspective_project
from core.preprocess import prepare_input
from core.train.augment import (
    NO_AUGMENT,
    AugmentConfig,
    AugmentPlan,
    apply_plan,
    jitter_colours,
    sample_plan,
)
from core.train.batch import TrainBatch, collate, sample_arrays
from core.train.labels import JOINT_FLIP, SMPL_FLIP, flip_thetas
from jobs.synthetic import labelled_stick_figures

SIZE = 128


@pytest.fixture(scope="module")
def scene(body_models):
    return labelled_stick_figures(body_models, np.random.default_rng(11), 96, 96, 2)


def reprojection(sample):
    """Normalised-canvas projection of the sample's 3D joints with its canonical translation."""
    return perspective_project(torch.from_numpy(sample.joints3d), torch.from_numpy(sample.cam_trans)).numpy()


def test_flip_tables_are_involutions():
    assert (JOINT_FLIP[JOINT_FLIP] == np.arange(71)).all()
    assert (JOINT_FLIP != np.arange(71)).sum() == 2 * 26  # pairs: 9 SMPL, 10 vertex, 1 LSP hip, 6 H36M
    assert (SMPL_FLIP[SMPL_FLIP] == np.arange(24)).all()
    thetas = np.random.default_rng(0).normal(size=(3, 72))
    np.testing.assert_array_equal(flip_thetas(flip_thetas(thetas)), thetas)


def test_identity_plan_is_the_inference_preprocessing(scene):
    image, labels = scene
    sample = apply_plan(image, labels, AugmentPlan(), SIZE)
    np.testing.assert_array_equal(sample.image, prepare_input(image, SIZE)[0])
    # the canonical camera is the annotation camera: the refit translation is the true hip midpoint
    hips = labels.joints3d[:, [45, 46]].mean(1)
    np.testing.assert_allclose(sample.cam_trans, hips, atol=1e-4)
    np.testing.assert_allclose(reprojection(sample), sample.joints2d, atol=1e-5)
    np.testing.assert_allclose(sample.joints3d[:, [45, 46]].mean(1), 0.0, atol=1e-6)


def test_flipped_sample_mirrors_the_original(scene):
    image, labels = scene
    plain = apply_plan(image, labels, AugmentPlan(), SIZE)
    flipped = apply_plan(image, labels, AugmentPlan(flip=True), SIZE)
    np.testing.assert_array_equal(flipped.image, plain.image[:, ::-1])  # square image: exact mirror
    mirror2d, mirror3d = np.array([-1.0, 1.0]), np.array([-1.0, 1.0, 1.0])
    # flipping back (mirror, swap left/right) gives the original labels
    np.testing.assert_allclose((flipped.joints2d * mirror2d)[:, JOINT_FLIP], plain.joints2d, atol=1e-6)
    np.testing.assert_allclose((flipped.joints3d * mirror3d)[:, JOINT_FLIP], plain.joints3d, atol=1e-6)
    np.testing.assert_array_equal(flipped.joints2d_valid[:, JOINT_FLIP], plain.joints2d_valid)
    np.testing.assert_allclose(flip_thetas(flipped.smpl_thetas), plain.smpl_thetas, atol=1e-6)
    np.testing.assert_allclose(flipped.cam_trans * mirror3d, plain.cam_trans, atol=1e-4)
    np.testing.assert_allclose(flipped.bbox[:, [2, 1, 0, 3]] * [-1, 1, -1, 1], plain.bbox, atol=1e-6)
    np.testing.assert_allclose(reprojection(flipped), flipped.joints2d, atol=1e-5)


def test_rotation_about_the_principal_point_stays_exact(scene):
    image, labels = scene
    sample = apply_plan(image, labels, AugmentPlan(rotation_deg=25.0), SIZE)
    np.testing.assert_allclose(reprojection(sample), sample.joints2d, atol=1e-5)
    plain = apply_plan(image, labels, AugmentPlan(), SIZE)
    angle = np.radians(25.0)  # counter-clockwise on screen = clockwise in y-down maths coordinates
    rot = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(sample.joints2d, plain.joints2d @ rot.T, atol=1e-5)


def test_crop_keeps_projection_consistent_and_pixels_follow(scene):
    image, labels = scene
    box = (30, 10, 80, 60)  # a 50 px square around part of the scene, rescaled to 128 px
    sample = apply_plan(image, labels, AugmentPlan(rotation_deg=-10.0, flip=True, crop=box), SIZE)
    plain = apply_plan(image, labels, AugmentPlan(), SIZE)
    # 2D labels are exact image geometry: distances grow by 96 / 50 (rotation and flip keep them)
    def span(s):
        return np.linalg.norm(s.joints2d[:, 15] - s.joints2d[:, 0], axis=-1)  # jaw - pelvis: on the midline

    np.testing.assert_allclose(span(sample), span(plain) * 96 / 50, rtol=1e-5)
    # the canonical camera cannot express a zoomed, off-centre crop exactly (the fitted person moves
    # 1.9x closer, so its perspective changes): the refit error stays a few percent of its size
    error = np.linalg.norm(reprojection(sample) - sample.joints2d, axis=-1).mean(-1)
    extent = np.ptp(sample.joints2d, axis=1).max(-1)
    assert sample.has_cam.all() and (error < 0.1 * extent).all()
    # pixels follow the labels: bones are drawn between the 24 skeleton joints, so those that are
    # visible sit on (or next to) bright pixels
    px = ((sample.joints2d[:, :24] + 1) / 2 * SIZE).astype(int)
    ok = sample.joints2d_valid[:, :24] & (px >= 2).all(-1) & (px < SIZE - 2).all(-1)
    around = [sample.image[y - 2:y + 3, x - 2:x + 3].max() for x, y in px[ok]]
    assert ok.sum() > 10 and np.mean(np.array(around) > 60) > 0.95


def test_sample_plan_probabilities(scene):
    image, labels = scene
    rng = np.random.default_rng(0)
    assert sample_plan(rng, labels, 96, 96, NO_AUGMENT) == AugmentPlan()
    always = AugmentConfig(flip_prob=1, rotate_prob=1, crop_prob=1, color_jitter_prob=1, occlusion_prob=1)
    for _ in range(5):
        plan = sample_plan(rng, labels, 96, 96, always, SIZE)
        assert plan.flip and plan.crop is not None and plan.jitter is not None and plan.occluders
        assert -30 <= plan.rotation_deg <= 30
        left, top, right, bottom = plan.crop
        assert right - left == bottom - top > 0
        sample = apply_plan(image, labels, plan, SIZE)
        assert sample.image.shape == (SIZE, SIZE, 3)
        assert sample.joints2d_valid.any()  # the crop is around at least one person


def test_pixel_augmentations():
    rgb = np.random.default_rng(1).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    np.testing.assert_array_equal(jitter_colours(rgb, (1.0, 1.0, 1.0)), rgb)
    assert jitter_colours(rgb, (1.1, 1.0, 1.0)).astype(float).mean() > rgb.mean()
    gray = jitter_colours(rgb, (1.0, 1.0, 0.0))
    assert np.abs(gray.astype(int) - gray[..., :1]).max() <= 1  # saturation 0: grey


def test_occluders_and_batch_padding(scene):
    image, labels = scene
    plan = AugmentPlan(occluders=((5, 6, 20, 30, 1, 2, 3),))
    sample = apply_plan(image, labels, plan, SIZE)
    assert (sample.image[6:30, 5:20] == [1, 2, 3]).all()
    rows = [sample_arrays(sample, 4), sample_arrays(sample, 1)]
    assert rows[1]["person_valid"].tolist() == [True] and not rows[1]["all_labelled"]
    batch = TrainBatch.from_arrays(collate([rows[0], sample_arrays(sample, 4)]))
    assert batch.person_valid.tolist() == [[True, True, False, False]] * 2
    assert batch.depth_layer[0, 2] == -1 and batch.joints3d.shape == (2, 4, 71, 3)
    bad = collate([rows[0]])
    del bad["has_cam"]
    with pytest.raises(ValueError, match="has_cam"):
        TrainBatch.from_arrays(bad)
