"""The Parquet results schema -- the one place where numeric results become Arrow columns.

One row per detected person per frame (see ARCHITECTURE.md, "Results dataset"). Array columns
are fixed-size lists of float32, nested for 2-D arrays, so that pandas, DuckDB, Polars and
Spark read them without meshfleet. A frame that could not be read becomes one row with only
``source``, ``frame`` and ``error`` set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from core.body_models import NUM_JOINTS, NUM_VERTS
from core.predictor import Predictions

METADATA_KEY = b"meshfleet"
CAMERA_CONVENTION = (
    "canonical camera of the original image: FOV 60 deg over the padded square side S = max(h, w); "
    "f = 443.4 * S / 512 px, principal point (S/2 - left_pad, S/2 - top_pad); cam_trans in metres. "
    "ROMP cam = (s, tx, ty) weak perspective, BEV cam = (s, y, x)."
)


def _fixed(inner: pa.DataType, *sizes: int) -> pa.DataType:
    """fixed_size_list nested outermost-first: _fixed(f32, 71, 3) = fsl<fsl<f32, 3>, 71>."""
    for size in reversed(sizes):
        inner = pa.list_(inner, size)
    return inner


SMOOTHED = ("smpl_thetas", "smpl_betas", "cam", "cam_trans")  # columns that tracking smooths


def results_schema(num_betas: int, with_verts: bool = False, with_age: bool = False,
                   with_tracking: bool = False, num_verts: int = NUM_VERTS) -> pa.Schema:
    """Arrow schema of a results file for a model with ``num_betas`` shape coefficients.

    ``num_verts``: vertices per person in ``verts`` (the body-model set's; 6890 for SMPL).

    ``with_tracking`` adds ``<name>_smoothed`` for the columns in ``SMOOTHED`` (filled by tracking;
    equal to the raw values for people without a track id).
    """
    f32 = pa.float32()
    fields = [
        pa.field("source", pa.string(), nullable=False),
        pa.field("frame", pa.int64(), nullable=False),
        pa.field("timestamp", pa.float64()),
        pa.field("person", pa.int32()),
        pa.field("track_id", pa.int64()),
        pa.field("model", pa.string()),
        pa.field("center_conf", f32),
        pa.field("cam", _fixed(f32, 3)),
        pa.field("cam_trans", _fixed(f32, 3)),
        pa.field("smpl_thetas", _fixed(f32, 72)),
        pa.field("smpl_betas", _fixed(f32, num_betas)),
        pa.field("joints", _fixed(f32, NUM_JOINTS, 3)),
        pa.field("pj2d_org", _fixed(f32, NUM_JOINTS, 2)),
        pa.field("image_height", pa.int32()),
        pa.field("image_width", pa.int32()),
    ]
    if with_age:
        fields.append(pa.field("age_class", pa.int8()))
    if with_verts:
        fields.append(pa.field("verts", _fixed(f32, num_verts, 3)))
    if with_tracking:
        sizes = {"smpl_thetas": 72, "smpl_betas": num_betas, "cam": 3, "cam_trans": 3}
        fields.extend(pa.field(f"{name}_smoothed", _fixed(f32, sizes[name])) for name in SMOOTHED)
    fields.append(pa.field("error", pa.string()))
    return pa.schema(fields)


def array_column(values: np.ndarray, dtype: pa.DataType, null_rows: np.ndarray | None = None) -> pa.Array:
    """(N, *shape) float array -> nested fixed-size-list column of ``dtype`` (zero-copy flat).

    ``null_rows`` (N,) bool: rows whose values are all null (error rows: valid lists of null values,
    as :func:`error_table` writes them)."""
    flat_values = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    mask = None
    if null_rows is not None and null_rows.any():
        mask = np.repeat(np.asarray(null_rows, bool), flat_values.size // max(len(null_rows), 1))
    flat: pa.Array = pa.array(flat_values, pa.float32(), mask=mask)
    for size in reversed(_nested_sizes(dtype)):
        flat = pa.FixedSizeListArray.from_arrays(flat, size)
    return flat


@dataclass(frozen=True)
class FrameRef:
    """Where an input image came from: source URI, frame index (0 for images), time in seconds."""

    source: str
    frame: int = 0
    timestamp: float | None = None


def prediction_columns(pred: Predictions) -> dict[str, np.ndarray]:
    """Per-person numpy columns of ``pred``: the row content of the results schema, plus
    ``image_index`` (which input image each person was found in)."""
    idx = pred.image_index
    columns = {
        "image_index": idx.astype(np.int64),
        "person": pred.person.astype(np.int32),
        "center_conf": pred.center_conf.astype(np.float32),
        "image_height": pred.image_hw[idx, 0].astype(np.int32),
        "image_width": pred.image_hw[idx, 1].astype(np.int32),
    }
    for name in ("cam", "cam_trans", "smpl_thetas", "smpl_betas", "joints", "pj2d_org"):
        columns[name] = np.asarray(getattr(pred, name), np.float32)
    if pred.age_class is not None:
        columns["age_class"] = pred.age_class.astype(np.int8)
    if pred.verts is not None:
        columns["verts"] = np.asarray(pred.verts, np.float32)
    return columns


def results_table(rows: dict[str, np.ndarray], schema: pa.Schema, model: str) -> pa.Table:
    """Rows as numpy columns -> a table of ``schema``: ``source``, ``frame``, ``timestamp`` (NaN:
    none), ``error`` ("" on good rows) and the columns of :func:`prediction_columns`. Error rows get
    nulls (lists of null values in array columns); ``track_id`` is null until tracking; the
    ``*_smoothed`` columns start as the raw values."""
    n = len(rows["source"])
    bad = np.asarray(rows["error"]).astype(str) != ""
    stamps = np.asarray(rows["timestamp"], np.float64)
    columns: dict[str, pa.Array] = {
        "source": pa.array(np.asarray(rows["source"]).astype(str), pa.string()),
        "frame": pa.array(np.asarray(rows["frame"], np.int64)),
        "timestamp": pa.array(stamps, pa.float64(), mask=np.isnan(stamps)),
        "track_id": pa.nulls(n, pa.int64()),
        "model": pa.array(np.full(n, model), pa.string(), mask=bad),
        "error": pa.array(np.asarray(rows["error"]).astype(str), pa.string(), mask=~bad),
    }
    for field in schema:
        if field.name in columns or field.name.endswith("_smoothed"):
            continue
        if field.name not in rows:
            if field.name == "verts":
                raise ValueError("schema has verts but the predictions were made without save_verts")
            values = np.full(n, -1, np.int8) if field.name == "age_class" else None
            columns[field.name] = pa.array(values, field.type, mask=bad) if values is not None else \
                pa.nulls(n, field.type)
        elif pa.types.is_fixed_size_list(field.type):
            columns[field.name] = array_column(rows[field.name], field.type, bad)
        else:
            columns[field.name] = pa.array(np.asarray(rows[field.name]), field.type, mask=bad)
    for name in SMOOTHED:  # until tracking runs, the smoothed values are the raw ones
        if f"{name}_smoothed" in schema.names:
            columns[f"{name}_smoothed"] = columns[name]
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


def predictions_table(pred: Predictions, frames: Sequence[FrameRef], schema: pa.Schema) -> pa.Table:
    """Rows of ``pred`` (whose images are ``frames``, in order) as a table of ``schema``."""
    if len(frames) != pred.image_hw.shape[0]:
        raise ValueError(f"{len(frames)} frame refs for {pred.image_hw.shape[0]} images")
    rows = prediction_columns(pred)
    idx = rows.pop("image_index")
    rows.update(_frame_columns([frames[i] for i in idx]), error=np.full(len(idx), ""))
    return results_table(rows, schema, pred.model)


def _frame_columns(frames: Sequence[FrameRef]) -> dict[str, np.ndarray]:
    return {"source": np.array([f.source for f in frames], dtype=object).astype(str),
            "frame": np.array([f.frame for f in frames], np.int64),
            "timestamp": np.array([np.nan if f.timestamp is None else f.timestamp for f in frames], np.float64)}


def _nested_sizes(dtype: pa.DataType) -> list[int]:
    sizes = []
    while pa.types.is_fixed_size_list(dtype):
        sizes.append(dtype.list_size)
        dtype = dtype.value_type
    return sizes


def error_table(frames: Sequence[FrameRef], errors: Sequence[str], schema: pa.Schema) -> pa.Table:
    """One row per unreadable input: source, frame, timestamp and error set, the rest null
    (array columns hold lists of null values: pyarrow 25 cannot read back a Parquet column holding a
    null fixed-size list -- "Expected all lists to be of size=3 but index 2 had size=0")."""
    n = len(frames)
    rows = {**_frame_columns(frames), "error": np.array(list(errors), dtype=object).astype(str),
            "person": np.full(n, -1, np.int32)}
    for field in schema:
        if pa.types.is_fixed_size_list(field.type):
            rows[field.name] = np.zeros((n, *_nested_sizes(field.type)), np.float32)
    return results_table(rows, schema, "")


def with_metadata(schema: pa.Schema, metadata: dict) -> pa.Schema:
    """Attach the run's metadata (model, checkpoint sha256, thresholds, versions, camera)."""
    return schema.with_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})


