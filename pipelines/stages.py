"""The three stages of every inference job, as plain functions of one work unit.

    decode_unit   (CPU)     read + decode frames, pad / resize / crop them into network views
    predict_unit  (device)  Predictor.run on the unit's views -> one Arrow table, error rows included
    commit_unit   (I/O)     write the table as the unit's results file, atomically

The Ray pipeline runs them as streaming stages; :func:`run_sequential` runs them in a loop (used
for debugging with ``--no-ray`` and by tests). They can be called without Ray.

A unit whose reading fails transiently (network, throttling: :class:`TransientError` after the
retries) is not committed: the run reports it and a rerun retries it. Permanent failures (not
found, access denied, corrupt, unsupported) become error rows.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from core.predictor import ImagePreparer, Predictor, PreparedBatch, PreparedImage
from pipelines.readers import InputError, iter_video_frames, read_image
from pipelines.schema import FrameRef, error_table, predictions_table
from pipelines.storage import TransientError, join, read_parquet, write_bytes_atomic
from pipelines.units import WorkUnit

IMAGE_READ_THREADS = 8
FRAMES_PER_RUN = 16


@dataclass
class DecodedUnit:
    """Network-ready views of a unit's readable frames, and the frames that failed."""

    unit: WorkUnit
    frames: list[FrameRef] = field(default_factory=list)
    prepared: list[PreparedImage] = field(default_factory=list)
    errors: list[tuple[FrameRef, str]] = field(default_factory=list)


@dataclass(frozen=True)
class UnitStats:
    """What committing a unit did; ``failed``: why it was left uncommitted (a transient failure)."""

    name: str
    frames: int
    persons: int
    errors: int
    failed: str | None = None


def _prepare_into(out: DecodedUnit, ref: FrameRef, image, preparer: ImagePreparer) -> None:
    try:
        out.prepared.append(preparer(image))
        out.frames.append(ref)
    except ValueError as err:
        out.errors.append((ref, f"{ref.source}: {err}"))


def decode_unit(unit: WorkUnit, preparer: ImagePreparer) -> DecodedUnit:
    """Read and pre-process every frame of ``unit``; permanent failures become error entries, a
    transient one raises :class:`TransientError` (the unit is then not committed)."""
    out = DecodedUnit(unit)
    if unit.kind == "error":
        out.errors.append((FrameRef(unit.uris[0], 0, None), unit.error or f"{unit.uris[0]}: unreadable"))
        return out
    if unit.kind == "images":
        def load(uri: str):
            try:
                return read_image(uri)
            except InputError as err:
                return err

        with ThreadPoolExecutor(max_workers=min(IMAGE_READ_THREADS, len(unit.uris))) as pool:
            for uri, image in zip(unit.uris, pool.map(load, unit.uris), strict=True):
                ref = FrameRef(uri, 0, None)
                if isinstance(image, InputError):
                    out.errors.append((ref, str(image)))
                else:
                    _prepare_into(out, ref, image, preparer)
        return out
    uri = unit.uris[0]
    try:
        for frame in iter_video_frames(uri, unit.start, unit.stop, unit.video_info()):
            ref = FrameRef(uri, frame.index, frame.timestamp)
            if frame.image is None:
                out.errors.append((ref, frame.error or f"{uri}: frame {frame.index} unreadable"))
            else:
                _prepare_into(out, ref, frame.image, preparer)
    except InputError as err:
        out.errors.append((FrameRef(uri, unit.start, None), str(err)))
    return out


def predict_unit(decoded: DecodedUnit, predictor: Predictor, schema: pa.Schema) -> pa.Table:
    """Results of one decoded unit: one row per person, plus one row per failed frame."""
    tables = []
    step = max(predictor.batch_size, FRAMES_PER_RUN)  # bounds the stacked views held at once
    for i in range(0, len(decoded.prepared), step):
        pred = predictor.run(PreparedBatch(decoded.prepared[i:i + step]))
        tables.append(predictions_table(pred, decoded.frames[i:i + step], schema))
    if decoded.errors:
        refs, messages = zip(*decoded.errors, strict=True)
        tables.append(error_table(list(refs), list(messages), schema))
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    return table.sort_by([("frame", "ascending")]) if decoded.unit.kind == "video" else table


def table_to_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def commit_unit(table: pa.Table, output: str, unit: WorkUnit) -> UnitStats:
    """Write the unit's results file (even when empty: the file is the unit's commit record)."""
    write_bytes_atomic(join(output, unit.name), table_to_bytes(table))
    errors = table.column("error").drop_null()
    return UnitStats(unit.name, unit.frames, table.num_rows - len(errors), len(errors))


def trim_unit(output: str, unit: WorkUnit, drop: set[str]) -> WorkUnit:
    """Rewrite a committed unit file without the rows of the sources ``drop`` (atomically); returns
    the unit as it now is (``drop`` removed from its inputs)."""
    path = join(output, unit.name)
    table = read_parquet(path)
    keep = pa.array([s not in drop for s in table.column("source").to_pylist()], pa.bool_())
    write_bytes_atomic(path, table_to_bytes(table.filter(keep)))
    return WorkUnit(unit.kind, tuple(u for u in unit.uris if u not in drop), unit.start, unit.stop, unit.fps,
                    unit.total_frames, unit.error)


def run_sequential(units: list[WorkUnit], predictor: Predictor, schema: pa.Schema, output: str,
                   on_unit=None) -> list[UnitStats]:
    """All stages, one unit after the other, in this process."""
    stats = []
    for unit in units:
        try:
            decoded = decode_unit(unit, predictor.prepare_image)
        except TransientError as err:
            stats.append(UnitStats(unit.name, 0, 0, 0, failed=str(err)))
        else:
            stats.append(commit_unit(predict_unit(decoded, predictor, schema), output, unit))
        if on_unit:
            on_unit(stats[-1])
    return stats
