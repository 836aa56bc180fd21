"""The shared greedy matcher: the official quirks, their corrections, and the two costs."""

import numpy as np
import pytest

from eval.matching import frobenius_cost, greedy_fixed, greedy_official, keypoint_box_iou, spectral_cost


def square(x0: float, y0: float, size: float = 100.0) -> np.ndarray:
    return np.array([[x0, y0], [x0 + size, y0], [x0, y0 + size], [x0 + size, y0 + size]])


def test_spectral_cost_is_the_largest_singular_value_not_frobenius():
    pred = np.zeros((1, 2, 2))
    gt = np.array([[[3.0, 0.0], [0.0, 4.0]]])
    assert spectral_cost(pred, gt)[0, 0] == pytest.approx(4.0)
    assert frobenius_cost(pred, gt)[0, 0] == pytest.approx(5.0)
    only_first = np.array([[True, False]])
    assert spectral_cost(pred, gt, only_first)[0, 0] == pytest.approx(3.0)
    assert frobenius_cost(pred, gt, only_first)[0, 0] == pytest.approx(3.0)


def test_box_iou_counts_the_last_pixel():
    assert keypoint_box_iou(square(0, 0, 9), square(0, 0, 9)) == pytest.approx(1.0)
    assert keypoint_box_iou(square(0, 0, 9), square(5, 0, 9)) == pytest.approx(50 / 150)
    assert keypoint_box_iou(square(0, 0, 9), square(500, 500, 9)) == 0.0


def test_official_rejection_counter_stops_before_a_valid_pair():
    # pred 0 matches gt 0; pred 1 is cheapest to gt 0 too, but far from it in IoU terms: with two
    # predictions, one match + one rejection ends the loop before (pred 1, gt 1) is visited.
    pred = [square(0, 0), square(1000, 0)]
    gt = [square(0, 0), square(1000, 0, 120)]
    cost = np.array([[0.0, 50.0], [1.0, 2.0]])

    def iou(p, g):
        return keypoint_box_iou(pred[p], gt[g])

    official = greedy_official(cost, iou, 0.1)
    assert official.pairs == [(0, 0)] and official.rejections == 1
    fixed = greedy_fixed(cost, iou, 0.1)
    assert fixed.pairs == [(0, 0), (1, 1)]


def test_official_invalid_gt_is_consumed_and_leaves_its_prediction_free():
    pred = [square(0, 0), square(300, 0)]
    gt = [square(0, 0), square(300, 0)]
    cost = np.array([[0.0, 9.0], [5.0, 1.0]])
    valid = np.array([True, False])

    def iou(p, g):
        return keypoint_box_iou(pred[p], gt[g])

    official = greedy_official(cost, iou, 0.1, valid)
    assert official.pairs == [(0, 0)] and official.invalid == [1]
    fixed = greedy_fixed(cost, iou, 0.1, valid)
    assert fixed.pairs == [(0, 0)] and fixed.invalid == []


def test_ties_go_to_the_first_prediction_and_empty_inputs_match_nothing():
    pred = [square(0, 0), square(0, 0)]
    gt = [square(0, 0)]
    cost = np.zeros((2, 1))

    def iou(p, g):
        return keypoint_box_iou(pred[p], gt[g])

    assert greedy_official(cost, iou, 0.1).pairs == [(0, 0)]
    assert greedy_fixed(cost, iou, 0.1).pairs == [(0, 0)]
    assert greedy_official(np.zeros((0, 3)), iou, 0.1).pairs == []
    assert greedy_official(np.zeros((2, 0)), iou, 0.1).pairs == []
