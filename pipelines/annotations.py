"""The training annotation dataset (Parquet, one row per person per frame) -- its schema and the one
place where labels become Arrow columns. ``meshfleet synth`` writes it (and ``pseudo-label`` will);
``meshfleet train`` reads it. Columns: README, "Training annotation dataset".

Array columns are fixed-size lists (nested for 2-D), as in the results schema, so pandas, DuckDB,
Polars and Spark read them without meshfleet.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from core.body_models import NUM_JOINTS
from core.scenes.build import BuiltScene
from pipelines.schema import METADATA_KEY, _fixed, _nested_sizes, array_column

ANNOTATION_VERSION = 1
VALIDITY = ("has_joints2d", "has_joints3d", "has_smpl", "has_depth_layer", "has_age")


def annotation_schema() -> pa.Schema:
    """Arrow schema of the training annotation dataset."""
    f32 = pa.float32()
    fields = [
        pa.field("source", pa.string(), nullable=False),
        pa.field("frame", pa.int64(), nullable=False),
        pa.field("person", pa.int32(), nullable=False),
        pa.field("scene", pa.int64()),
        pa.field("image_height", pa.int32()),
        pa.field("image_width", pa.int32()),
        pa.field("focal_px", f32),
        pa.field("principal_point", _fixed(f32, 2)),
        pa.field("body_model_set", pa.string()),
        pa.field("smpl_thetas", _fixed(f32, 72)),
        pa.field("smpl_betas", _fixed(f32, 11)),
        pa.field("age_class", pa.int8()),
        pa.field("cam_trans", _fixed(f32, 3)),
        pa.field("joints3d", _fixed(f32, NUM_JOINTS, 3)),
        pa.field("joints2d", _fixed(f32, NUM_JOINTS, 2)),
        pa.field("joints2d_visible", pa.list_(pa.bool_(), NUM_JOINTS)),
        pa.field("bbox", _fixed(f32, 4)),
        pa.field("occlusion", f32),
        pa.field("truncation", f32),
        pa.field("depth_layer", pa.int8()),
        pa.field("track_id", pa.int64()),
        *(pa.field(name, pa.bool_()) for name in VALIDITY),
        pa.field("weight", f32),
        pa.field("pose", pa.string()),
        pa.field("provenance", pa.string()),
    ]
    return pa.schema(fields)


# The columns of one person row that a scene determines (the rest are filled in by labels_table).
ROW_COLUMNS = ("source", "frame", "person", "scene", "image_height", "image_width", "focal_px", "principal_point",
               "smpl_thetas", "smpl_betas", "age_class", "cam_trans", "joints3d", "joints2d", "joints2d_visible",
               "bbox", "occlusion", "truncation", "depth_layer", "track_id", "has_depth_layer", "pose")
NO_TRACK = -1  # track_id of a still image's row in numpy columns (null in the table)


def scene_rows(built: BuiltScene, source: str) -> dict[str, np.ndarray]:
    """Numpy columns (:data:`ROW_COLUMNS`, one entry per row) of every person present in every frame of
    one built scene; ``source`` is the image or video path relative to the dataset root. Rows of all
    frames, in frame then person order; ``track_id`` is :data:`NO_TRACK` for still images."""
    scene, camera = built.scene, built.scene.camera
    frames = [(t, p) for t, frame in enumerate(built.frames) for p in np.flatnonzero(frame.labels.present)]
    t_idx = np.array([t for t, _ in frames], np.int64)
    p_idx = np.array([p for _, p in frames], np.int64)
    n = len(frames)

    def per_frame(get, shape: tuple[int, ...], dtype) -> np.ndarray:
        out = np.zeros((n, *shape), dtype)
        for row, (t, p) in enumerate(frames):
            out[row] = get(built.frames[t])[p]
        return out

    layers_ok = np.array([built.frames[t].labels.layers_ok for t in t_idx], bool)
    layer = per_frame(lambda f: f.labels.depth_layer, (), np.int8)
    return {
        "source": np.full(n, source, dtype=object).astype(str),
        "frame": t_idx, "person": p_idx.astype(np.int32), "scene": np.full(n, scene.index, np.int64),
        "image_height": np.full(n, camera.height, np.int32), "image_width": np.full(n, camera.width, np.int32),
        "focal_px": np.full(n, camera.focal, np.float32),
        "principal_point": np.tile(np.asarray(camera.principal_point, np.float32), (n, 1)),
        "smpl_thetas": scene.thetas[t_idx, p_idx].astype(np.float32),
        "smpl_betas": scene.betas[p_idx].astype(np.float32),
        "age_class": scene.age_class[p_idx].astype(np.int8),
        "cam_trans": scene.trans[t_idx, p_idx].astype(np.float32),
        "joints3d": per_frame(lambda f: f.joints, (NUM_JOINTS, 3), np.float32),
        "joints2d": per_frame(lambda f: f.labels.joints2d, (NUM_JOINTS, 2), np.float32),
        "joints2d_visible": per_frame(lambda f: f.labels.visible, (NUM_JOINTS,), bool),
        "bbox": per_frame(lambda f: f.labels.bbox, (4,), np.float32),
        "occlusion": per_frame(lambda f: f.labels.occlusion, (), np.float32),
        "truncation": per_frame(lambda f: f.labels.truncation, (), np.float32),
        "depth_layer": np.where(layers_ok, layer, -1).astype(np.int8),
        "track_id": scene.track_id[p_idx] if scene.kind == "video" else np.full(n, NO_TRACK, np.int64),
        "has_depth_layer": layers_ok,
        "pose": np.array([scene.pose[p] for p in p_idx], dtype=object).astype(str),
    }


def concat_rows(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Row columns of several scenes, in order (a scene may contribute no rows)."""
    parts = [p for p in parts if len(p["source"])] or parts[:1]
    return {name: np.concatenate([p[name] for p in parts]) for name in ROW_COLUMNS} if parts else {}


