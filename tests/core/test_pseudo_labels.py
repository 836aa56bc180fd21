"""Label geometry of pseudo-labels: mirroring, matching, the canonical camera, flipped pre-processing."""

import numpy as np
import pytest

from core.body_models import JOINT_NAMES
from core.predictor import ImagePreparer
from core.pseudo_labels import (
    JOINT_MIRROR,
    canonical_intrinsics,
    inside_image,
    joint_boxes,
    match_people,
    mirror_points2d,
    mirror_points3d,
)
from jobs.synthetic import draw_scene


def test_mirror_permutation_swaps_left_and_right():
    assert (JOINT_MIRROR[JOINT_MIRROR] == np.arange(71)).all()
    name = list(JOINT_NAMES)
    assert JOINT_MIRROR[name.index("L_Knee")] == name.index("R_Knee")
    assert JOINT_MIRROR[name.index("R_Hand_pinky")] == name.index("L_Hand_pinky")
    assert JOINT_MIRROR[name.index("Pelvis")] == name.index("Pelvis") and JOINT_MIRROR[54] == 59
    points = np.random.default_rng(0).uniform(0, 100, (3, 71, 2))
    width = np.array([100, 120, 90])
    assert np.allclose(mirror_points2d(mirror_points2d(points, width), width), points)
    assert np.allclose(mirror_points2d(points, width)[:, 0, 0], width - points[:, 0, 0])  # the pelvis stays
    joints = np.random.default_rng(1).normal(size=(2, 71, 3))
    assert np.allclose(mirror_points3d(mirror_points3d(joints)), joints)


def test_canonical_camera_of_an_image():
    focal, principal = canonical_intrinsics(np.array([100, 640]), np.array([140, 480]))
    assert focal == pytest.approx([443.4 * 140 / 512, 443.4 * 640 / 512])
    assert principal.tolist() == [[70.0, 50.0], [240.0, 320.0]]  # top pad 20 px / left pad 80 px


def test_visibility_and_boxes_clip_to_the_image():
    points = np.array([[[-5.0, 10.0], [20.0, 30.0], [50.0, 99.9]]])
    assert inside_image(points, np.array([100]), np.array([40])).tolist() == [[False, True, False]]
    assert joint_boxes(points, np.array([100]), np.array([40])).tolist() == [[0.0, 10.0, 40.0, pytest.approx(99.9)]]


def test_matching_finds_each_person_once():
    rng = np.random.default_rng(2)
    people = rng.uniform(0, 200, (3, 71, 2))
    other = people[[2, 0]] + 1.0  # person 1 has no counterpart; the others are 1 px off in x and y
    error = match_people(people, other)
    assert np.isinf(error[1]) and error[[0, 2]] == pytest.approx(np.sqrt(2) / np.linalg.norm(
        people[[0, 2], :24].max(1) - people[[0, 2], :24].min(1), axis=-1))
    assert np.isinf(match_people(people, other[:0])).all()


def test_flipped_preprocessing_is_the_mirror_image():
    image = draw_scene(90, 130, 2, seed=3)
    flipped = ImagePreparer("romp", hflip=True)(image)
    mirrored = ImagePreparer("romp")(np.ascontiguousarray(image[:, ::-1]))
    assert np.array_equal(flipped.inputs, mirrored.inputs) and not np.array_equal(
        flipped.inputs, ImagePreparer("romp")(image).inputs)
