"""The compact model, the targets and the losses learn: a few steps on tiny exact-label images.

(The acceptance test on synthetic renders, "finds the right people", comes with ``meshfleet synth``.)
"""

import numpy as np
import pytest
import torch

from core.models import build_network
from core.nets.config import NetworkConfig
from core.train.augment import AugmentPlan, apply_plan
from core.train.batch import TrainBatch, collate, sample_arrays
from core.train.objective import ObjectiveConfig, compute_losses, forward_dense, make_targets
from jobs.synthetic import labelled_stick_figures


def fit(body_models, kind: str, input_size: int, steps: int, lr: float) -> list[dict[str, float]]:
    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    scenes = [labelled_stick_figures(body_models, rng, 72, 96, count) for count in (1, 2, 2)]
    rows = [sample_arrays(apply_plan(image, labels, AugmentPlan(), input_size), 3) for image, labels in scenes]
    batch = TrainBatch.from_arrays(collate(rows))
    net = build_network(NetworkConfig(kind, "small", input_size)).train()
    config = ObjectiveConfig.official(kind)
    body = body_models.smpl if kind == "romp" else body_models.smpla
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        dense = forward_dense(net, batch.image)
        terms = compute_losses(net, dense, make_targets(net, batch, config), batch, body, config)
        optimiser.zero_grad()
        terms.total.backward()
        optimiser.step()
        history.append({"total": terms.total.item(), **{k: v.item() for k, v in terms.raw.items()}})
    return history


def test_romp_small_overfits_three_images(body_models):
    history = fit(body_models, "romp", 96, steps=20, lr=2e-3)
    first, last = history[0], history[-3:]
    assert all(np.isfinite(h["total"]) for h in history)
    assert np.mean([h["total"] for h in last]) < 0.1 * first["total"]
    for term in ("center_map", "keypoints_2d", "mpjpe", "cam"):
        assert np.mean([h[term] for h in last]) < 0.6 * first[term], term


@pytest.mark.parametrize("kind", ["bev"])
def test_bev_small_losses_fall(body_models, kind):
    history = fit(body_models, kind, 128, steps=8, lr=1e-3)
    assert all(np.isfinite(h["total"]) for h in history)
    # the 3D centre map (weight 1000) dominates at first, and is what BEV's parser reads
    assert history[-1]["total"] < 0.25 * history[0]["total"]
    assert history[-1]["center_map_3d"] < 0.25 * history[0]["center_map_3d"]
    assert {"center_map_3d", "relative_depth", "relative_age"} <= set(history[0])