def labels_table(rows: dict[str, np.ndarray], body_model_set: str, metadata: dict) -> pa.Table:
    """The Arrow table of the row columns ``rows`` (:func:`scene_rows`), with the dataset metadata."""
    schema = annotation_schema().with_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})
    n = len(rows["source"]) if rows else 0
    arrays: dict[str, pa.Array] = {}
    for field in schema:
        if field.name in ("has_joints2d", "has_joints3d", "has_smpl", "has_age"):
            arrays[field.name] = pa.array(np.ones(n, bool))
        elif field.name == "weight":
            arrays[field.name] = pa.array(np.ones(n, np.float32))
        elif field.name == "body_model_set":
            arrays[field.name] = pa.array([body_model_set] * n, pa.string())
        elif field.name == "provenance":
            arrays[field.name] = pa.nulls(n, pa.string())
        elif n == 0:
            arrays[field.name] = pa.array([], field.type)
        elif field.name == "track_id":
            ids = np.asarray(rows["track_id"], np.int64)
            arrays[field.name] = pa.array(ids, pa.int64(), mask=ids == NO_TRACK)
        elif field.name == "joints2d_visible":
            flat = np.asarray(rows[field.name], bool).reshape(-1)
            arrays[field.name] = pa.FixedSizeListArray.from_arrays(pa.array(flat), NUM_JOINTS)
        elif pa.types.is_fixed_size_list(field.type):
            size = int(np.prod(_nested_sizes(field.type)))
            arrays[field.name] = array_column(np.asarray(rows[field.name], np.float32).reshape(n, size), field.type)
        else:
            values = rows[field.name]
            arrays[field.name] = pa.array(values.tolist() if values.dtype.kind == "U" else values, field.type)
    return pa.Table.from_arrays([arrays[name] for name in schema.names], schema=schema)


def annotation_table(columns: dict[str, np.ndarray | list], metadata: dict) -> pa.Table:
    """An annotation table from per-column arrays of N rows, every schema column given (array
    columns as (N, *shape) arrays, nullable scalars as lists with None), with the dataset metadata
    attached. Used by ``meshfleet pseudo-label``; the column meanings are the contract's."""
    schema = annotation_schema().with_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})
    missing = [name for name in schema.names if name not in columns]
    if missing:
        raise ValueError(f"annotation columns missing: {missing}")
    arrays: list[pa.Array] = []
    for field in schema:
        values = columns[field.name]
        if field.name == "joints2d_visible":
            flat = np.asarray(values, bool).reshape(-1)
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat), NUM_JOINTS))
        elif pa.types.is_fixed_size_list(field.type):
            n = len(values)
            size = int(np.prod(_nested_sizes(field.type)))
            arrays.append(array_column(np.asarray(values, np.float32).reshape(n, size), field.type))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
