"""Tracking pass over a results dataset: per video, in frame order, streaming file by file.

A video's rows are read one results file at a time (its chunks, in frame order), tracked and
smoothed with state carried from one file to the next -- so chunking never starts new ids -- and
written back: in place for ``infer --track``, or to a new dataset for ``meshfleet track``. Every
column is kept; ``track_id`` and the ``*_smoothed`` columns are added or updated. Rows of images and
error rows pass through (``track_id`` null). Files are read through :mod:`pipelines.results`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from core.smoothing import PoseSmoother, SmoothingConfig
from core.tracking import ByteTracker3D, TrackerConfig, measurement
from pipelines.readers import kind_of
from pipelines.results import read_results_file, require
from pipelines.schema import SMOOTHED, array_column, column_array

# What tracking needs (timestamp, track_id and error are optional: absent ones are read as nulls).
READ_COLUMNS = ("source", "frame", "timestamp", "person", "track_id", "center_conf", "cam", "cam_trans",
                "smpl_thetas", "smpl_betas", "error")
DEFAULT_FPS = 30.0  # frame rate assumed for a video whose rows carry no timestamps (``--fps``)


@dataclass(frozen=True)
class TrackingSettings:
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)


def fps_of(frames: np.ndarray, stamps: np.ndarray) -> float:
    """A video's frame rate from its rows' frame indices and timestamps (seconds; NaN or <= 0 where
    unknown): the median of frame / timestamp, or DEFAULT_FPS when no row has a timestamp."""
    stamps = np.asarray(stamps, np.float64)
    ok = np.isfinite(stamps) & (stamps > 0)
    return float(np.median(frames[ok] / stamps[ok])) if ok.any() else DEFAULT_FPS


def centers_of(cam: np.ndarray, model: str) -> np.ndarray:
    """(N, 2) image-plane centers in [-1, 1]: ROMP cam = (s, tx, ty), BEV cam = (s, y, x)."""
    return cam[:, [1, 2]] if model == "romp" else cam[:, [2, 1]]


class VideoTracker:
    """Tracks the rows of one video, given in frame order over successive calls.

    The frame rate comes from the rows' timestamps; without any, ``fallback_fps`` is used and
    ``assumed_fps`` becomes True (callers say so).
    """

    def __init__(self, model: str, settings: TrackingSettings, fallback_fps: float = DEFAULT_FPS):
        self.model = model
        self.tracker = ByteTracker3D(settings.tracker)
        self.smoother = PoseSmoother(model, settings.smoothing)
        self.last_frame = -1
        self.fps: float | None = None
        self.fallback_fps = fallback_fps
        self.assumed_fps = False

    def _fps(self, frames: np.ndarray, stamps: np.ndarray) -> float:
        if self.fps is None:
            if (np.isfinite(stamps) & (stamps > 0)).any():
                self.fps = fps_of(frames, stamps)
            elif (frames > 0).any():  # frame 0 alone (timestamp 0) does not tell the rate yet
                self.fps, self.assumed_fps = self.fallback_fps, True
        return self.fps if self.fps is not None else self.fallback_fps

    def process(self, table: pa.Table) -> pa.Table:
        """Rows of this video (later frames than any earlier call) -> the rows with ``track_id`` and
        the ``*_smoothed`` columns filled, sorted by (frame, person)."""
        table = table.sort_by([("frame", "ascending"), ("person", "ascending")])
        n = table.num_rows
        frames = table.column("frame").to_numpy(zero_copy_only=False)
        if n and frames[0] <= self.last_frame:
            raise ValueError(f"frames must increase across calls (got {frames[0]} after {self.last_frame})")
        valid = table.column("error").is_null().to_numpy(zero_copy_only=False)
        stamps = table.column("timestamp").to_numpy(zero_copy_only=False).astype(np.float64)
        fps = self._fps(frames, np.nan_to_num(stamps, nan=-1.0))
        if self.tracker.frame == 0:  # the lost-track buffer is in frames at 30 fps: scale it to this video's rate
            self.tracker = ByteTracker3D(replace(self.tracker.config, frame_rate=fps))
        arrays = {name: column_array(table, name) for name in SMOOTHED}
        conf = table.column("center_conf").to_numpy(zero_copy_only=False).astype(np.float64)
        track_ids = np.full(n, -1, np.int64)
        smoothed = {name: values.copy() for name, values in arrays.items()}
        for frame in np.unique(frames):
            for _ in range(self.last_frame + 1, int(frame)):  # frames without anyone still age tracks
                self.tracker.update(np.zeros((0, 4)), np.zeros(0))
            rows = np.flatnonzero((frames == frame) & valid)
            cam, trans = arrays["cam"][rows], arrays["cam_trans"][rows]
            z = measurement(centers_of(cam, self.model), trans[:, 2], cam[:, 0])
            ids = self.tracker.update(z, conf[rows])
            track_ids[rows] = ids
            result = self.smoother.update(int(frame), fps, ids, arrays["smpl_thetas"][rows],
                                          arrays["smpl_betas"][rows], cam, trans)
            for name, values in zip(SMOOTHED, result, strict=True):
                smoothed[name][rows] = values
            self.last_frame = int(frame)
        return _with_tracking(table, track_ids, smoothed, valid)


def _with_tracking(table: pa.Table, track_ids: np.ndarray, smoothed: dict[str, np.ndarray] | None,
                   valid: np.ndarray) -> pa.Table:
    """``table`` with ``track_id`` and the smoothed columns set (added before ``error`` if absent);
    ``smoothed`` None: the raw values (rows that are not tracked)."""
    ids = pa.array(np.where(track_ids >= 0, track_ids, 0), pa.int64(), mask=track_ids < 0)
    table = _put(table, pa.field("track_id", pa.int64()), ids)
    for name in SMOOTHED:
        dtype = table.schema.field(name).type
        if smoothed is None:
            column = table.column(name)
        else:
            values = np.where(valid.reshape(-1, *([1] * (smoothed[name].ndim - 1))), smoothed[name], np.nan)
            column = array_column(values, dtype)
        table = _put(table, pa.field(f"{name}_smoothed", dtype), column)
    return table


def _put(table: pa.Table, field: pa.Field, column) -> pa.Table:
    if field.name in table.schema.names:
        return table.set_column(table.schema.get_field_index(field.name), field, column)
    index = table.schema.get_field_index("error")
    return table.add_column(index if index >= 0 else table.num_columns, field, column)


def untracked(table: pa.Table) -> pa.Table:
    """Rows that are not tracked (images, errors) with the tracking columns: null ids, smoothed = raw."""
    return _with_tracking(table, np.full(table.num_rows, -1, np.int64), None, np.zeros(table.num_rows, bool))


def is_video(source: str) -> bool:
    return kind_of(source) == "video"


def index_videos(files: list[str]) -> tuple[dict[str, list[tuple[int, str]]], list[str]]:
    """Which files hold which video's rows: {source: [(first frame, file)...] sorted}, and the
    files that hold any non-video rows (images)."""
    videos: dict[str, list[tuple[int, str]]] = {}
    others: list[str] = []
    for path in files:
        table = read_results_file(path, ["source", "frame"])
        sources = table.column("source").to_pylist()
        frames = table.column("frame").to_numpy(zero_copy_only=False)
        firsts: dict[str, int] = {}
        for source, frame in zip(sources, frames, strict=True):
            firsts[source] = min(firsts.get(source, int(frame)), int(frame))
        for source, first in firsts.items():
            if is_video(source):
                videos.setdefault(source, []).append((first, path))
        if any(not is_video(s) for s in firsts):
            others.append(path)
    return {k: sorted(v) for k, v in videos.items()}, others


@dataclass(frozen=True)
class VideoResult:
    tracks: int  # distinct track ids
    assumed_fps: bool  # no timestamps: tracked at the fallback rate


def track_video(source: str, files: list[tuple[int, str]], model: str, settings: TrackingSettings,
                write: Callable[[str, pa.Table], None], fallback_fps: float = DEFAULT_FPS) -> VideoResult:
    """Track one video streaming over its files (every column read and kept); ``write(file,
    tracked_rows)`` per file."""
    tracker = VideoTracker(model, settings, fallback_fps)
    for _, path in files:
        rows = read_results_file(path, None, source)
        require(rows, READ_COLUMNS, path)
        write(path, tracker.process(rows))
    return VideoResult(tracker.tracker.next_id - 1, tracker.assumed_fps)


def video_digest(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()[:16]


def tracked_name(source: str, path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return f"tracked.{video_digest(source)}.{stem}.parquet"
