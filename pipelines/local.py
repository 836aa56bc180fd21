"""Single-process inference over local files: reader -> Predictor -> Parquet writer.

This is the embedded path of ``meshfleet infer``; the distributed Ray Data pipeline runs the
same stages (decode, prepare, predict, write) on workers and actors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from core.predictor import Predictor
from pipelines.readers import InputError, InputItem, iter_video_frames, read_image
from pipelines.schema import FrameRef, error_table, predictions_table
from pipelines.writer import ResultsWriter

log = logging.getLogger(__name__)

ROWS_PER_PART = 20_000


@dataclass
class RunSummary:
    inputs: int = 0
    frames: int = 0
    persons: int = 0
    errors: int = 0
    wall_s: float = 0.0
    files: list[str] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class Frame:
    ref: FrameRef
    image: np.ndarray | None
    error: str | None = None


def iter_frames(items: Sequence[InputItem]) -> Iterator[Frame]:
    """Every frame of every input, in order; unreadable ones carry their error."""
    for item in items:
        if item.kind == "image":
            try:
                yield Frame(FrameRef(item.uri, 0, None), read_image(item.uri))
            except InputError as err:
                yield Frame(FrameRef(item.uri, 0, None), None, str(err))
            continue
        try:
            for decoded in iter_video_frames(item.uri):
                yield Frame(FrameRef(item.uri, decoded.index, decoded.timestamp), decoded.image, decoded.error)
        except InputError as err:
            yield Frame(FrameRef(item.uri, 0, None), None, str(err))


def _batches(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_frames(predictor: Predictor, frames: list[Frame], schema: pa.Schema) -> pa.Table:
    """Predict the readable frames of a batch; unreadable or failing frames become error rows."""
    good = [f for f in frames if f.image is not None]
    bad = [f for f in frames if f.image is None]
    tables = []
    if good:
        try:
            pred = predictor.predict([f.image for f in good if f.image is not None])
            tables.append(predictions_table(pred, [f.ref for f in good], schema))
        except (ValueError, RuntimeError) as err:
            if len(good) == 1:
                bad.append(Frame(good[0].ref, None, f"{good[0].ref.source}: inference failed: {err}"))
            else:  # isolate the offending frame(s), keep the rest
                for frame in good:
                    tables.append(predict_frames(predictor, [frame], schema))
    if bad:
        tables.append(error_table([f.ref for f in bad], [f.error or "unknown error" for f in bad], schema))
    return pa.concat_tables(tables) if tables else schema.empty_table()


def run_local(
    items: Sequence[InputItem],
    predictor: Predictor,
    writer: ResultsWriter,
    batch_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Run ``predictor`` over ``items`` in batches of ``batch_size`` frames, writing as it goes."""
    summary = RunSummary(inputs=len(items))
    start = time.perf_counter()
    pending: list[pa.Table] = []
    pending_rows = 0
    for batch in _batches(iter_frames(items), batch_size):
        table = predict_frames(predictor, batch, writer.schema)
        errors = table.column("error").drop_null()
        summary.frames += len(batch)
        summary.errors += len(errors)
        summary.persons += table.num_rows - len(errors)
        for message in errors.to_pylist():
            log.warning("%s", message)
        pending.append(table)
        pending_rows += table.num_rows
        if pending_rows >= ROWS_PER_PART:
            _flush(writer, pending, summary)
            pending, pending_rows = [], 0
        if progress:
            progress(summary.frames, summary.persons)
    _flush(writer, pending, summary)
    summary.wall_s = time.perf_counter() - start
    return summary


def _flush(writer: ResultsWriter, tables: list[pa.Table], summary: RunSummary) -> None:
    if tables:
        path = writer.write(pa.concat_tables(tables))
        if path is not None:
            summary.files.append(str(path))
