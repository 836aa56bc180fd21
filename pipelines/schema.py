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
                   with_tracking: bool = False) -> pa.Schema:
    """Arrow schema of a results file for a model with ``num_betas`` shape coefficients.

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
        fields.append(pa.field("verts", _fixed(f32, NUM_VERTS, 3)))
    if with_tracking:
        sizes = {"smpl_thetas": 72, "smpl_betas": num_betas, "cam": 3, "cam_trans": 3}
        fields.extend(pa.field(f"{name}_smoothed", _fixed(f32, sizes[name])) for name in SMOOTHED)
    fields.append(pa.field("error", pa.string()))
    return pa.schema(fields)


def array_column(values: np.ndarray, dtype: pa.DataType) -> pa.Array:
    """(N, *shape) float array -> nested fixed-size-list column of ``dtype`` (zero-copy flat)."""
    flat: pa.Array = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1), pa.float32())
    for size in reversed(_nested_sizes(dtype)):
        flat = pa.FixedSizeListArray.from_arrays(flat, size)
    return flat


@dataclass(frozen=True)
class FrameRef:
    """Where an input image came from: source URI, frame index (0 for images), time in seconds."""

    source: str
    frame: int = 0
    timestamp: float | None = None


def predictions_table(pred: Predictions, frames: Sequence[FrameRef], schema: pa.Schema) -> pa.Table:
    """Rows of ``pred`` (whose images are ``frames``, in order) as a table of ``schema``."""
    if len(frames) != pred.image_hw.shape[0]:
        raise ValueError(f"{len(frames)} frame refs for {pred.image_hw.shape[0]} images")
    idx = pred.image_index
    n = len(idx)
    columns: dict[str, pa.Array] = {
        "source": pa.array([frames[i].source for i in idx], pa.string()),
        "frame": pa.array(np.array([frames[i].frame for i in idx], np.int64)),
        "timestamp": pa.array([frames[i].timestamp for i in idx], pa.float64()),
        "person": pa.array(pred.person.astype(np.int32)),
        "track_id": pa.nulls(n, pa.int64()),
        "model": pa.array([pred.model] * n, pa.string()),
        "center_conf": pa.array(pred.center_conf.astype(np.float32)),
        "image_height": pa.array(pred.image_hw[idx, 0].astype(np.int32)),
        "image_width": pa.array(pred.image_hw[idx, 1].astype(np.int32)),
        "error": pa.nulls(n, pa.string()),
    }
    for name in ("cam", "cam_trans", "smpl_thetas", "smpl_betas", "joints", "pj2d_org"):
        columns[name] = array_column(getattr(pred, name), schema.field(name).type)
    if "age_class" in schema.names:
        ages = pred.age_class if pred.age_class is not None else np.full(n, -1, np.int8)
        columns["age_class"] = pa.array(ages.astype(np.int8))
    if "verts" in schema.names:
        if pred.verts is None:
            raise ValueError("schema has verts but the predictions were made without save_verts")
        columns["verts"] = array_column(pred.verts, schema.field("verts").type)
    for name in SMOOTHED:  # until tracking runs, the smoothed values are the raw ones
        if f"{name}_smoothed" in schema.names:
            columns[f"{name}_smoothed"] = columns[name]
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


def _nested_sizes(dtype: pa.DataType) -> list[int]:
    sizes = []
    while pa.types.is_fixed_size_list(dtype):
        sizes.append(dtype.list_size)
        dtype = dtype.value_type
    return sizes


def _all_null_lists(dtype: pa.DataType, n: int) -> pa.Array:
    """n fixed-size lists whose every element is null.

    (The lists themselves stay valid: pyarrow 25 cannot read back a Parquet column holding a
    null fixed-size list -- "Expected all lists to be of size=3 but index 2 had size=0".)
    """
    sizes = _nested_sizes(dtype)
    values: pa.Array = pa.nulls(n * int(np.prod(sizes)), pa.float32())
    for size in reversed(sizes):
        values = pa.FixedSizeListArray.from_arrays(values, size)
    return values


def error_table(frames: Sequence[FrameRef], errors: Sequence[str], schema: pa.Schema) -> pa.Table:
    """One row per unreadable input: source, frame, timestamp and error set, the rest null
    (array columns hold lists of null values)."""
    n = len(frames)
    columns = []
    for field in schema:
        if field.name == "source":
            columns.append(pa.array([f.source for f in frames], pa.string()))
        elif field.name == "frame":
            columns.append(pa.array([f.frame for f in frames], pa.int64()))
        elif field.name == "timestamp":
            columns.append(pa.array([f.timestamp for f in frames], pa.float64()))
        elif field.name == "error":
            columns.append(pa.array(list(errors), pa.string()))
        elif pa.types.is_fixed_size_list(field.type):
            columns.append(_all_null_lists(field.type, n))
        else:
            columns.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


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
