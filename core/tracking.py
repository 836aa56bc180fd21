"""Multi-person tracking: ByteTrack on 3D body centers (BEV's ``-t`` tracker), fixed.

Each detection is measured as ``z = [(x + 1) * 128, (y + 1) * 128, depth * 30, s * 64]``: its
image-plane center (x, y in [-1, 1] of the padded square), its depth in metres and its camera scale
s (~ inverse depth: "person size"). A constant-velocity Kalman filter on ``[z, dz/dt]`` whose noise
scales with ``h = s * 64`` predicts every track. The official stages (``TrackerConfig.official()``):

1. high-score detections (score > ``det_thresh``) against tracked and lost tracks at once, on the
   Euclidean distance between predicted and measured ``z`` (cost <= 300);
2. remaining *tracked* tracks against low-score detections (``low_thresh`` < score <=
   ``det_thresh``, cost <= 600) -- the official code passes all high-score detections here
   instead, so low-score detections never keep a track alive (``official_stage2=True``);
3. unconfirmed (new) tracks against the leftover high-score detections (cost <= 900); unmatched
   unconfirmed tracks are dropped;
4. leftover high-score detections start tracks (confirmed at once in the first frame, else on their
   next match); tracks lost for more than ``track_buffer`` frames are removed; a lost track lying
   within 60 px of a tracked one is a duplicate, the younger of the two goes.

By default (``official_association=False``) identities survive occlusions and crossings:

* the filter knows that depth is the noisy coordinate (BEV's depth comes from the scale: its error
  is relative, ``depth_noise`` of the depth), so a depth wobble does not outweigh the image
  position, and association is on the filter's own uncertainty: the cost is the negative
  log-likelihood ``d^2 + ln det S`` of the detection under the track's prediction (Mahalanobis
  distance ``d`` over the innovation covariance ``S``), gated at ``d^2 <= gate``. A lost track's
  uncertainty grows with every predicted frame, so its gate widens around where its motion says
  the person should reappear;
* stage 1 is a cascade: tracked tracks take their detections first, lost tracks then compete for
  the rest (one assignment of both lets a widening lost track steal a visible person's detection);
* a lost track is a duplicate only of a tracked track that was born after it was last seen and
  now lies in its gate (the same person re-found under a new id); people merely passing by never
  delete it.

Unlike the official tracker, which maps ids back to detections by nearest Kalman mean (two
detections can get the same id), ids come straight from the assignment: one id per detection,
never twice in a frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

IMAGE_SCALE, DEPTH_SCALE, SIZE_SCALE = 128.0, 30.0, 64.0
NDIM = 4
CHI2_4DOF_999 = 18.47  # 99.9 % quantile of the chi-square distribution with 4 degrees of freedom
# BEV's depth is 1 / (s tan 30°) (reference §2.2): depth and size errors are exactly opposite (-1);
# ROMP's PnP depth follows its scale less tightly, and < 1 keeps the covariance well conditioned.
DEPTH_SIZE_CORRELATION = 0.9


@dataclass(frozen=True)
class TrackerConfig:
    """Official defaults (``bev -t``): thresholds on center confidence, costs in measurement units.

    ``official_stage2`` / ``official_association`` switch back to the official stage 2 and to the
    official costs, single stage 1, noise and duplicate rule (see the module docstring);
    :meth:`official` sets both. The default association only uses ``depth_noise`` (relative depth
    error of a detection), ``center_noise`` (least center error, in [-1, 1] canvas units) and
    ``gate`` (largest squared Mahalanobis distance of a match); the official one only the costs
    ``*_thresh`` (measurement units) and ``duplicate_dist``.
    """

    det_thresh: float = 0.12
    low_thresh: float = 0.05
    match_thresh: float = 300.0
    second_match_thresh: float = 600.0
    unconfirmed_match_thresh: float = 900.0
    track_buffer: int = 60
    frame_rate: float = 30.0
    duplicate_dist: float = 60.0
    official_stage2: bool = False
    official_association: bool = False
    # Assumed detector noise. The scene tests (tests/core/scenes.py) jitter depth by 4 % and centers
    # by 0.008 and still pass at 6 % / 0.012. 0.01 is below one cell of BEV's 128x128 center map (0.016).
    depth_noise: float = 0.05
    center_noise: float = 0.01
    gate: float = CHI2_4DOF_999

    @classmethod
    def official(cls, **overrides: float | int | bool) -> TrackerConfig:
        """The official tracker's behaviour, both known flaws included (for comparison)."""
        return cls(**{"official_stage2": True, "official_association": True, **overrides})  # type: ignore[arg-type]

    @property
    def max_time_lost(self) -> int:
        return int(self.frame_rate / 30.0 * self.track_buffer)


