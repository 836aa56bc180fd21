"""Tracking jobs: ``infer --track`` (in place, after inference) and ``meshfleet track`` (a new dataset).

Videos are tracked independently, several at a time; each video streams over its own results
files in frame order, so memory holds one file of one video per worker, never the corpus.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import pyarrow as pa

from pipelines.schema import SMOOTHED, read_metadata, results_schema, with_metadata
from pipelines.stages import table_to_bytes
from pipelines.storage import (
    join,
    list_files,
    read_parquet_schema,
    remove,
    url_to_fs,
    with_retries,
    write_bytes_atomic,
)
from pipelines.tracking import (
    READ_COLUMNS,
    TrackingSettings,
    index_videos,
    read_rows,
    track_video,
    tracked_name,
    video_digest,
)

log = logging.getLogger(__name__)
MARKERS = "_meshfleet_tracking"
THREADS = 8


class TrackingError(RuntimeError):
    """The results dataset cannot be tracked (unknown model, mixed models, unordered chunks)."""


@dataclass(frozen=True)
class TrackJob:
    """``meshfleet track``: re-track ``results`` into ``output``."""

    results: str
    output: str
    settings: TrackingSettings = field(default_factory=TrackingSettings)
    overwrite: bool = False


@dataclass
class TrackSummary:
    videos: int = 0
    skipped_videos: int = 0
    tracks: int = 0
    files: int = 0

    def line(self) -> str:
        return (f"videos {self.videos} ({self.skipped_videos} already tracked)  tracks {self.tracks}  "
                f"files written {self.files}")


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
            column = read_rows(path, None, ["model"]).column("model").drop_null().unique().to_pylist()
            models.update(column)
    if len(models) != 1:
        raise TrackingError(f"cannot tell the model of the dataset (found {sorted(models) or 'none'})")
    return models.pop()


def track_in_place(output: str, settings: TrackingSettings) -> TrackSummary:
    """Fill ``track_id`` and the smoothed columns of an ``infer --track`` output, video by video;
    videos already marked done are skipped (a rerun re-tracks only unfinished videos)."""
    files = list_files(output, ".parquet")
    if not files:
        return TrackSummary()
    model = dataset_model(files)
    videos, _ = index_videos(files)
    done = {name.rsplit("/", 1)[-1] for name in _list_markers(output)}
    todo = {s: f for s, f in videos.items() if f"{video_digest(s)}.json" not in done}
    summary = TrackSummary(videos=len(videos), skipped_videos=len(videos) - len(todo))

    def one(source: str) -> int:
        def write(path: str, table: pa.Table) -> None:
            write_bytes_atomic(path, table_to_bytes(table))

        tracks = track_video(source, todo[source], model, settings, write)
        record = {"source": source, "tracks": tracks, **settings_identity(settings)}
        write_bytes_atomic(join(join(output, MARKERS), f"{video_digest(source)}.json"), json.dumps(record).encode())
        return tracks

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for tracks in pool.map(one, sorted(todo)):
            summary.tracks += tracks
    summary.files = sum(len(f) for f in todo.values())
    return summary


def _list_markers(output: str) -> list[str]:
    fs, root = url_to_fs(join(output, MARKERS))
    return with_retries(lambda: fs.find(root), f"list {root}") if fs.exists(root) else []


def track_dataset(results: str, output: str, settings: TrackingSettings, overwrite: bool = False) -> TrackSummary:
    """Re-track an existing results dataset into a new one (no network run): one file per video
    chunk with ``track_id`` and the smoothed columns; image rows are copied as they are."""
    files = list_files(results, ".parquet")
    if not files:
        raise TrackingError(f"{results}: no results files")
    existing = list_files(output, ".parquet")
    if existing and not overwrite:
        raise TrackingError(f"{output} already holds {len(existing)} files; pass --overwrite to replace them")
    for path in existing:
        remove(path)
    model = dataset_model(files)
    videos, others = index_videos(files)
    meta = read_metadata(read_parquet_schema(files[0]))
    schema = _tracked_schema(model, meta, settings)
    summary = TrackSummary(videos=len(videos))

    def one(source: str) -> int:
        def write(path: str, table: pa.Table) -> None:
            write_bytes_atomic(join(output, tracked_name(source, path)), table_to_bytes(table.select(schema.names)
                                                                                        .cast(schema)))

        return track_video(source, videos[source], model, settings, write, columns=list(READ_COLUMNS))

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        summary.tracks = sum(pool.map(one, sorted(videos)))
    for path in others:  # images and unreadable inputs: documented columns, no tracking
        rows = read_rows(path, None, list(READ_COLUMNS))
        rows = rows.filter(pa.compute.invert(pa.compute.is_in(rows.column("source"), pa.array(list(videos)))))
        name = path.rsplit("/", 1)[-1]
        write_bytes_atomic(join(output, f"untracked.{name}"), table_to_bytes(_pad(rows, schema)))
    summary.files = len(list_files(output, ".parquet"))
    return summary


def _tracked_schema(model: str, meta: dict, settings: TrackingSettings) -> pa.Schema:
    """The documented columns + tracking, with the source metadata and the tracking settings."""
    full = results_schema(10 if model == "romp" else 11, with_tracking=True)
    names = [n for n in READ_COLUMNS if n != "error"] + [f"{n}_smoothed" for n in SMOOTHED] + ["error"]
    schema = pa.schema([full.field(n) for n in names])
    return with_metadata(schema, {**meta, "model": model, "tracking": settings_identity(settings)})


def _pad(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """Untracked rows in the tracked schema: smoothed = raw, track_id null."""
    columns = []
    for column in schema:
        if column.name in rows.column_names:
            columns.append(rows.column(column.name).cast(column.type))
        elif column.name.endswith("_smoothed"):
            columns.append(rows.column(column.name.removesuffix("_smoothed")).cast(column.type))
        else:
            columns.append(pa.nulls(rows.num_rows, column.type))
    return pa.Table.from_arrays(columns, schema=schema)