def read_metadata(schema: pa.Schema) -> dict:
    """The meshfleet metadata of a results file's schema ({} if absent)."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def column_array(table: Any, name: str | None = None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """An array column -> float32 array (N, *shape).

    ``table`` is an Arrow table or a pandas DataFrame (with ``name``), or one column on its own (an
    Arrow array or a pandas Series, ``name`` None). Arrow fixed-size lists give their own shape;
    flat lists of equal length need ``shape``. pandas cells may be numpy arrays (as
    ``pipelines.results.read_results(..., pandas=True)`` and ``pandas.read_parquet`` give them) or
    nested lists. Error rows (nulls) must be filtered out first.
    """
    col = _column_of(table, name)
    if not isinstance(col, (pa.Array, pa.ChunkedArray)):
        return _pandas_column_array(col, name, shape)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if col.null_count:
        raise ValueError(f"column {name!r} has {col.null_count} null rows; drop error rows first")
    sizes = []
    values = col
    while pa.types.is_fixed_size_list(values.type) or pa.types.is_list(values.type):
        if pa.types.is_fixed_size_list(values.type):
            sizes.append(values.type.list_size)
        values = values.flatten()
    flat = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if shape is None:
        shape = tuple(sizes) if pa.types.is_fixed_size_list(col.type) else (-1,)
    return flat.reshape(len(col), *shape)


def _column_of(table: Any, name: str | None) -> Any:
    if name is None:
        return table
    if isinstance(table, pa.Table):
        return table.column(name)
    return table[name]  # a pandas DataFrame


def _pandas_column_array(series: Any, name: str | None, shape: tuple[int, ...] | None) -> np.ndarray:
    cells = list(series)
    missing = sum(cell is None or (np.ndim(cell) == 0 and cell != cell) for cell in cells)
    if missing:
        raise ValueError(f"column {name!r} has {missing} null rows; drop error rows first")
    if not cells:
        return np.zeros((0, *(shape or ())), np.float32)
    stacked = np.stack([_dense(cell) for cell in cells])
    return stacked.reshape(len(cells), *shape) if shape is not None else stacked


def _dense(cell: Any) -> np.ndarray:
    """A cell (numpy array, possibly of arrays as pandas stores nested lists, or a list) -> float32."""
    if isinstance(cell, np.ndarray) and cell.dtype != object:
        return cell.astype(np.float32, copy=False)
    return np.array([_dense(c) for c in cell] if len(cell) and np.ndim(cell[0]) else list(cell), np.float32)