def measurement(center_xy: np.ndarray, depth: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(N, 2) canvas center in [-1, 1], (N,) depth m, (N,) camera scale -> (N, 4) measurements."""
    return np.column_stack([(center_xy[:, 0] + 1) * IMAGE_SCALE, (center_xy[:, 1] + 1) * IMAGE_SCALE,
                            depth * DEPTH_SCALE, scale * SIZE_SCALE]).astype(np.float64)


class KalmanFilter3D:
    """Constant-velocity Kalman filter on [x, y, z, h, vx, vy, vz, vh], noise proportional to h.

    ``depth_noise`` None: the official measurement noise (std ``h / 20`` on every coordinate).
    Otherwise depth and size have the relative error ``depth_noise`` (opposite in sign) and the
    center at least ``center_noise`` canvas units (a detector's center error does not shrink with
    the person's size as ``h / 20`` does).
    """

    std_position = 1.0 / 20
    std_velocity = 1.0 / 160

    def __init__(self, depth_noise: float | None = None, center_noise: float = 0.0) -> None:
        self.depth_noise, self.center_noise = depth_noise, center_noise
        self.motion = np.eye(2 * NDIM)
        self.motion[:NDIM, NDIM:] = np.eye(NDIM)  # dt = 1 frame
        self.observe = np.eye(NDIM, 2 * NDIM)

    def _h(self, mean: np.ndarray) -> float:
        return max(float(mean[3]), 1e-3)

    def _measurement_std(self, z: np.ndarray) -> np.ndarray:
        """(4,) measurement noise std at state or measurement ``z``."""
        std = np.full(NDIM, self.std_position * self._h(z))
        if self.depth_noise is not None:  # depth and size share one relative error
            std[:2] = np.maximum(std[:2], self.center_noise * IMAGE_SCALE)
            std[2:] = np.maximum(self.depth_noise * np.abs(z[2:NDIM]), 1e-3)
        return std

    def _measurement_cov(self, z: np.ndarray) -> np.ndarray:
        """(4, 4) measurement noise covariance; depth and size errors are opposite (BEV's depth is
        1 / (s tan 30°): a detection measured too far is also measured too small)."""
        std = self._measurement_std(z)
        cov = np.diag(std ** 2)
        if self.depth_noise is not None:
            cov[2, 3] = cov[3, 2] = -DEPTH_SIZE_CORRELATION * std[2] * std[3]
        return cov

    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        std = np.r_[2 * self._measurement_std(z), np.full(NDIM, 10 * self.std_velocity * self._h(z))]
        return np.r_[z, np.zeros(NDIM)], np.diag(std ** 2)

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = self._h(mean)
        q = np.diag(np.r_[np.full(NDIM, self.std_position * h), np.full(NDIM, self.std_velocity * h)] ** 2)
        return self.motion @ mean, self.motion @ cov @ self.motion.T + q

    def innovation_cov(self, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """(4, 4) covariance S of a measurement's difference from the predicted one."""
        return self.observe @ cov @ self.observe.T + self._measurement_cov(mean)

    def update(self, mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        projected_cov = self.innovation_cov(mean, cov)
        gain = np.linalg.solve(projected_cov, (cov @ self.observe.T).T).T
        mean = mean + gain @ (z - self.observe @ mean)
        cov = cov - gain @ projected_cov @ gain.T
        return mean, cov

    def log_likelihood_cost(self, mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 4) measurements -> (N,) costs ``d^2 + ln det S`` and (N,) squared Mahalanobis ``d^2``."""
        s = self.innovation_cov(mean, cov)
        chol = np.linalg.cholesky(s)
        white = np.linalg.solve(chol, (z - mean[:NDIM]).T)
        d2 = (white ** 2).sum(0)
        return d2 + 2 * np.log(np.diag(chol)).sum(), d2


TRACKED, LOST = "tracked", "lost"


@dataclass
class Track:
    track_id: int
    mean: np.ndarray
    cov: np.ndarray
    score: float
    start_frame: int
    frame: int
    state: str = TRACKED
    activated: bool = False
    hits: int = 1

    @property
    def z(self) -> np.ndarray:
        return self.mean[:NDIM]


Assignment = tuple[list[tuple[int, int]], list[int], list[int]]


def _solve(cost: np.ndarray, allowed: np.ndarray) -> Assignment:
    """Optimal assignment over the allowed pairs: (matches (track, det), unmatched tracks, dets)."""
    n_tracks, n_dets = cost.shape
    if n_tracks == 0 or n_dets == 0:
        return [], list(range(n_tracks)), list(range(n_dets))
    big = np.abs(cost[allowed]).max(initial=0.0) * 2 + 1e6  # a forbidden pair never beats leaving both unmatched
    rows, cols = linear_sum_assignment(np.where(allowed, cost, big))
    matches = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]
    matched_t, matched_d = {m[0] for m in matches}, {m[1] for m in matches}
    return matches, [i for i in range(n_tracks) if i not in matched_t], [j for j in range(n_dets) if j not in matched_d]


@dataclass
class ByteTracker3D:
    """Stateful tracker: feed frames in order with :meth:`update`; state carries across chunks."""

    config: TrackerConfig = field(default_factory=TrackerConfig)
    frame: int = 0
    next_id: int = 1
    tracks: list[Track] = field(default_factory=list)
    kf: KalmanFilter3D = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.config
        self.kf = KalmanFilter3D(None if cfg.official_association else cfg.depth_noise, cfg.center_noise)

    def _assign(self, tracks: list[Track], z: np.ndarray, threshold: float) -> Assignment:
        """Official: Euclidean cost <= ``threshold``; default: log-likelihood cost inside the gate."""
        if not tracks or len(z) == 0:
            return [], list(range(len(tracks))), list(range(len(z)))
        if self.config.official_association:
            cost = np.linalg.norm(np.stack([t.z for t in tracks])[:, None] - z[None], axis=-1)
            return _solve(cost, cost <= threshold)
        cost, d2 = (np.stack(v) for v in zip(*(self.kf.log_likelihood_cost(t.mean, t.cov, z) for t in tracks),
                                              strict=True))
        return _solve(cost, d2 <= self.config.gate)

    def update(self, z: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """One frame: (N, 4) measurements and (N,) scores -> (N,) int64 ids, -1 = no confirmed track."""
        cfg = self.config
        self.frame += 1
        ids = np.full(len(z), -1, dtype=np.int64)
        high = np.flatnonzero(scores > cfg.det_thresh)
        low = np.flatnonzero((scores > cfg.low_thresh) & (scores <= cfg.det_thresh))

        for t in self.tracks:
            if t.state == LOST:
                t.mean[7] = 0.0  # a lost track's size velocity is frozen
            t.mean, t.cov = self.kf.predict(t.mean, t.cov)
        confirmed = [t for t in self.tracks if t.activated]
        unconfirmed = [t for t in self.tracks if not t.activated]

        # stage 1: high-score detections against tracked + lost (default: tracked first, then lost)
        pools = [confirmed] if cfg.official_association else [[t for t in confirmed if t.state == TRACKED],
                                                               [t for t in confirmed if t.state == LOST]]
        high_left, remaining = high, []
        for pool in pools:
            m1, left_t, left_d = self._assign(pool, z[high_left], cfg.match_thresh)
            for ti, di in m1:
                self._hit(pool[ti], z[high_left[di]], scores[high_left[di]])
                ids[high_left[di]] = pool[ti].track_id
            remaining += [pool[i] for i in left_t if pool[i].state == TRACKED]
            high_left = high_left[left_d]

        # stage 2: still-tracked tracks against low-score detections (official: all high ones again)
        second = high if cfg.official_stage2 else low
        m2, left_t2, _ = self._assign(remaining, z[second], cfg.second_match_thresh)
        for ti, di in m2:
            self._hit(remaining[ti], z[second[di]], scores[second[di]])
            if ids[second[di]] < 0:
                ids[second[di]] = remaining[ti].track_id
        for i in left_t2:
            remaining[i].state = LOST

        # stage 3: unconfirmed tracks against leftover high-score detections
        m3, left_u, left_d3 = self._assign(unconfirmed, z[high_left], cfg.unconfirmed_match_thresh)
        for ti, di in m3:
            track = unconfirmed[ti]
            self._hit(track, z[high_left[di]], scores[high_left[di]])
            track.activated = True
            ids[high_left[di]] = track.track_id
        dropped = {id(unconfirmed[i]) for i in left_u}
        self.tracks = [t for t in self.tracks if id(t) not in dropped]

        # stage 4: new tracks, expiry, duplicates
        for di in left_d3:
            det = high_left[di]
            mean, cov = self.kf.initiate(z[det])
            track = Track(self.next_id, mean, cov, float(scores[det]), self.frame, self.frame,
                          activated=self.frame == 1)
            self.next_id += 1
            self.tracks.append(track)
            if track.activated:
                ids[det] = track.track_id
        self.tracks = [t for t in self.tracks if not (t.state == LOST and self.frame - t.frame > cfg.max_time_lost)]
        self._drop_duplicates()
        return ids

    def _hit(self, track: Track, z: np.ndarray, score: float) -> None:
        track.mean, track.cov = self.kf.update(track.mean, track.cov, z)
        track.state, track.score, track.frame = TRACKED, float(score), self.frame
        track.hits += 1

    def _drop_duplicates(self) -> None:
        tracked = [t for t in self.tracks if t.state == TRACKED and t.activated]
        lost = [t for t in self.tracks if t.state == LOST]
        doomed = set()
        for a in tracked:
            for b in lost:
                if self.config.official_association:
                    if np.linalg.norm(a.z[:2] - b.z[:2]) < self.config.duplicate_dist:
                        older_a = (a.frame - a.start_frame) >= (b.frame - b.start_frame)
                        doomed.add(id(b) if older_a else id(a))
                elif a.start_frame > b.frame and self.kf.log_likelihood_cost(b.mean, b.cov, a.z[None])[1][0] <= \
                        self.config.gate:
                    doomed.add(id(b))  # b's person was re-found as a (a new track where b was expected)
        self.tracks = [t for t in self.tracks if id(t) not in doomed]
