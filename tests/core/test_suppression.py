import torch

from core.suppression import remove_outliers, suppress_duplicates


def _people(offsets_px):
    base = torch.rand(1, 71, 2) * 100
    return torch.cat([base + torch.tensor(o) for o in offsets_px])


def test_duplicates_lose_the_smaller_scale():
    torch.manual_seed(0)
    pj2d = _people([(0, 0), (1, 1), (300, 0)])
    scales = torch.tensor([0.5, 0.8, 0.5])
    keep = suppress_duplicates(pj2d, scales, torch.tensor([0.9, 0.1, 0.5]), 640, threshold=20)
    assert keep.tolist() == [False, True, True]
    keep = suppress_duplicates(pj2d, scales, torch.tensor([0.9, 0.1, 0.5]), 640, threshold=20, conf_based=True)
    assert keep.tolist() == [True, False, True]


def test_threshold_scales_with_image_size():
    torch.manual_seed(1)
    pj2d = _people([(0, 0), (20, 0)])
    scales = torch.tensor([1.0, 1.0])  # distance 20 px / (2 * 1.0) = 10
    confs = torch.ones(2)
    assert suppress_duplicates(pj2d, scales, confs, 640, threshold=9).all()
    assert not suppress_duplicates(pj2d, scales, confs, 640, threshold=11).all()
    assert suppress_duplicates(pj2d, scales, confs, 320, threshold=11).all()  # 11 * 320 / 640 < 10


def test_single_and_empty():
    assert suppress_duplicates(torch.zeros(1, 71, 2), torch.ones(1), torch.ones(1), 640, 20).tolist() == [True]
    assert suppress_duplicates(torch.zeros(0, 71, 2), torch.ones(0), torch.ones(0), 640, 20).numel() == 0


def test_outlier_is_far_and_small():
    trans = torch.tensor([[0.0, 0, 5], [0.5, 0, 5], [1.0, 0, 5.5], [-0.5, 0, 4.5], [0.0, 0, 60]])
    scales = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.1])
    assert remove_outliers(trans, scales, 1.6, 0.25).tolist() == [True, True, True, True, False]
    scales[4] = 0.3  # far but not small: kept
    assert remove_outliers(trans, scales, 1.6, 0.25).all()
    assert remove_outliers(trans[:2], scales[:2], 1.6, 0.25).all()  # fewer than 3: untouched
