"""Pseudo-label filters: each drops exactly what it should at its threshold (hand-made cases)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.pseudo_filters import (
    RULES,
    FilterThresholds,
    apply_rules,
    confidence_weight,
    depth_scale_ratio,
    in_frame_fraction,
    joint_limit_violation,
    max_abs_beta,
    smooth_pose_deviation,
    smooth_translation_deviation,
    track_acceleration,
    track_frames,
    track_speed,
)
from core.scenes.poses import JOINT, KEYFRAMES, euler_to_axis_angle


def keep_of(scores: dict, **thresholds) -> np.ndarray:
    return apply_rules({k: np.asarray(v, float) for k, v in scores.items()}, FilterThresholds(**thresholds)).keep


def test_thresholds_are_inclusive_nan_passes_inf_fails():
    conf = [0.49, 0.5, 0.51, np.nan]
    assert keep_of({"center_conf": conf}, min_center_conf=0.5).tolist() == [False, True, True, True]
    depth = [0.4, 0.5, 10.0, 40.0, 41.0, np.inf]
    assert keep_of({"depth_m": depth}).tolist() == [False, True, True, True, False, False]
    flip = [0.0, 0.1, 0.11, np.inf, np.nan]
    assert keep_of({"flip_error": flip}, max_flip_error=0.1).tolist() == [True, True, False, False, True]


def test_sequential_and_marginal_counts():
    scores = {"center_conf": np.array([0.9, 0.1, 0.1, 0.9]), "in_frame": np.array([1.0, 1.0, 0.2, 0.2])}
    out = apply_rules(scores, FilterThresholds())
    assert out.names == ("center_conf", "in_frame")  # rules without a score are not applied
    assert (~out.passed).sum(0).tolist() == [2, 2]  # marginal: each filter alone
    assert out.first_failure.tolist() == [-1, 0, 0, 1]  # sequential: in_frame only drops person 3
    assert out.keep.tolist() == [True, False, False, False]
    assert [r.name for r in RULES][:2] == ["center_conf", "in_frame"]


def test_in_frame_fraction_counts_the_24_body_joints():
    points = np.full((1, 71, 2), 50.0)
    points[0, :9, 0] = [-0.1, 100.0, 140.0, 139.9, 0.0, -5, 200, 70, 70]  # w = 140: x in [0, 140)
    points[0, 7:9, 1] = [100.0, -1.0]  # h = 100: y = 100 is outside
    points[0, 24:, 0] = -1000  # the other 47 joints do not count
    frac = in_frame_fraction(points, np.array([100]), np.array([140]))
    inside = 24 - 6  # -0.1, 140, -5, 200 and the two y's out; 100.0, 139.9 and 0.0 in
    assert frac[0] == pytest.approx(inside / 24)
    assert keep_of({"in_frame": frac}, min_in_frame=inside / 24).all()
    assert not keep_of({"in_frame": frac}, min_in_frame=inside / 24 + 1e-6).any()


def test_shape_bound_ignores_the_age_offset():
    betas = np.zeros((3, 11))
    betas[0, 10] = 5.0  # BEV's age offset: not a shape coefficient
    betas[1, 3] = -3.0
    betas[2, 9] = 3.01
    assert max_abs_beta(betas).tolist() == [0.0, 3.0, pytest.approx(3.01)]
    assert keep_of({"max_abs_beta": max_abs_beta(betas)}).tolist() == [True, True, False]


def _pose(**euler_deg) -> np.ndarray:
    euler = np.zeros((24, 3))
    for name, angles in euler_deg.items():
        euler[JOINT[name]] = angles
    return euler_to_axis_angle(euler)


def test_joint_limits_library_poses_pass_and_backward_knees_fail():
    library = np.stack([euler_to_axis_angle(e) for e in KEYFRAMES.values()])
    assert joint_limit_violation(library).max() < 1e-6
    bent_elbow = _pose(l_elbow=(0, -120, 0))  # a real 120 deg bend: the other Euler decomposition is 60 deg
    assert joint_limit_violation(bent_elbow[None])[0] < 1e-6
    backward_knee = _pose(l_knee=(-40, 0, 0))  # the knee flexes to +x only (0..135)
    assert joint_limit_violation(backward_knee[None])[0] == pytest.approx(40.0, abs=1e-6)
    twisted_neck = _pose(neck=(0, 80, 0))  # neck twist limit 35 deg
    assert joint_limit_violation(twisted_neck[None])[0] == pytest.approx(45.0, abs=1e-6)
    v = joint_limit_violation(np.stack([bent_elbow, backward_knee, twisted_neck]))
    assert keep_of({"limit_violation_deg": v}, max_limit_violation_deg=40).tolist() == [True, True, False]


def test_depth_scale_ratio_is_one_for_a_perspective_projection():
    rng = np.random.default_rng(0)
    joints = rng.normal(0, 0.4, (2, 71, 3)) * [1, 1, 0.01] + [0.3, -0.1, 5.0]
    focal = np.array([500.0, 500.0])
    points = joints[..., :2] / joints[..., 2:] * focal[:, None, None] + 320
    points[1] = (points[1] - points[1].mean(0)) * 2 + points[1].mean(0)  # the image twice as large as the 3D says
    ratio = depth_scale_ratio(joints, points, focal)
    assert ratio[0] == pytest.approx(1.0, abs=0.01) and ratio[1] == pytest.approx(2.0, abs=0.02)
    assert keep_of({"depth_scale_ratio": ratio}).tolist() == [True, False]
    flat = joints.copy()
    flat[..., :2] = 0  # no extent: no scale to compare
    assert np.isinf(depth_scale_ratio(flat, points, focal)).all()


def test_track_length():
    assert track_frames(np.array([4, 4, 7, 4, -1])).tolist() == [3, 3, 1, 3, 0]
    frames = track_frames(np.array([1] * 10 + [2] * 9))
    assert keep_of({"track_frames": frames}, min_track_frames=10).tolist() == [True] * 10 + [False] * 9


def test_speed_flags_the_outlying_frame_not_its_neighbours():
    t = np.arange(6) / 10.0  # 10 fps, walking 1 m/s along x
    pos = np.stack([t, np.zeros(6), np.full(6, 5.0)], 1)
    pos[3, 2] += 3.0  # a 3 m depth jump in one frame
    order = np.array([5, 0, 3, 1, 4, 2])  # rows need not be sorted
    speed = np.empty(6)
    speed[order] = track_speed(np.zeros(6, int), t[order], pos[order])
    assert speed[[0, 1, 5]] == pytest.approx([1.0, 1.0, 1.0])
    assert speed[3] > 25 and speed[2] < 12.5 and speed[4] < 12.5
    assert keep_of({"speed_mps": speed}).tolist() == [True, True, True, False, True, True]
    assert np.isnan(track_speed(np.array([0, -1]), np.array([0.0, 0.1]), np.zeros((2, 3)))).all()


def test_acceleration_is_zero_for_uniform_motion_and_large_for_a_jerk():
    t = np.array([0.0, 0.1, 0.2, 0.4, 0.5])  # a missing frame: non-uniform steps
    points = np.zeros((5, 24, 3))
    points[..., 0] = 2.0 * t[:, None]
    accel = track_acceleration(np.zeros(5, int), t, points)
    assert np.isnan(accel[[0, 4]]).all() and np.allclose(accel[1:4], 0, atol=1e-9)
    points[2, :, 1] += 0.5  # every joint jumps 0.5 m for one frame
    accel = track_acceleration(np.zeros(5, int), t, points)
    # y velocity 0 -> +5 -> -2.5 -> 0 m/s: 2 dv / (dt_prev + dt_next) at rows 1, 2, 3
    assert accel[1:4] == pytest.approx([2 * 5 / 0.2, 2 * 7.5 / 0.3, 2 * 2.5 / 0.3])
    assert keep_of({"accel_mps2": accel}).all()  # at most 50 m/s^2 < 100
    assert keep_of({"accel_mps2": accel}, max_accel_mps2=40).tolist() == [True, False, False, True, True]


def test_smoothed_track_deviation():
    trans = np.array([[0.0, 0.0, 10.0], [0.0, 0.0, 10.0]])
    smoothed = np.array([[0.0, 0.0, 10.0], [0.0, 1.5, 10.0]])
    dev = smooth_translation_deviation(trans, smoothed)
    assert dev.tolist() == [0.0, 0.15]
    assert keep_of({"smooth_trans_dev": dev}).tolist() == [True, False]
    rng = np.random.default_rng(1)
    thetas = rng.normal(0, 0.5, (2, 72))
    turned = (Rotation.from_rotvec(thetas.reshape(-1, 3)) * Rotation.from_euler("z", 20, degrees=True)).as_rotvec()
    turned = turned.reshape(2, 72)
    assert smooth_pose_deviation(thetas, thetas) == pytest.approx([0, 0], abs=1e-6)
    assert smooth_pose_deviation(thetas, turned) == pytest.approx([20, 20])
    assert keep_of({"smooth_pose_deg": smooth_pose_deviation(thetas, turned)}).tolist() == [False, False]


def test_confidence_weight_combination():
    scores = {"center_conf": np.array([0.8, 0.8, 1.2, 0.5]), "in_frame": np.array([1.0, 0.75, 1.0, 1.0]),
              "flip_error": np.array([0.0, 0.05, np.nan, np.inf])}
    weight = confidence_weight(scores, FilterThresholds())
    assert weight == pytest.approx([0.8, 0.8 * 0.75 * 0.75, 1.0, 0.0])
    assert weight.dtype == np.float32


def test_thresholds_are_checked():
    with pytest.raises(ValueError, match="min_depth_m"):
        FilterThresholds(min_depth_m=50)
    with pytest.raises(ValueError, match="max_speed_mps"):
        FilterThresholds(max_speed_mps=-1)
