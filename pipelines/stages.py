"""The stages of ``meshfleet infer``, as plain functions of batch dicts (numpy columns), usable without Ray.

    read_frames     (CPU)     one work unit -> its frames: read, decode, pad / resize / crop to views
    predict_frames  (device)  frames -> one row per detected person (+ one row per failed frame)

:mod:`pipelines.inference` puts them into a :class:`~pipelines.skeleton.Job`; the skeleton streams
them (on Ray or in this process) and commits each unit. Frame rows carry ``unit``, ``item`` (the
frame's index within its unit), ``source``, ``frame``, ``timestamp`` (NaN: none), ``error`` (""
when read), the network views ``views`` (V, 512, 512, 3) uint8 with ``offsets`` (V, 3) and ``crop``
(V,) (V = 0 for a failed frame, 1, or one per crop of a long image for BEV), ``height``, ``width``.

A unit whose reading fails transiently (network, throttling: :class:`TransientError` after the
retries) raises out of :func:`read_frames`: the skeleton leaves it uncommitted and reports it.
Permanent failures (not found, access denied, corrupt, unsupported) become error rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pyarrow as pa

from core import crowd
from core.predictor import ImagePreparer, Predictor, PreparedBatch, PreparedImage
from pipelines.readers import InputError, read_image
from pipelines.schema import prediction_columns
from pipelines.storage import join, read_parquet, table_to_bytes, write_bytes_atomic
from pipelines.units import WorkUnit
from pipelines.video import iter_video_frames

Batch = dict[str, np.ndarray]
IMAGE_READ_THREADS = 4
FRAMES_PER_BATCH = 8  # frames per block sent downstream: small enough to stream a video chunk


class FrameRows:
    """Accumulates frame rows of one unit and hands them out as batches of equal view count."""

    def __init__(self, unit: str, preparer: ImagePreparer, size: int):
        self.unit, self.preparer, self.size = unit, preparer, size
        self.rows: list[tuple] = []
        self.item = 0

    def add(self, source: str, frame: int, timestamp: float | None, image: np.ndarray | None,
            error: str | None) -> Batch | None:
        """Add one frame (an image, or why it failed); returns a full batch when one is ready."""
        prepared = None
        if image is not None:
            try:
                prepared = self.preparer(image)
            except ValueError as err:
                error = f"{source}: {err}"
        views = 0 if prepared is None else len(prepared.crop)
        ready = self.take() if self.rows and (len(self.rows) >= self.size or views != self.rows[-1][-1]) else None
        stamp = np.nan if timestamp is None else timestamp
        self.rows.append((self.item, source, frame, stamp, error or "", prepared, views))
        self.item += 1
        return ready

    def take(self) -> Batch | None:
        if not self.rows:
            return None
        rows, self.rows = self.rows, []
        views = rows[0][-1]
        prepared = [r[5] for r in rows]
        n = len(rows)
        batch = {
            "unit": np.full(n, self.unit), "item": np.array([r[0] for r in rows], np.int32),
            "source": np.array([r[1] for r in rows]), "frame": np.array([r[2] for r in rows], np.int64),
            "timestamp": np.array([r[3] for r in rows], np.float64), "error": np.array([r[4] for r in rows]),
            "height": np.array([p.height if p else 0 for p in prepared], np.int32),
            "width": np.array([p.width if p else 0 for p in prepared], np.int32),
        }
        if views:
            batch["views"] = np.stack([p.inputs for p in prepared])
            batch["offsets"] = np.stack([p.offsets for p in prepared]).astype(np.float32)
            batch["crop"] = np.stack([p.crop for p in prepared]).astype(np.int64)
        else:
            size = self.preparer.input_size
            batch["views"] = np.zeros((n, 0, size, size, 3), np.uint8)
            batch["offsets"] = np.zeros((n, 0, 3), np.float32)
            batch["crop"] = np.zeros((n, 0), np.int64)
        return batch


def read_frames(batch: Batch, preparer: ImagePreparer, frames_per_batch: int = FRAMES_PER_BATCH) -> Iterator[Batch]:
    """First stage: one unit (``payload`` = :meth:`WorkUnit.to_json`) -> exactly ``unit.frames`` frame
    rows (failed frames included), in batches of ``frames_per_batch``."""
    cv2.setNumThreads(1)  # decoding is the side task: the cores belong to the network
    unit = WorkUnit.from_json(str(batch["payload"][0]))
    rows = FrameRows(str(batch["unit"][0]), preparer, frames_per_batch)
    for source, frame, stamp, image, error in _frames(unit):
        if (ready := rows.add(source, frame, stamp, image, error)) is not None:
            yield ready
    if (rest := rows.take()) is not None:
        yield rest


def _frames(unit: WorkUnit) -> Iterator[tuple[str, int, float | None, np.ndarray | None, str | None]]:
    """(source, frame, timestamp, image or None, error or None) for every frame of ``unit``."""
    if unit.kind == "error":
        yield unit.uris[0], 0, None, None, unit.error or f"{unit.uris[0]}: unreadable"
        return
    if unit.kind == "images":
        def load(uri: str) -> np.ndarray | InputError:
            try:
                return read_image(uri)
            except InputError as err:  # permanent; a TransientError propagates and fails the unit
                return err

        with ThreadPoolExecutor(max_workers=min(IMAGE_READ_THREADS, len(unit.uris))) as pool:
            for uri, image in zip(unit.uris, pool.map(load, unit.uris), strict=True):
                if isinstance(image, InputError):
                    yield uri, 0, None, None, str(image)
                else:
                    yield uri, 0, None, image, None
        return
    uri, index = unit.uris[0], unit.start
    try:
        for decoded in iter_video_frames(uri, unit.start, unit.stop, unit.video_info()):
            if decoded.image is None:  # frames from here on cannot be decoded: one error row each
                for frame in range(decoded.index, unit.stop):
                    yield uri, frame, _stamp(frame, unit.fps), None, decoded.error or f"{uri}: frame unreadable"
                return
            yield uri, decoded.index, decoded.timestamp, decoded.image, None
            index = decoded.index + 1
    except InputError as err:
        for frame in range(index, unit.stop):
            yield uri, frame, _stamp(frame, unit.fps), None, str(err)
        return
    for frame in range(index, unit.stop):  # the decoder ended early without saying why
        yield uri, frame, _stamp(frame, unit.fps), None, f"{uri}: frame {frame} missing (truncated video?)"


def _stamp(frame: int, fps: float) -> float | None:
    return frame / fps if fps > 0 else None


def predict_frames(batch: Batch, predictor: Predictor) -> Batch:
    """Frames -> one row per detected person (``person`` >= 0), and one row per failed frame
    (``person`` -1, ``error`` set, numeric columns zero). Columns: those of
    :func:`pipelines.schema.prediction_columns`, plus ``unit``, ``item``, ``source``, ``frame``,
    ``timestamp`` and ``error`` of each row's frame."""
    ok = np.flatnonzero(np.asarray(batch["error"]) == "")
    images = [_prepared(batch, int(i), predictor) for i in ok]
    people = prediction_columns(predictor.run(PreparedBatch(images)))
    frame_of = ok[people.pop("image_index")]
    failed = np.flatnonzero(np.asarray(batch["error"]) != "")
    rows = np.concatenate([frame_of, failed])
    out = {name: np.asarray(batch[name])[rows] for name in ("unit", "item", "source", "frame", "timestamp", "error")}
    for name, values in people.items():
        filler = np.full(len(failed), -1, values.dtype) if name == "person" else \
            np.zeros((len(failed), *values.shape[1:]), values.dtype)
        out[name] = np.concatenate([values, filler])
    return out


