"""Tracking jobs: ``infer --track`` (in place, after inference) and ``meshfleet track`` (a new dataset).

Videos are tracked independently, several at a time; each video streams over its own results
files in frame order, so memory holds one file of one video per worker, never the corpus. Every
input column is kept; ``track_id`` and the ``*_smoothed`` columns are added or updated.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import pyarrow as pa

from pipelines.jobstate import Ledger, check_overlap, claim_output
from pipelines.results import check_columns, read_results_file, results_files
from pipelines.schema import read_metadata, with_metadata
from pipelines.storage import join, normalise, read_parquet_schema, table_to_bytes, write_bytes_atomic
from pipelines.tracking import (
    DEFAULT_FPS,
    READ_COLUMNS,
    TrackingSettings,
    VideoResult,
    index_videos,
    is_video,
    track_video,
    tracked_name,
    untracked,
    video_digest,
)

log = logging.getLogger(__name__)
MARKERS = "_meshfleet_tracking"
THREADS = 8


class TrackingError(RuntimeError):
    """The results dataset cannot be tracked (unknown model, mixed models, unordered chunks)."""


@dataclass(frozen=True)
class TrackJob:
    """``meshfleet track``: re-track ``results`` into ``output``. ``fps``: frame rate assumed for
    videos whose rows carry no timestamps."""

    results: str
    output: str
    settings: TrackingSettings = field(default_factory=TrackingSettings)
    overwrite: bool = False
    fps: float = DEFAULT_FPS

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, not {self.fps}")


@dataclass
class TrackSummary:
    videos: int = 0
    skipped_videos: int = 0
    tracks: int = 0
    files: int = 0
    assumed_fps: list[str] = field(default_factory=list)  # videos without timestamps
    fps: float = DEFAULT_FPS
    incomplete: int = 0  # videos with units not committed yet (tracked by the rerun that finishes them)

    def add(self, result: VideoResult, source: str) -> None:
        self.tracks += result.tracks
        if result.assumed_fps:
            self.assumed_fps.append(source)

    def line(self) -> str:
        line = (f"videos {self.videos} ({self.skipped_videos} already tracked)  tracks {self.tracks}  "
                f"files written {self.files}")
        if self.incomplete:
            line += f"  ({self.incomplete} videos not tracked yet: some of their units are not committed)"
        if self.assumed_fps:
            line += (f"\n{len(self.assumed_fps)} videos have no timestamps; tracked at --fps {self.fps:g} "
                     f"(e.g. {self.assumed_fps[0]})")
        return line


def settings_identity(settings: TrackingSettings) -> dict:
    return {"tracker": asdict(settings.tracker), "smoothing": asdict(settings.smoothing)}


def dataset_model(files: list[str]) -> str:
    """The model of a results dataset, from its metadata (or its ``model`` column)."""
    models = set()
    for path in files[:1] + files[-1:]:
        meta = read_metadata(read_parquet_schema(path))
        if meta.get("model"):
            models.add(meta["model"])
        else:
            column = read_results_file(path, ["model"]).column("model").drop_null().unique().to_pylist()
            models.update(column)
    if len(models) != 1:
        raise TrackingError(f"cannot tell the model of the dataset (found {sorted(models) or 'none'})")
    return models.pop()


def marker_name(source: str) -> str:
    return f"{MARKERS}/{video_digest(source)}.json"


def video_sources(ledger: Ledger) -> dict[str, set[str]]:
    """Unit names per video source, from an infer ledger."""
    out: dict[str, set[str]] = {}
    for name, unit in ledger.units.items():
        if unit.get("kind") == "video":
            out.setdefault(unit["uris"][0], set()).add(name)
    return out


def track_in_place(ledger: Ledger, settings: TrackingSettings) -> TrackSummary:
    """Fill ``track_id`` and the smoothed columns of an ``infer --track`` output, video by video.
    Only videos whose units are all committed are tracked; videos already marked done are skipped
    (a rerun re-tracks only unfinished videos, and a video whose units were redone)."""
    files = results_files(ledger.output)
    if not files:
        return TrackSummary()
    model = dataset_model(files)
    videos, _ = index_videos(files)
    committed, units_of = ledger.committed(), video_sources(ledger)
    complete = {s for s in videos if units_of.get(s, set()) <= committed}
    present = ledger.present()
    todo = {s: f for s, f in videos.items() if s in complete and marker_name(s) not in present}
    summary = TrackSummary(videos=len(videos), skipped_videos=len(complete) - len(todo),
                           incomplete=len(videos) - len(complete))
    ledger.declare(files=[marker_name(s) for s in sorted(todo)])

    def one(source: str) -> VideoResult:
        def write(path: str, table: pa.Table) -> None:
            write_bytes_atomic(path, table_to_bytes(table))

        result = track_video(source, todo[source], model, settings, write)
        record = {"source": source, "tracks": result.tracks, **settings_identity(settings)}
        write_bytes_atomic(join(ledger.output, marker_name(source)), json.dumps(record).encode())
        return result

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for source, result in zip(sorted(todo), pool.map(one, sorted(todo)), strict=True):
            summary.add(result, source)
    summary.files = sum(len(f) for f in todo.values())
    return summary


def track_dataset(results: str, output: str, settings: TrackingSettings, overwrite: bool = False,
                  fps: float = DEFAULT_FPS) -> TrackSummary:
    """Re-track an existing results dataset into a new one (no network run): one file per video
    chunk with every input column plus ``track_id`` and the smoothed columns; rows of images and
    unreadable inputs are copied with a null ``track_id``."""
    results, output = normalise(results), normalise(output)
    check_overlap(output, [results])
    files = results_files(results)
    if not files:
        raise TrackingError(f"{results}: no results files")
    check_columns(files, READ_COLUMNS)  # before the output is claimed
    model = dataset_model(files)
    videos, others = index_videos(files)
    identity = {"results": results, "fps": fps, **settings_identity(settings)}
    ledger = claim_output(output, "track", identity, overwrite, on_existing="refuse")
    names = {(s, p): tracked_name(s, p) for s, chunks in videos.items() for _, p in chunks}
    copies = {p: f"untracked.{p.rsplit('/', 1)[-1]}" for p in others}
    ledger.declare(units={**{n: {"source": s, "from": p} for (s, p), n in names.items()},
                          **{n: {"from": p} for p, n in copies.items()}})
    meta = read_metadata(read_parquet_schema(files[0]))
    metadata = {**meta, "model": model, "tracking": settings_identity(settings)}
    summary = TrackSummary(videos=len(videos), fps=fps)

    def one(source: str) -> VideoResult:
        def write(path: str, table: pa.Table) -> None:
            table = table.replace_schema_metadata(with_metadata(table.schema, metadata).metadata)
            write_bytes_atomic(join(output, names[(source, path)]), table_to_bytes(table))

        return track_video(source, videos[source], model, settings, write, fps)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for source, result in zip(sorted(videos), pool.map(one, sorted(videos)), strict=True):
            summary.add(result, source)
    for path, name in copies.items():  # images and unreadable inputs: every column, no tracking
        rows = read_results_file(path)
        keep = [not is_video(s) for s in rows.column("source").to_pylist()]
        rows = untracked(rows.filter(pa.array(keep, pa.bool_())))
        rows = rows.replace_schema_metadata(with_metadata(rows.schema, metadata).metadata)
        write_bytes_atomic(join(output, name), table_to_bytes(rows))
    summary.files = len(names) + len(copies)
    return summary
