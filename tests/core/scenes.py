"""Synthetic tracking scenes: people walking on paths in front of BEV's camera, observed as the
tracker's input (measurements, confidences) with their true identities.

World coordinates are BEV's camera frame in metres (X right, Y down, Z depth). A person is seen at
canvas center ``(X, Y) / (Z tan 30°)`` with camera scale ``s = 1 / (Z tan 30°)`` (README "Tracking
and smoothing"; cameras: BEV depth = 1 / (s tan 30°)). Detections carry the noise of a real
detector: center jitter, depth jitter (BEV's depth comes from the scale, so both move together),
missed frames where a nearer person covers them or a path says so, low-confidence stretches.
Each detection also carries a noisy SMPL pose around a walking motion, to measure smoothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.boxes import box_iou
from core.smoothing import PoseSmoother
from core.tracking import ByteTracker3D, TrackerConfig, measurement
from eval.mot import FrameBoxes, clear_mot

TAN30 = np.tan(np.radians(30))
FPS = 30.0
FOCAL = 256 / TAN30  # canvas px (512 canvas, FOV 60°)
HEIGHT_M, WIDTH_M = 1.7, 0.5  # a person's box in metres


@dataclass
class Walker:
    """One person: ``path`` = [(frame, X, Z), ...] waypoints (linear between them, held before the
    first and after the last); ``hidden`` / ``dim`` = [(first, stop), ...] frame ranges without a
    detection / with a low confidence; ``y`` = the body centre's height (m, down)."""

    path: list[tuple[int, float, float]]
    hidden: list[tuple[int, int]] = field(default_factory=list)
    dim: list[tuple[int, int]] = field(default_factory=list)
    y: float = 0.2

    def position(self, t: int) -> tuple[float, float]:
        frames, xs, zs = (np.array(v, float) for v in zip(*self.path, strict=True))
        return float(np.interp(t, frames, xs)), float(np.interp(t, frames, zs))

    def within(self, spans: list[tuple[int, int]], t: int) -> bool:
        return any(a <= t < b for a, b in spans)


@dataclass
class Scene:
    """Per frame: (N, 4) measurements, (N,) confidences, (N,) true ids, (N, 4) true and observed
    boxes (left, top, width, height in canvas px), (N, 72) true and observed poses."""

    z: list[np.ndarray]
    scores: list[np.ndarray]
    ids: list[np.ndarray]
    true_boxes: list[np.ndarray]
    seen_boxes: list[np.ndarray]
    true_poses: list[np.ndarray]
    seen_poses: list[np.ndarray]


def _box(x: float, y: float, depth: float) -> np.ndarray:
    """Canvas box of a person centred at canvas (x, y) in [-1, 1] at ``depth`` m."""
    h, w = HEIGHT_M * FOCAL / depth, WIDTH_M * FOCAL / depth
    return np.array([(x + 1) * 256 - w / 2, (y + 1) * 256 - h / 2, w, h])


