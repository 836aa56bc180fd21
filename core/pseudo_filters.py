"""Pseudo-label filters: per-person scores of predictions, named thresholds, keep masks, weights.

Every filter is a :class:`Rule`: a score (one number per person, from the functions below) and a
named threshold of :class:`FilterThresholds` on one or both sides. A person passes a rule when the
score is on the kept side; a NaN score means "does not apply" (video rules on image rows, a track
end without a neighbour) and passes; ``inf`` (no match in the other pass) fails. Pseudo-labelling
in the literature filters on detector confidence and fit quality (HMR 2.0 / 4D-Humans; CameraHMR
keeps 2D joints with confidence > 0.7 and fits with loss < 30); here every rule reads what the
network itself predicted, so the rules check confidence, visibility, plausibility and consistency.

Shapes: N people; ``thetas`` (N, 72) axis-angle; ``betas`` (N, 10 | 11); joints (N, 71, 3) m in
the camera frame; ``points`` (N, 71, 2) px; ``track_id`` (N,) int, -1 = untracked.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy.spatial.transform import Rotation

from core.scenes.poses import EULER_ORDER, LIMITS

BODY_JOINTS = 24
LIMITED_JOINTS = tuple(range(1, 22))  # the pelvis is free and the hands are not predicted (always 0)


@dataclass(frozen=True)
class FilterThresholds:
    """The named thresholds and their defaults (the rationale of each; README "Pseudo-labels").

    min_center_conf 0.5: centre heat-map confidence. ROMP / BEV's own detection thresholds (0.25 /
      0.1) are tuned for recall; labels need precision (CameraHMR keeps 2D joints with confidence
      > 0.7, on ViTPose's scale). Check the report's histogram for a corpus.
    min_in_frame 0.6: fraction of the 24 body joints inside the image. CMU Panoptic's evaluation
      keeps a person with > 5 of 14 joints inside (36 %); for a label the body outside the frame is
      unconstrained by the image, so a majority is required.
    max_abs_beta 3.0: largest |beta| of the 10 shape coefficients, which are PCA coefficients in
      standard deviations of SMPL's training bodies (Loper et al. 2015): beyond 3 is outside 99.7 %
      of the population per coefficient.
    max_limit_violation_deg 25: degrees beyond the American Academy of Orthopaedic Surgeons' normal
      active ranges of motion (core.scenes.poses.LIMITS) on the worst axis of the worst joint. The
      margin admits passive range beyond the active norm; it drops impossible poses (knees or elbows
      bent backwards, heads turned past the shoulder) that a failed regression produces.
    min_depth_m 0.5, max_depth_m 40: cam_trans z. Nearer, the FOV-60 view spans < 0.58 m (a head
      and shoulders); farther, an adult (1.7 m) is < 4 % of the image side (19 px of 512), at the
      resolution of the 64 x 64 centre map (8 px cells).
    max_depth_scale_ratio 1.5: depth vs the depth implied by the person's 2D and 3D extents
      (z_implied = f * 3D spread / 2D spread), as max(r, 1/r); a larger ratio means the 3D body and
      its image disagree in size (e.g. a failed PnP translation).
    min_track_frames 10: frames of the person's track (videos); a third of a second at 30 fps.
      Shorter tracks are mostly flicker that the tracker never associated.
    max_speed_mps 12.5: root speed (videos), the smaller of the speeds into and out of the frame;
      the fastest human sprint peaks near 12.4 m/s, so faster is a depth or identity jump.
    max_accel_mps2 100: mean acceleration of the 24 root-relative body joints (videos), ~10 g over
      the whole body; single joints may peak higher, the body's mean does not.
    max_smooth_trans_dev 0.1: |raw - smoothed cam_trans| / smoothed depth (videos): 10 % of the depth.
    max_smooth_pose_deg 15: mean rotation angle between the raw and the smoothed body-joint rotations
      (videos).
    max_flip_error 0.1, max_agree_error 0.1: mean 24-joint 2D distance to the person's match in the
      mirrored pass / the second checkpoint's pass, as a fraction of the body-box diagonal: the usual
      loose correctness bound of 2D pose (PCK at 0.1 of the box size).
    """

    min_center_conf: float = 0.5
    min_in_frame: float = 0.6
    max_abs_beta: float = 3.0
    max_limit_violation_deg: float = 25.0
    min_depth_m: float = 0.5
    max_depth_m: float = 40.0
    max_depth_scale_ratio: float = 1.5
    min_track_frames: int = 10
    max_speed_mps: float = 12.5
    max_accel_mps2: float = 100.0
    max_smooth_trans_dev: float = 0.1
    max_smooth_pose_deg: float = 15.0
    max_flip_error: float = 0.1
    max_agree_error: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not value >= 0:  # also refuses NaN
                raise ValueError(f"{f.name} must be >= 0, not {value}")
        if not 0 <= self.min_center_conf <= 1 or not 0 <= self.min_in_frame <= 1:
            raise ValueError("min_center_conf and min_in_frame must be in [0, 1]")
        if self.min_depth_m >= self.max_depth_m:
            raise ValueError(f"min_depth_m ({self.min_depth_m}) must be < max_depth_m ({self.max_depth_m})")
        if self.max_depth_scale_ratio < 1:
            raise ValueError(f"max_depth_scale_ratio must be >= 1, not {self.max_depth_scale_ratio}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Rule:
    """Filter ``name`` keeps a person when ``low`` <= score[``score``] <= ``high`` (threshold names)."""

    name: str
    score: str
    low: str | None = None
    high: str | None = None


# In the order the sequential counts of the report use: cheap single-frame checks first.
RULES = (
    Rule("center_conf", "center_conf", low="min_center_conf"),
    Rule("in_frame", "in_frame", low="min_in_frame"),
    Rule("shape", "max_abs_beta", high="max_abs_beta"),
    Rule("joint_limits", "limit_violation_deg", high="max_limit_violation_deg"),
    Rule("depth_range", "depth_m", low="min_depth_m", high="max_depth_m"),
    Rule("depth_scale", "depth_scale_ratio", high="max_depth_scale_ratio"),
    Rule("track_length", "track_frames", low="min_track_frames"),
    Rule("speed", "speed_mps", high="max_speed_mps"),
    Rule("acceleration", "accel_mps2", high="max_accel_mps2"),
    Rule("smooth_trans", "smooth_trans_dev", high="max_smooth_trans_dev"),
    Rule("smooth_pose", "smooth_pose_deg", high="max_smooth_pose_deg"),
    Rule("flip", "flip_error", high="max_flip_error"),
    Rule("agree", "agree_error", high="max_agree_error"),
)


@dataclass(frozen=True)
class FilterOutcome:
    """``names`` of the rules applied (in order); ``passed`` / ``applicable`` (N, F) bool; ``keep``
    (N,) = passed every rule; ``first_failure`` (N,) index of the first failed rule, -1 if kept."""

    names: tuple[str, ...]
    passed: np.ndarray
    applicable: np.ndarray
    keep: np.ndarray
    first_failure: np.ndarray

    def take(self, rows: np.ndarray) -> FilterOutcome:
        """The outcome of a subset of the people (index or boolean mask)."""
        return FilterOutcome(self.names, self.passed[rows], self.applicable[rows], self.keep[rows],
                             self.first_failure[rows])


def apply_rules(scores: dict[str, np.ndarray], thresholds: FilterThresholds,
                rules: tuple[Rule, ...] = RULES) -> FilterOutcome:
    """Apply the ``rules`` whose score is in ``scores`` ((N,) arrays)."""
    active = [r for r in rules if r.score in scores]
    n = len(next(iter(scores.values()))) if scores else 0
    passed = np.ones((n, len(active)), bool)
    applicable = np.zeros((n, len(active)), bool)
    for k, rule in enumerate(active):
        s = np.asarray(scores[rule.score], np.float64)
        applicable[:, k] = ~np.isnan(s)
        with np.errstate(invalid="ignore"):
            ok = np.ones(n, bool)
            if rule.low is not None:
                ok &= s >= getattr(thresholds, rule.low)
            if rule.high is not None:
                ok &= s <= getattr(thresholds, rule.high)
        passed[:, k] = ok | ~applicable[:, k]
    failed = ~passed
    first = np.where(failed.any(1), failed.argmax(1), -1) if len(active) else np.full(n, -1)
    keep = np.asarray(passed.all(1), bool)
    return FilterOutcome(tuple(r.name for r in active), passed, applicable, keep, first)


# -- single-frame scores ---------------------------------------------------------------------------

def in_frame_fraction(points: np.ndarray, height: np.ndarray, width: np.ndarray,
                      joints: int = BODY_JOINTS) -> np.ndarray:
    """(N,) fraction of the first ``joints`` 2D joints inside [0, w) x [0, h)."""
    p = points[:, :joints]
    h = np.asarray(height, np.float64)[:, None]
    w = np.asarray(width, np.float64)[:, None]
    with np.errstate(invalid="ignore"):
        inside = (p[..., 0] >= 0) & (p[..., 0] < w) & (p[..., 1] >= 0) & (p[..., 1] < h)
    return inside.mean(1) if joints else np.zeros(len(p))


def max_abs_beta(betas: np.ndarray, count: int = 10) -> np.ndarray:
    """(N,) largest |beta| among the first ``count`` shape coefficients (BEV's age offset excluded)."""
    return np.abs(betas[:, :count]).max(1) if len(betas) else np.zeros(0)


def _wrap(degrees: np.ndarray) -> np.ndarray:
    return (degrees + 180.0) % 360.0 - 180.0


def joint_limit_violation(thetas: np.ndarray) -> np.ndarray:
    """(N,) degrees beyond :data:`core.scenes.poses.LIMITS` on the worst axis of the worst body joint.

    Each joint's rotation is decomposed into Euler angles in its own order (``EULER_ORDER``,
    extrinsic). A rotation has two such decompositions, (a, b, c) and (a + 180, 180 - b, c + 180);
    the one closer to the limits counts, so an elbow bent 120 deg is not read as a 60 deg bend
    plus two half turns.
    """
    n = len(thetas)
    rotvec = np.asarray(thetas, np.float64).reshape(n, 24, 3)
    worst = np.zeros(n)
    if n == 0:
        return worst
    for order in sorted({EULER_ORDER[j] for j in LIMITED_JOINTS}):
        joints = [j for j in LIMITED_JOINTS if EULER_ORDER[j] == order]
        with warnings.catch_warnings():  # at gimbal lock scipy picks c = 0 (then only a +- c is defined)
            warnings.simplefilter("ignore", UserWarning)
            seq = Rotation.from_rotvec(rotvec[:, joints].reshape(-1, 3)).as_euler(order, degrees=True)
        seq = seq.reshape(n, len(joints), 3)
        alt = _wrap(np.stack([seq[..., 0] + 180, 180 - seq[..., 1], seq[..., 2] + 180], -1))
        columns = ["xyz".index(axis) for axis in order]
        limits = LIMITS[joints][:, columns]  # (J, 3, 2) in the decomposition's axis order
        over = [np.maximum(limits[..., 0] - e, e - limits[..., 1]).clip(0).max(-1) for e in (seq, alt)]
        worst = np.maximum(worst, np.minimum(*over).max(1))
    return worst


def depth_scale_ratio(joints3d: np.ndarray, points: np.ndarray, focal: np.ndarray) -> np.ndarray:
    """(N,) max(r, 1/r) of r = z / z_implied for the 24 body joints: z their mean depth, z_implied =
    focal * (RMS spread of their X, Y, m) / (RMS spread of their 2D positions, px); inf when a
    spread is zero. 1 for a perspective projection of a body with no depth extent."""
    body3, body2 = joints3d[:, :BODY_JOINTS], points[:, :BODY_JOINTS]
    spread3 = np.sqrt(((body3[..., :2] - body3[..., :2].mean(1, keepdims=True)) ** 2).sum(-1).mean(1))
    spread2 = np.sqrt(((body2 - body2.mean(1, keepdims=True)) ** 2).sum(-1).mean(1))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = body3[..., 2].mean(1) * spread2 / (np.asarray(focal, np.float64) * spread3)
        score = np.maximum(ratio, 1.0 / ratio)
    return np.where(np.isfinite(score) & (ratio > 0), score, np.inf)


# -- video scores (rows of one video; a track's rows need not be contiguous or sorted) ---------------

def track_frames(track_id: np.ndarray) -> np.ndarray:
    """(N,) rows of each row's track (untracked rows, id < 0: 0)."""
    ids = np.asarray(track_id, np.int64)
    counts = np.zeros(len(ids))
    tracked = ids >= 0
    if tracked.any():
        values, inverse, sizes = np.unique(ids[tracked], return_inverse=True, return_counts=True)
        counts[tracked] = sizes[inverse]
    return counts


def _track_order(track_id: np.ndarray, time_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row order sorted by (track, time) over tracked rows, and a (len,) flag: the next row in that
    order belongs to the same track."""
    ids = np.asarray(track_id, np.int64)
    rows = np.flatnonzero(ids >= 0)
    order = rows[np.lexsort((np.asarray(time_s)[rows], ids[rows]))]
    same_next = ids[order][1:] == ids[order][:-1]
    return order, same_next


def track_speed(track_id: np.ndarray, time_s: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(N,) m/s: the smaller of the speeds from the previous and to the next observation of the
    row's track (positions (N, 3) m, times (N,) s), so one outlying frame scores high and its
    neighbours do not; NaN for untracked rows and tracks of one row."""
    out = np.full(len(track_id), np.nan)
    order, same = _track_order(track_id, time_s)
    if len(order) < 2:
        return out
    step = np.linalg.norm(np.diff(positions[order], axis=0), axis=-1)
    dt = np.diff(np.asarray(time_s, np.float64)[order])
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where(same, step / np.maximum(dt, 1e-9), np.nan)
    before = np.concatenate([[np.nan], speed])
    after = np.concatenate([speed, [np.nan]])
    out[order] = np.fmin(before, after)
    return out


def track_acceleration(track_id: np.ndarray, time_s: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N,) m/s^2: mean over the K points (N, K, 3) of the norm of the second difference at the row
    (non-uniform steps: 2 (v_next - v_prev) / (dt_prev + dt_next)); NaN at track ends and for
    untracked rows."""
    out = np.full(len(track_id), np.nan)
    order, same = _track_order(track_id, time_s)
    if len(order) < 3:
        return out
    t = np.asarray(time_s, np.float64)[order]
    dt = np.maximum(np.diff(t), 1e-9)
    velocity = np.diff(points[order], axis=0) / dt[:, None, None]
    accel = 2 * (velocity[1:] - velocity[:-1]) / (dt[1:] + dt[:-1])[:, None, None]
    inner = same[1:] & same[:-1]
    out[order[1:-1]] = np.where(inner, np.linalg.norm(accel, axis=-1).mean(-1), np.nan)
    return out


def smooth_translation_deviation(trans: np.ndarray, smoothed: np.ndarray) -> np.ndarray:
    """(N,) |raw - smoothed translation| / smoothed depth (relative; inf for a depth <= 0)."""
    depth = smoothed[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.linalg.norm(trans - smoothed, axis=-1) / depth
    return np.where(depth > 0, dev, np.inf)


def smooth_pose_deviation(thetas: np.ndarray, smoothed: np.ndarray) -> np.ndarray:
    """(N,) degrees: mean over the 24 joints of the angle of the rotation between the raw and the
    smoothed axis-angle poses (N, 72)."""
    n = len(thetas)
    if n == 0:
        return np.zeros(0)
    raw = Rotation.from_rotvec(np.asarray(thetas, np.float64).reshape(-1, 3))
    smooth = Rotation.from_rotvec(np.asarray(smoothed, np.float64).reshape(-1, 3))
    return np.degrees((raw.inv() * smooth).magnitude()).reshape(n, 24).mean(1)


# -- the confidence weight -------------------------------------------------------------------------

AGREEMENT_SCORES = (("smooth_trans_dev", "max_smooth_trans_dev"), ("smooth_pose_deg", "max_smooth_pose_deg"),
                    ("flip_error", "max_flip_error"), ("agree_error", "max_agree_error"))


def confidence_weight(scores: dict[str, np.ndarray], thresholds: FilterThresholds) -> np.ndarray:
    """(N,) float32 loss weight in [0, 1]:

        w = center_conf * in_frame * prod_k (1 - s_k / (2 t_k))

    over the agreement scores s_k present and applicable (smoothed-track deviations, flip and
    second-checkpoint errors) with their thresholds t_k, each factor clipped to [0, 1]: a person
    agreeing exactly keeps the full confidence, one at a threshold half of it. ``center_conf`` and
    ``in_frame`` (the 24-joint fraction) are clipped to [0, 1]."""
    weight = np.clip(scores["center_conf"], 0, 1) * np.clip(scores["in_frame"], 0, 1)
    for key, threshold in AGREEMENT_SCORES:
        if key in scores:
            s = np.nan_to_num(np.asarray(scores[key], np.float64), nan=0.0, posinf=np.inf)
            with np.errstate(divide="ignore", invalid="ignore"):
                factor = np.clip(1 - s / (2 * getattr(thresholds, threshold)), 0, 1)
            weight = weight * np.where(s <= 0, 1.0, factor)
    return np.nan_to_num(weight, nan=0.0).astype(np.float32)