def _prepared(batch: Batch, i: int, predictor: Predictor) -> PreparedImage:
    views, crop = np.asarray(batch["views"][i]), np.asarray(batch["crop"][i])
    height, width = int(batch["height"][i]), int(batch["width"][i])
    plan = crowd.plan_crops(height, width, predictor.prepare_image.overlap) if crop[0] >= 0 else None
    return PreparedImage(views, np.asarray(batch["offsets"][i]), crop, height, width, plan)


class PredictFrames:
    """The device stage, built once per worker: loads the model (``spec``: a
    :class:`pipelines.inference.ModelSpec`; or reuses ``predictor``) and runs :func:`predict_frames`."""

    def __init__(self, spec, torch_threads: int | None = None, predictor: Predictor | None = None):
        import torch

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.predictor = predictor if predictor is not None else spec.build()

    def __call__(self, batch: Batch) -> Batch:
        return predict_frames(batch, self.predictor)


def trim_unit(output: str, unit: WorkUnit, drop: set[str]) -> WorkUnit:
    """Rewrite a committed unit file without the rows of the sources ``drop`` (atomically); returns
    the unit as it now is (``drop`` removed from its inputs)."""
    path = join(output, unit.name)
    table = read_parquet(path)
    keep = pa.array([s not in drop for s in table.column("source").to_pylist()], pa.bool_())
    write_bytes_atomic(path, table_to_bytes(table.filter(keep)))
    return WorkUnit(unit.kind, tuple(u for u in unit.uris if u not in drop), unit.start, unit.stop, unit.fps,
                    unit.total_frames, unit.error)