def make_scene(walkers: list[Walker], frames: int, seed: int = 0, center_jitter: float = 0.008,
               depth_jitter: float = 0.04, pose_jitter: float = 0.03, cover_iou: float = 0.5) -> Scene:
    """Observe ``walkers`` for ``frames`` frames. A person whose box overlaps a nearer person's by
    IoU > ``cover_iou`` is not detected (hidden behind them). Jitters: canvas units, relative depth
    (log-normal), radians."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.2, (len(walkers), 72))
    base[:, 66:] = 0
    swing = np.zeros(72)
    swing[[3, 6, 48, 51]] = 0.4  # hips and shoulders swing once per second
    phase = rng.uniform(0, 2 * np.pi, len(walkers))
    scene = Scene([], [], [], [], [], [], [])
    for t in range(frames):
        world = np.array([(*w.position(t), w.y) for w in walkers])  # (P, 3) X, Z, Y
        depth = world[:, 1]
        xy = np.column_stack([world[:, 0], world[:, 2]]) / (depth[:, None] * TAN30)
        boxes = np.stack([_box(x, y, d) for (x, y), d in zip(xy, depth, strict=True)])
        iou = box_iou(boxes, boxes)
        covered = [(iou[i] > cover_iou)[depth < depth[i]].any() for i in range(len(walkers))]
        seen = [i for i, w in enumerate(walkers) if not (covered[i] or w.within(w.hidden, t))]
        seen_depth = depth[seen] * np.exp(rng.normal(0, depth_jitter, len(seen)))
        seen_xy = xy[seen] + rng.normal(0, center_jitter, (len(seen), 2))
        scores = np.array([rng.uniform(0.06, 0.11) if walkers[i].within(walkers[i].dim, t) else rng.uniform(0.25, 0.6)
                           for i in seen])
        truth = base[seen] + np.sin(2 * np.pi * t / FPS + phase[seen])[:, None] * swing
        scene.z.append(measurement(seen_xy.reshape(-1, 2), seen_depth, 1 / (seen_depth * TAN30)))
        scene.scores.append(scores)
        scene.ids.append(np.array(seen, np.int64))
        scene.true_boxes.append(boxes[seen].reshape(-1, 4))
        scene.seen_boxes.append(np.stack([_box(x, y, d) for (x, y), d in zip(seen_xy, seen_depth, strict=True)])
                                .reshape(-1, 4))
        scene.true_poses.append(truth.reshape(-1, 72))
        scene.seen_poses.append((truth + rng.normal(0, pose_jitter, truth.shape) * (np.arange(72) < 66))
                                .reshape(-1, 72))
    return scene


@dataclass(frozen=True)
class SceneResult:
    idf1: float
    switches: int
    jitter_ratio: float  # raw pose jitter / smoothed pose jitter (nan without smoothing)
    ids: list[np.ndarray]  # per frame, the track id of each detection (-1: none)


def track_scene(scene: Scene, config: TrackerConfig | None = None, smooth: bool = False) -> SceneResult:
    """Track (and smooth) a scene; IDF1 and identity switches (motmetrics, IoU >= 0.5) over the
    detections the tracker is given (score > low_thresh), and the jitter reduction of the poses."""
    config = config or TrackerConfig()
    tracker, smoother = ByteTracker3D(config), PoseSmoother("romp")
    ids, smoothed = [], []
    for t, (z, scores, poses) in enumerate(zip(scene.z, scene.scores, scene.seen_poses, strict=True)):
        frame_ids = tracker.update(z, scores)
        ids.append(frame_ids)
        if smooth:
            n = len(z)
            rest = np.zeros((n, 10), np.float32), np.full((n, 3), [0.5, 0, 0], np.float32), np.zeros((n, 3), np.float32)
            smoothed.append(smoother.update(t, FPS, frame_ids, poses.astype(np.float32), *rest)[0])
    given = [s > config.low_thresh for s in scene.scores]
    gt = [FrameBoxes(i[g], b[g]) for i, b, g in zip(scene.ids, scene.true_boxes, given, strict=True)]
    pred = [FrameBoxes(i[i >= 0], b[i >= 0]) for i, b in zip(ids, scene.seen_boxes, strict=True)]
    metrics = clear_mot(gt, pred)
    jitter = _jitter(scene, scene.seen_poses) / _jitter(scene, smoothed) if smooth else float("nan")
    return SceneResult(metrics["idf1"], int(metrics["num_switches"]), jitter, ids)


def _jitter(scene: Scene, poses: list[np.ndarray]) -> float:
    """Mean |second difference| over body-pose values of each person's pose error (``poses``
    minus the truth), over runs of three consecutive frames: noise, not motion or lag."""
    total, count = 0.0, 0
    for person in {int(i) for frame in scene.ids for i in frame}:
        track = [(t, p[k] - q[k]) for t, (i, p, q) in enumerate(zip(scene.ids, poses, scene.true_poses, strict=True))
                 for k in np.flatnonzero(i == person)]
        for (t0, a), (_, b), (t2, c) in zip(track, track[1:], track[2:], strict=False):
            if t2 - t0 == 2:
                total += float(np.abs((a - 2 * b + c)[3:66]).mean())
                count += 1
    return total / max(count, 1)


def issue_walkers(hidden: int = 12) -> list[Walker]:
    """Issue 13's scene: four people; two cross at the same depth (4 m); one, standing at 6 m, is
    hidden for ``hidden`` frames while another walks past within about a metre."""
    return [Walker([(0, -2.5, 4.0), (150, 2.5, 4.0)]),
            Walker([(0, 2.5, 4.0), (150, -2.5, 4.0)], y=0.25),
            Walker([(0, 0.6, 6.0), (150, 1.0, 6.0)], hidden=[(60, 60 + hidden)]),
            Walker([(0, -1.5, 5.5), (150, 3.5, 5.5)], y=0.15)]


def occlusion_walkers(hidden: int = 30) -> list[Walker]:
    """A person walking at 5 m is hidden for ``hidden`` frames (30 = 1 s) while one person passes
    0.7 m in front of them, another walks 1.4 m behind and a fourth walks towards the back."""
    return [Walker([(0, -2.0, 5.0), (150, 2.0, 5.0)], hidden=[(60, 60 + hidden)]),
            Walker([(0, 3.0, 4.3), (150, -3.0, 4.3)], y=0.3),
            Walker([(0, -3.0, 6.0), (150, 1.0, 6.0)], y=0.1),
            Walker([(0, 1.5, 3.0), (150, 1.5, 7.0)], y=0.25)]


def crossing_walkers() -> list[Walker]:
    """Two pairs crossing head-on at the same depth and height (4 m, 7 m), both people visible."""
    return [Walker([(0, -2.0, 4.0), (90, 2.0, 4.0)]), Walker([(0, 2.0, 4.0), (90, -2.0, 4.0)]),
            Walker([(0, -2.5, 7.0), (90, 2.5, 7.0)], y=0.1), Walker([(0, 2.5, 7.0), (90, -2.5, 7.0)], y=0.1)]


def random_walkers(seed: int, people: int = 5, frames: int = 150, max_gap: int = 30,
                   clearance: float = 0.5) -> list[Walker]:
    """People walking at 0.5-1.5 m/s between 2.5 and 9 m, turning every 50 frames, kept inside the
    image and never closer than ``clearance`` m to each other (bodies do not overlap: people pass
    in front of each other, not through); each hidden once for 5-``max_gap`` frames; every other
    one with a low-confidence stretch of 10-25 frames."""
    rng = np.random.default_rng(seed)
    walkers: list[Walker] = []
    while len(walkers) < people:
        x, z = rng.uniform(-0.4, 0.4), rng.uniform(2.5, 9.0)
        x *= z
        path = [(0, x, z)]
        for t in range(50, frames + 50, 50):
            heading, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.5)
            z = float(np.clip(z + np.cos(heading) * speed * 50 / FPS, 2.5, 9.0))
            x = float(np.clip(x + np.sin(heading) * speed * 50 / FPS, -0.45 * z, 0.45 * z))
            path.append((t, x, z))
        gap_start, gap = int(rng.integers(10, frames - max_gap)), int(rng.integers(5, max_gap + 1))
        dim_start = int(rng.integers(10, frames - 30))
        walker = Walker(path, hidden=[(gap_start, gap_start + gap)],
                        dim=[(dim_start, dim_start + int(rng.integers(10, 25)))] if len(walkers) % 2 else [],
                        y=float(rng.uniform(0.0, 0.4)))
        if all(np.hypot(*np.subtract(walker.position(t), other.position(t))) >= clearance
               for other in walkers for t in range(frames)):
            walkers.append(walker)
    return walkers
