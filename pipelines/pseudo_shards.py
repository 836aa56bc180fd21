"""Tables of ``meshfleet pseudo-label``'s shards: the kept people as training annotations
(pipelines/annotations.py columns) and every person's filter scores."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from core.body_models import ROOT_ALIGN_JOINTS, BodyModelSet
from core.pseudo_filters import FilterOutcome
from core.pseudo_labels import body_root, canonical_intrinsics, inside_image, joint_boxes
from core.scenes.placement import depth_layers
from pipelines.schema import METADATA_KEY, column_array


@dataclass
class Rows:
    """Arrays of one group's valid rows (N people)."""

    table: pa.Table

    def col(self, name: str) -> np.ndarray:
        return self.table.column(name).to_numpy(zero_copy_only=False)

    def arr(self, name: str) -> np.ndarray:
        return column_array(self.table, name)

    def keys(self) -> list[tuple[str, int]]:
        return list(zip(self.table.column("source").to_pylist(), self.col("frame").tolist(), strict=True))


def _json_number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _depth_layers(keys: list[tuple[str, int]], depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) Relative-Human depth layer of each person among the people of its frame, and (N,) whether
    that frame's layers are consistent (core.scenes.placement.depth_layers)."""
    layers = np.zeros(len(keys), np.int8)
    consistent = np.zeros(len(keys), bool)
    frames: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(keys):
        frames.setdefault(key, []).append(i)
    for rows in frames.values():
        layer, ok = depth_layers(depth[rows])
        layers[rows] = layer if ok else -1
        consistent[rows] = ok
    return layers, consistent


def label_columns(rows: Rows, scores: dict[str, np.ndarray], weight: np.ndarray, *, model: str, root_aligned: bool,
                  body_models: BodyModelSet, body_model_set: str, provenance: dict,
                  unit_names: tuple[str, ...]) -> dict[str, np.ndarray | list]:
    """Annotation columns (pipelines/annotations.py) of ``rows`` (the kept people; ``rows`` has a
    ``unit`` column indexing ``unit_names``). ``root_aligned``: the results' joints are root-aligned
    (BEV, ROMP --root-align), so the body model's root is subtracted from ``cam_trans``; every row's
    ``provenance`` is the given dict plus its source, frame, person, results unit and scores."""
    n = rows.table.num_rows
    points, trans = rows.arr("pj2d_org"), rows.arr("cam_trans")
    height, width = rows.col("image_height"), rows.col("image_width")
    betas, thetas = rows.arr("smpl_betas"), rows.arr("smpl_thetas")
    joints3d = rows.arr("joints") + trans[:, None, :]
    # the contract's cam_trans is added to the body model's own (un-aligned) output
    body_trans = trans - body_root(body_models, model, betas, thetas) if root_aligned and n else trans
    focal, principal = canonical_intrinsics(height, width)
    visible = inside_image(points, height, width)
    keys = rows.keys()
    layers, consistent = _depth_layers(keys, joints3d[:, list(ROOT_ALIGN_JOINTS), 2].mean(1))
    betas11 = np.zeros((n, 11), np.float32)
    betas11[:, :betas.shape[1]] = betas
    ages = rows.col("age_class") if "age_class" in rows.table.column_names else np.full(n, -1, np.int8)
    tracks = rows.table.column("track_id").to_pylist()
    units = rows.col("unit")
    persons = rows.col("person")
    row_provenance = []
    for i, (source, frame) in enumerate(keys):
        row_scores = {k: _json_number(v[i]) for k, v in scores.items()}
        row_provenance.append(json.dumps({"source": source, "frame": frame, "person": int(persons[i]),
                                      "results_unit": unit_names[units[i]], **provenance,
                                      "scores": row_scores}, sort_keys=True))
    return {
        "source": [k[0] for k in keys], "frame": rows.col("frame").astype(np.int64),
        "person": rows.col("person").astype(np.int32), "scene": [None] * n,
        "image_height": height.astype(np.int32), "image_width": width.astype(np.int32),
        "focal_px": focal, "principal_point": principal, "body_model_set": [body_model_set] * n,
        "smpl_thetas": thetas, "smpl_betas": betas11, "age_class": ages.astype(np.int8),
        "cam_trans": body_trans, "joints3d": joints3d, "joints2d": points, "joints2d_visible": visible,
        "bbox": joint_boxes(points, height, width), "occlusion": np.full(n, np.nan, np.float32),
        "truncation": (1 - visible.mean(1)).astype(np.float32) if n else np.zeros(0, np.float32),
        "depth_layer": layers, "track_id": tracks,
        "has_joints2d": np.ones(n, bool), "has_joints3d": np.ones(n, bool), "has_smpl": np.ones(n, bool),
        "has_depth_layer": consistent, "has_age": np.full(n, model == "bev"),
        "weight": weight.astype(np.float32), "pose": [None] * n, "provenance": row_provenance,
    }


def scores_table(rows: Rows, scores: dict[str, np.ndarray], outcome: FilterOutcome, weight: np.ndarray,
                 metadata: dict) -> pa.Table:
    """Every person with its scores, a ``pass_<rule>`` flag per rule, ``kept``, ``first_failed``, ``weight``."""
    columns: dict[str, pa.Array] = {
        "source": rows.table.column("source").combine_chunks(), "frame": rows.table.column("frame").combine_chunks(),
        "person": rows.table.column("person").combine_chunks(),
        "track_id": rows.table.column("track_id").combine_chunks(),
    }
    for key, values in scores.items():
        columns[key] = pa.array(np.asarray(values, np.float64))
    for k, name in enumerate(outcome.names):
        columns[f"pass_{name}"] = pa.array(outcome.passed[:, k])
    columns["kept"] = pa.array(outcome.keep)
    columns["first_failed"] = pa.array([outcome.names[f] if f >= 0 else None for f in outcome.first_failure],
                                       pa.string())
    columns["weight"] = pa.array(weight.astype(np.float32))
    table = pa.table(columns)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})
