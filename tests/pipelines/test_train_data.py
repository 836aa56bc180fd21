"""The training mix: --data parsing, per-set shares of an epoch (official MixedDataset semantics), the
plan's split over workers, and labels rows -> ImageLabels."""

from __future__ import annotations

import numpy as np
import pytest

from core.train.schedule import lr_factor
from pipelines.train_data import (
    DataSource,
    TrainDataError,
    epoch_samples,
    parse_data_source,
    plan_samples,
    rank_rows,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("data/a", DataSource("data/a", 1.0)), ("data/a:0.25", DataSource("data/a", 0.25)),
    ("s3://bucket/set", DataSource("s3://bucket/set", 1.0)), ("s3://bucket/set:2", DataSource("s3://bucket/set", 2.0)),
    ("C:/x", DataSource("C:/x", 1.0)),
])
def test_parse_data_source(text, expected):
    assert parse_data_source(text) == expected


@pytest.mark.parametrize("text", ["data/a:heavy", "data/a:-1", "data/a:nan"])
def test_bad_weights_are_refused(text):
    with pytest.raises(TrainDataError, match="weight"):
        parse_data_source(text)


def test_epoch_shares_follow_the_weights():
    sizes, weights = [100, 20, 50], [1.0, 3.0, 0.0]
    samples = epoch_samples(sizes, weights, seed=3, epoch=0)
    assert len(samples) == 120  # the active sets' total size; the weight-0 set takes no part
    counts = np.bincount(samples[:, 0], minlength=3)
    assert counts.tolist() == [30, 90, 0]
    # set 1 is oversampled 4.5x: every image at least 4 times, at most 5; set 0 subsampled, no repeats
    per_image = np.bincount(samples[samples[:, 0] == 1, 1], minlength=20)
    assert per_image.min() == 4 and per_image.max() == 5
    assert len(np.unique(samples[samples[:, 0] == 0, 1])) == 30
    assert not np.array_equal(samples, epoch_samples(sizes, weights, seed=3, epoch=1))
    assert np.array_equal(samples, epoch_samples(sizes, weights, seed=3, epoch=0))


def test_plan_is_independent_of_workers_and_resume():
    sizes, weights = [7, 5], [1.0, 1.0]
    whole = plan_samples(sizes, weights, seed=1, start=0, stop=40)
    assert whole[:, 0].tolist() == list(range(40)) and set(whole[:, 3]) == {0, 1, 2, 3}
    assert np.array_equal(plan_samples(sizes, weights, seed=1, start=16, stop=40), whole[16:])
    # global batch 8: two workers of 4 see exactly the one-worker batches, split in halves
    halves = [rank_rows(whole, 4, 2, r) for r in (0, 1)]
    for step in range(5):
        batch = whole[step * 8:(step + 1) * 8]
        assert np.array_equal(np.concatenate([h[step * 4:(step + 1) * 4] for h in halves]), batch)


def test_schedules():
    assert lr_factor(0, 100, 10, "cosine", 0.05) == pytest.approx(1 / 11)
    assert lr_factor(10, 100, 10, "cosine", 0.05) == pytest.approx(1.0)
    assert lr_factor(99, 100, 10, "cosine", 0.05) == pytest.approx(0.05)
    assert [lr_factor(s, 100, 0, "step", 0.0) for s in (0, 60, 85, 99)] == pytest.approx([1, 0.1, 0.01, 0.01])
    assert lr_factor(50, 100, 0, "constant", 0.0) == 1.0
