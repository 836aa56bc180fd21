"""The training annotation dataset (Parquet, one row per person per frame) -- its schema and the one
place where labels become Arrow columns. ``meshfleet synth`` writes it (and ``pseudo-label`` will);
``meshfleet train`` reads it. Columns: README, "Training annotation dataset".

Array columns are fixed-size lists (nested for 2-D), as in the results schema, so pandas, DuckDB,
Polars and Spark read them without meshfleet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

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


@dataclass
class LabelRows:
    """Column arrays of N person rows (shapes as the schema); built by :func:`scene_rows`."""

    columns: dict[str, list]

    @property
    def count(self) -> int:
        return len(self.columns["source"])


def scene_rows(built: BuiltScene, source: str) -> LabelRows:
    """Rows of every present person in every frame of one built scene. ``source`` is the image or
    video path relative to the dataset root."""
    scene, camera = built.scene, built.scene.camera
    cols: dict[str, list] = {name: [] for name in annotation_schema().names}
    video = scene.kind == "video"
    for t, frame in enumerate(built.frames):
        labels = frame.labels
        for p in np.flatnonzero(labels.present):
            cols["source"].append(source)
            cols["frame"].append(t)
            cols["person"].append(int(p))
            cols["scene"].append(scene.index)
            cols["image_height"].append(camera.height)
            cols["image_width"].append(camera.width)
            cols["focal_px"].append(camera.focal)
            cols["principal_point"].append(camera.principal_point)
            cols["smpl_thetas"].append(scene.thetas[t, p])
            cols["smpl_betas"].append(scene.betas[p])
            cols["age_class"].append(int(scene.age_class[p]))
            cols["cam_trans"].append(scene.trans[t, p])
            cols["joints3d"].append(frame.joints[p])
            cols["joints2d"].append(labels.joints2d[p])
            cols["joints2d_visible"].append(labels.visible[p])
            cols["bbox"].append(labels.bbox[p])
            cols["occlusion"].append(labels.occlusion[p])
            cols["truncation"].append(labels.truncation[p])
            cols["depth_layer"].append(int(labels.depth_layer[p]) if labels.layers_ok else -1)
            cols["track_id"].append(int(scene.track_id[p]) if video else None)
            cols["has_depth_layer"].append(labels.layers_ok)
            cols["pose"].append(scene.pose[p])
    return LabelRows(cols)


def labels_table(rows: list[LabelRows], body_model_set: str, metadata: dict) -> pa.Table:
    """The Arrow table of ``rows`` (concatenated in order), with the dataset metadata attached."""
    schema = annotation_schema().with_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})
    merged: dict[str, list] = {name: [] for name in schema.names}
    for part in rows:
        for name, values in part.columns.items():
            merged[name].extend(values)
    n = len(merged["source"])
    arrays: dict[str, pa.Array] = {}
    for field in schema:
        values = merged[field.name]
        if field.name in ("has_joints2d", "has_joints3d", "has_smpl", "has_age"):
            arrays[field.name] = pa.array(np.ones(n, bool))
        elif field.name == "weight":
            arrays[field.name] = pa.array(np.ones(n, np.float32))
        elif field.name == "body_model_set":
            arrays[field.name] = pa.array([body_model_set] * n, pa.string())
        elif field.name == "provenance":
            arrays[field.name] = pa.nulls(n, pa.string())
        elif field.name == "joints2d_visible":
            flat = np.asarray(values, bool).reshape(-1) if n else np.zeros(0, bool)
            arrays[field.name] = pa.FixedSizeListArray.from_arrays(pa.array(flat), NUM_JOINTS)
        elif pa.types.is_fixed_size_list(field.type):
            size = int(np.prod(_nested_sizes(field.type)))
            arrays[field.name] = array_column(np.asarray(values, np.float32).reshape(n, size), field.type)
        else:
            arrays[field.name] = pa.array(values, field.type)
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
