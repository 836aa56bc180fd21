"""Multi-person tracking: ByteTrack on 3D body centers (BEV's ``-t`` tracker), fixed.

Each detection is measured as ``z = [(x + 1) * 128, (y + 1) * 128, depth * 30, s * 64]``: its
image-plane center (x, y in [-1, 1] of the padded square), its depth in metres and its camera scale
s (~ inverse depth: "person size"). A constant-velocity Kalman filter on ``[z, dz/dt]`` whose noise
scales with ``h = s * 64`` predicts every track; association is a linear assignment on the
Euclidean distance between predicted and measured ``z``, in the official stages:

1. high-score detections (score > ``det_thresh``) against tracked and lost tracks (cost <= 300);
2. remaining *tracked* tracks against low-score detections (``low_thresh`` < score <=
   ``det_thresh``, cost <= 600) -- the official code passes all high-score detections here
   instead, so low-score detections never keep a track alive; fixed (``official_stage2=True``
   reproduces the bug for comparison);
3. unconfirmed (new) tracks against the leftover high-score detections (cost <= 900); unmatched
   unconfirmed tracks are dropped;
4. leftover high-score detections start tracks (confirmed at once in the first frame, else on their
   next match); tracks lost for more than ``track_buffer`` frames are removed; a lost track lying
   within 60 px of a tracked one is a duplicate, the younger of the two goes.

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


@dataclass(frozen=True)
class TrackerConfig:
    """Official defaults (``bev -t``): thresholds on center confidence, costs in measurement units."""

    det_thresh: float = 0.12
    low_thresh: float = 0.05
    match_thresh: float = 300.0
    second_match_thresh: float = 600.0
    unconfirmed_match_thresh: float = 900.0
    track_buffer: int = 60
    frame_rate: float = 30.0
    duplicate_dist: float = 60.0
    official_stage2: bool = False

    @property
    def max_time_lost(self) -> int:
        return int(self.frame_rate / 30.0 * self.track_buffer)


def measurement(center_xy: np.ndarray, depth: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(N, 2) canvas center in [-1, 1], (N,) depth m, (N,) camera scale -> (N, 4) measurements."""
    return np.column_stack([(center_xy[:, 0] + 1) * IMAGE_SCALE, (center_xy[:, 1] + 1) * IMAGE_SCALE,
                            depth * DEPTH_SCALE, scale * SIZE_SCALE]).astype(np.float64)


class KalmanFilter3D:
    """Constant-velocity Kalman filter on [x, y, z, h, vx, vy, vz, vh], noise proportional to h."""

    std_position = 1.0 / 20
    std_velocity = 1.0 / 160

    def __init__(self) -> None:
        self.motion = np.eye(2 * NDIM)
        self.motion[:NDIM, NDIM:] = np.eye(NDIM)  # dt = 1 frame
        self.observe = np.eye(NDIM, 2 * NDIM)

    def _h(self, mean: np.ndarray) -> float:
        return max(float(mean[3]), 1e-3)

    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = max(float(z[3]), 1e-3)
        std = np.r_[np.full(NDIM, 2 * self.std_position * h), np.full(NDIM, 10 * self.std_velocity * h)]
        return np.r_[z, np.zeros(NDIM)], np.diag(std ** 2)

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = self._h(mean)
        q = np.diag(np.r_[np.full(NDIM, self.std_position * h), np.full(NDIM, self.std_velocity * h)] ** 2)
        return self.motion @ mean, self.motion @ cov @ self.motion.T + q

    def update(self, mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.diag(np.full(NDIM, self.std_position * self._h(mean)) ** 2)
        projected_cov = self.observe @ cov @ self.observe.T + r
        gain = np.linalg.solve(projected_cov, (cov @ self.observe.T).T).T
        mean = mean + gain @ (z - self.observe @ mean)
        cov = cov - gain @ projected_cov @ gain.T
        return mean, cov


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


def _assign(tracks: list[Track], z: np.ndarray, threshold: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Optimal assignment with a cost limit: (matches (track, det), unmatched tracks, unmatched dets)."""
    if not tracks or len(z) == 0:
        return [], list(range(len(tracks))), list(range(len(z)))
    cost = np.linalg.norm(np.stack([t.z for t in tracks])[:, None] - z[None], axis=-1)
    rows, cols = linear_sum_assignment(np.where(cost > threshold, threshold + 1e6, cost))
    matches = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] <= threshold]
    matched_t, matched_d = {m[0] for m in matches}, {m[1] for m in matches}
    return matches, [i for i in range(len(tracks)) if i not in matched_t], \
        [j for j in range(len(z)) if j not in matched_d]


@dataclass
class ByteTracker3D:
    """Stateful tracker: feed frames in order with :meth:`update`; state carries across chunks."""

    config: TrackerConfig = field(default_factory=TrackerConfig)
    frame: int = 0
    next_id: int = 1
    tracks: list[Track] = field(default_factory=list)
    kf: KalmanFilter3D = field(default_factory=KalmanFilter3D)

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

        # stage 1: high-score detections against tracked + lost
        m1, left_t, left_d = _assign(confirmed, z[high], cfg.match_thresh)
        for ti, di in m1:
            self._hit(confirmed[ti], z[high[di]], scores[high[di]])
            ids[high[di]] = confirmed[ti].track_id
        remaining = [confirmed[i] for i in left_t if confirmed[i].state == TRACKED]
        high_left = high[left_d]

        # stage 2: still-tracked tracks against low-score detections (official: all high ones again)
        second = high if cfg.official_stage2 else low
        m2, left_t2, _ = _assign(remaining, z[second], cfg.second_match_thresh)
        for ti, di in m2:
            self._hit(remaining[ti], z[second[di]], scores[second[di]])
            if ids[second[di]] < 0:
                ids[second[di]] = remaining[ti].track_id
        for i in left_t2:
            remaining[i].state = LOST

        # stage 3: unconfirmed tracks against leftover high-score detections
        m3, left_u, left_d3 = _assign(unconfirmed, z[high_left], cfg.unconfirmed_match_thresh)
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
                if np.linalg.norm(a.z[:2] - b.z[:2]) < self.config.duplicate_dist:
                    older_a = (a.frame - a.start_frame) >= (b.frame - b.start_frame)
                    doomed.add(id(b) if older_a else id(a))
        self.tracks = [t for t in self.tracks if id(t) not in doomed]
