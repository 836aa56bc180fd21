"""``eval.metrics.pa_mpjpe`` against independent Procrustes solvers, for batches of 1, 2, 3 and 7.

The VIBE-derived Procrustes that ROMP and TRACE copied decides whether to transpose from the batch
size, so batches of exactly 2 or 3 people were aligned wrongly; these tests pin the meshfleet
function to per-person answers found without it: a least-squares search over rotation, scale and
translation, and ``scipy.spatial.procrustes``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.spatial import procrustes
from scipy.spatial.transform import Rotation

from eval.metrics import mpjpe, pa_mpjpe, procrustes_align

SIZES = [1, 2, 3, 7]


def random_people(rng: np.random.Generator, n: int, joints: int = 14) -> np.ndarray:
    """(n, J, 3) non-planar point sets of body size (metres)."""
    return rng.normal(0.0, 0.3, (n, joints, 3)) * np.array([0.6, 1.0, 0.4])


def similarity_copy(rng: np.random.Generator, people: np.ndarray) -> np.ndarray:
    """Each person rotated (proper rotation), scaled and moved by its own random similarity."""
    out = np.empty_like(people)
    for i, person in enumerate(people):
        rot = Rotation.random(random_state=int(rng.integers(1 << 30))).as_matrix()
        out[i] = rng.uniform(0.5, 2.0) * person @ rot.T + rng.normal(0.0, 1.0, 3)
    return out


def brute_force_pa(pred: np.ndarray, gt: np.ndarray, starts: int = 8, seed: int = 0) -> float:
    """PA-MPJPE (mm) of one person (J, 3) by direct least squares over a proper rotation (rotation
    vector), log-scale and translation, from several random starts; the mean joint distance at the
    least-squares optimum, as PA-MPJPE reports it."""
    rng = np.random.default_rng(seed)

    def residual(x: np.ndarray) -> np.ndarray:
        moved = np.exp(x[3]) * pred @ Rotation.from_rotvec(x[:3]).as_matrix().T + x[4:]
        return (moved - gt).ravel()

    best = None
    for _ in range(starts):
        x0 = np.concatenate([Rotation.random(random_state=int(rng.integers(1 << 30))).as_rotvec(), [0.0],
                             gt.mean(0) - pred.mean(0)])
        fit = least_squares(residual, x0, xtol=1e-14, ftol=1e-14, gtol=1e-14)
        if best is None or fit.cost < best.cost:
            best = fit
    assert best is not None
    return float(np.linalg.norm(best.fun.reshape(-1, 3), axis=-1).mean() * 1000.0)


@pytest.mark.parametrize("n", SIZES)
def test_similarity_copy_aligns_to_zero(n):
    rng = np.random.default_rng(n)
    gt = random_people(rng, n)
    pred = similarity_copy(rng, gt)
    assert (mpjpe(pred, gt) > 50.0).all()  # far apart before alignment
    np.testing.assert_allclose(pa_mpjpe(pred, gt), 0.0, atol=1e-9)


@pytest.mark.parametrize("n", SIZES)
def test_matches_least_squares_search(n):
    rng = np.random.default_rng(10 + n)
    gt = random_people(rng, n)
    pred = similarity_copy(rng, gt + rng.normal(0.0, 0.04, gt.shape))
    expected = [brute_force_pa(p, g, seed=i) for i, (p, g) in enumerate(zip(pred, gt, strict=True))]
    np.testing.assert_allclose(pa_mpjpe(pred, gt), expected, rtol=1e-6)


@pytest.mark.parametrize("n", SIZES)
def test_matches_scipy_procrustes_disparity(n):
    """scipy standardises both sets; its disparity is |gt - aligned|^2 / |gt - mean(gt)|^2 of the
    optimal similarity fit (no reflection arises for a noisy rotated copy)."""
    rng = np.random.default_rng(20 + n)
    gt = random_people(rng, n)
    pred = similarity_copy(rng, gt + rng.normal(0.0, 0.03, gt.shape))
    aligned = procrustes_align(pred, gt)
    for i in range(n):
        _, _, disparity = procrustes(gt[i], pred[i])
        spread = ((gt[i] - gt[i].mean(0)) ** 2).sum()
        np.testing.assert_allclose(((aligned[i] - gt[i]) ** 2).sum() / spread, disparity, rtol=1e-8)


@pytest.mark.parametrize("n", SIZES)
def test_mirrored_prediction_is_not_undone(n):
    """A reflected copy cannot be aligned by a rotation: PA-MPJPE stays > 0 and equals the best
    proper-rotation fit, while a Procrustes that admits reflections (scipy) aligns it exactly."""
    rng = np.random.default_rng(30 + n)
    gt = random_people(rng, n)
    pred = similarity_copy(rng, gt * np.array([-1.0, 1.0, 1.0]))
    ours = pa_mpjpe(pred, gt)
    assert (ours > 20.0).all()
    for i in range(n):
        assert procrustes(gt[i], pred[i])[2] < 1e-20
        np.testing.assert_allclose(ours[i], brute_force_pa(pred[i], gt[i], seed=i), rtol=1e-6)


@pytest.mark.parametrize("n", SIZES)
def test_each_person_independent_of_batch(n):
    """The value of a person does not depend on who else is in the batch (the 2-or-3 bug did)."""
    rng = np.random.default_rng(40 + n)
    gt = random_people(rng, n)
    pred = similarity_copy(rng, gt + rng.normal(0.0, 0.05, gt.shape))
    alone = np.concatenate([pa_mpjpe(pred[i:i + 1], gt[i:i + 1]) for i in range(n)])
    np.testing.assert_allclose(pa_mpjpe(pred, gt), alone, rtol=1e-12)
