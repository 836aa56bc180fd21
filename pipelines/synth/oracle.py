"""The oracle: a synthetic dataset's ground truth written as a meshfleet results dataset.

Scoring it with any evaluator checks that evaluator end to end (ground truth against itself gives
perfect scores). Row for row the labels' people: same ``source`` (relative to the synth output root),
``frame``, ``person`` and ``track_id``; ``model`` is ``oracle``, ``center_conf`` 1, ``cam`` NaN (no
network camera), ``cam_trans`` / ``smpl_*`` as labelled, ``joints`` the body-model joints without the
translation (as ROMP reports them), ``pj2d_org`` the labelled 2D joints, in the scene camera (whose
focal length the labels' ``focal_px`` gives; not the canonical FOV-60 camera of model results).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from pipelines.schema import METADATA_KEY, array_column, column_array, results_schema

ORACLE_MODEL = "oracle"


def oracle_schema(metadata: dict) -> pa.Schema:
    schema = results_schema(11, with_age=True)
    return schema.with_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})


def oracle_table(labels: pa.Table, fps: dict[str, float], metadata: dict) -> pa.Table:
    """Results rows of the labels table ``labels``; ``fps`` maps video sources to their frame rate
    (timestamps = frame / fps; null for images)."""
    schema = oracle_schema(metadata)
    n = labels.num_rows
    sources = labels.column("source").to_pylist()
    frames = labels.column("frame").to_numpy()
    joints = column_array(labels, "joints3d", (71, 3)) - column_array(labels, "cam_trans", (3,))[:, None]
    columns = {
        "source": labels.column("source"),
        "frame": labels.column("frame"),
        "timestamp": pa.array([f / fps[s] if s in fps else None for s, f in zip(sources, frames, strict=True)],
                              pa.float64()),
        "person": labels.column("person"),
        "track_id": labels.column("track_id"),
        "model": pa.array([ORACLE_MODEL] * n, pa.string()),
        "center_conf": pa.array(np.ones(n, np.float32)),
        "cam": array_column(np.full((n, 3), np.nan, np.float32), schema.field("cam").type),
        "cam_trans": labels.column("cam_trans"),
        "smpl_thetas": labels.column("smpl_thetas"),
        "smpl_betas": labels.column("smpl_betas"),
        "joints": array_column(joints, schema.field("joints").type),
        "pj2d_org": labels.column("joints2d"),
        "image_height": labels.column("image_height"),
        "image_width": labels.column("image_width"),
        "age_class": labels.column("age_class"),
        "error": pa.nulls(n, pa.string()),
    }
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
