import torch

from core.centers import MAX_PERSONS, parse_center_map_2d, parse_center_map_3d


def test_2d_peaks_thresholds_and_order():
    maps = torch.zeros(2, 1, 64, 64)
    maps[0, 0, 10, 20] = 0.9
    maps[0, 0, 11, 21] = 0.5  # inside the 5x5 neighbourhood of a stronger peak: suppressed
    maps[0, 0, 40, 5] = 0.6
    maps[0, 0, 50, 50] = 0.25  # equal to the threshold: not kept (strict >)
    maps[1, 0, 0, 63] = 0.3
    peaks = parse_center_map_2d(maps, 0.25)
    assert peaks.batch_ids.tolist() == [0, 0, 1]
    assert peaks.index[:, 0].tolist() == [10 * 64 + 20, 40 * 64 + 5, 0 * 64 + 63]
    torch.testing.assert_close(peaks.scores, torch.tensor([0.9, 0.6, 0.3]))


def test_2d_at_most_64_per_image():
    maps = torch.zeros(1, 1, 64, 64)
    maps[0, 0, ::4, ::4] = torch.rand(16, 16) + 1  # 256 separated peaks
    assert len(parse_center_map_2d(maps, 0.0).scores) == MAX_PERSONS


def test_3d_peaks():
    maps = torch.zeros(2, 64, 128, 128)
    maps[1, 30, 100, 7] = 0.7
    maps[1, 31, 100, 8] = 0.65  # 3D neighbour: suppressed
    maps[1, 3, 5, 5] = 0.2
    maps[0, 63, 127, 127] = 0.09
    peaks = parse_center_map_3d(maps, 0.08)
    assert peaks.batch_ids.tolist() == [0, 1, 1]
    assert peaks.index.tolist() == [[63, 127, 127], [30, 100, 7], [3, 5, 5]]
    torch.testing.assert_close(peaks.scores, torch.tensor([0.09, 0.7, 0.2]))
