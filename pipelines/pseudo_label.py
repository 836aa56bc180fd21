"""The filter stage of ``meshfleet pseudo-label``: results units -> annotation shards + score tables.

Work is cut into **groups**: one results unit file of images, or every unit file of one video (the
track filters need the whole video). Each unit file ``U`` of a group gets

* ``labels/U``: the kept people in the training annotation format (pipelines/annotations.py),
* ``scores/U``: every person of ``U`` with every filter score, pass flag and the weight (the report
  and audits read it),

both stamped (schema metadata) with the group's fingerprint: the versions of its results files (and
of the same units of the flip / second-checkpoint passes) and the filter settings. A rerun redoes a
group only when its fingerprint changed, so new inputs, re-tracked videos or new thresholds are
relabelled and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.body_models import ROOT_ALIGN_JOINTS, BodyModelSet
from core.pseudo_filters import (
    FilterThresholds,
    apply_rules,
    confidence_weight,
    depth_scale_ratio,
    in_frame_fraction,
    joint_limit_violation,
    max_abs_beta,
    smooth_pose_deviation,
    smooth_translation_deviation,
    track_acceleration,
    track_frames,
    track_speed,
)
from core.pseudo_labels import BODY_JOINTS, canonical_intrinsics, match_people, mirror_points2d
from pipelines.annotations import ANNOTATION_VERSION, annotation_table
from pipelines.pseudo_shards import Rows, label_columns, scores_table
from pipelines.schema import read_metadata
from pipelines.storage import (
    file_fingerprint,
    join,
    list_files,
    read_parquet,
    read_parquet_schema,
    remove,
    table_to_bytes,
    url_to_fs,
    with_retries,
    write_bytes_atomic,
)
from pipelines.tracking import DEFAULT_FPS, index_videos

log = logging.getLogger(__name__)
GENERATOR = "meshfleet pseudo-label"
VIDEO_SCORES = ("track_frames", "speed_mps", "accel_mps2", "smooth_trans_dev", "smooth_pose_deg")
LABELS, SCORES = "labels", "scores"
THREADS = 4  # groups labelled at once (the tracking pass, jobs/track.py, also runs videos in threads)


@dataclass(frozen=True)
class Group:
    """Results unit files labelled together: ``video`` (one video's chunks, in frame order) or not."""

    video: bool
    files: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.rsplit("/", 1)[-1] for f in self.files)


@dataclass(frozen=True)
class LabelContext:
    """What labelling needs besides the rows: the results roots of the passes (``flip`` / ``agree``
    None when not run), the thresholds, the body models (for root-aligned models' translations), and
    the provenance every row carries."""

    output: str
    results: str
    thresholds: FilterThresholds
    body_models: BodyModelSet
    body_model_set: str
    provenance: dict
    flip: str | None = None
    agree: str | None = None

    def identity(self) -> dict:
        """Settings that change a shard's content (part of every group fingerprint)."""
        return {"annotation_version": ANNOTATION_VERSION, "thresholds": self.thresholds.as_dict(),
                "body_model_set": self.body_model_set, "flip": self.flip is not None,
                "agree": self.agree is not None}


@dataclass
class GroupStats:
    units: int = 0
    persons: int = 0
    kept: int = 0
    errors: int = 0
    names: list[str] = field(default_factory=list)


def plan_groups(files: list[str]) -> list[Group]:
    """The groups of a results dataset's unit ``files``: one per video, one per other file."""
    videos, others = index_videos(files)
    groups = [Group(True, tuple(path for _, path in chunks)) for _, chunks in sorted(videos.items())]
    in_video = {path for g in groups for path in g.files}
    groups += [Group(False, (path,)) for path in others if path not in in_video]
    return groups


def group_fingerprint(group: Group, ctx: LabelContext) -> str:
    """Identity of a group's inputs (file versions in every pass) and of the settings."""
    versions = []
    for name in group.names:
        for root in (ctx.results, ctx.flip, ctx.agree):
            if root:
                versions.append(f"{name} {file_fingerprint(join(root, name))}")
    text = json.dumps({"files": versions, **ctx.identity()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def group_done(group: Group, fingerprint: str, output: str) -> bool:
    """Whether every unit of ``group`` already has its shard and scores at ``fingerprint``."""
    fs, _ = url_to_fs(output)
    for name in group.names:
        for folder in (SCORES, LABELS):
            path = url_to_fs(join(join(output, folder), name))[1]
            if not with_retries(partial(fs.exists, path), f"stat {path}"):
                return False
        meta = read_metadata(read_parquet_schema(join(join(output, LABELS), name)))
        if meta.get("fingerprint") != fingerprint:
            return False
    return True


def _read_group(group: Group, root: str) -> tuple[pa.Table, int]:
    """The valid rows of the group's files under ``root`` (same unit names) with a ``unit`` index
    column, and the number of error rows (unreadable inputs or frames) dropped."""
    tables = []
    for k, name in enumerate(group.names):
        table = read_parquet(join(root, name))
        tables.append(table.append_column("unit", pa.array(np.full(table.num_rows, k, np.int32))))
    table = pa.concat_tables(tables, promote_options="default")
    valid = table.column("error").is_null()
    return table.filter(valid), table.num_rows - int(pc.sum(valid).as_py() or 0)


def _times(rows: Rows) -> np.ndarray:
    """(N,) seconds: the frame timestamps, or frame / 30 fps where a timestamp is missing."""
    stamps = rows.table.column("timestamp").to_numpy(zero_copy_only=False).astype(np.float64)
    return np.where(np.isfinite(stamps), stamps, rows.col("frame") / DEFAULT_FPS)


def _pass_errors(rows: Rows, other: pa.Table, mirror: bool) -> np.ndarray:
    """(N,) error of each person to its match among the other pass's people of the same frame."""
    error = np.full(rows.table.num_rows, np.inf)
    if rows.table.num_rows == 0:
        return error
    other_rows = Rows(other)
    theirs: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(other_rows.keys()):
        theirs.setdefault(key, []).append(i)
    ours: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(rows.keys()):
        ours.setdefault(key, []).append(i)
    points = rows.arr("pj2d_org")
    other_points = other_rows.arr("pj2d_org") if other.num_rows else np.zeros((0, 71, 2), np.float32)
    if mirror and other.num_rows:
        other_points = mirror_points2d(other_points, other_rows.col("image_width"))
    for key, mine in ours.items():
        error[mine] = match_people(points[mine], other_points[theirs.get(key, [])])
    return error


def group_scores(rows: Rows, video: bool, flip: pa.Table | None, agree: pa.Table | None) -> dict[str, np.ndarray]:
    """Every filter score of the group's people ((N,) arrays, keys = core.pseudo_filters.RULES scores)."""
    points, trans = rows.arr("pj2d_org"), rows.arr("cam_trans")
    height, width = rows.col("image_height"), rows.col("image_width")
    joints3d = rows.arr("joints") + trans[:, None, :]
    focal, _ = canonical_intrinsics(height, width)
    scores = {
        "center_conf": rows.col("center_conf").astype(np.float64),
        "in_frame": in_frame_fraction(points, height, width),
        "max_abs_beta": max_abs_beta(rows.arr("smpl_betas")),
        "limit_violation_deg": joint_limit_violation(rows.arr("smpl_thetas")),
        "depth_m": trans[:, 2].astype(np.float64),
        "depth_scale_ratio": depth_scale_ratio(joints3d, points, focal),
    }
    n = rows.table.num_rows
    if video:
        ids = rows.table.column("track_id").fill_null(-1).to_numpy(zero_copy_only=False)
        times = _times(rows)
        joints = rows.arr("joints")
        relative = joints[:, :BODY_JOINTS] - joints[:, list(ROOT_ALIGN_JOINTS)].mean(1, keepdims=True)
        scores["track_frames"] = track_frames(ids)
        scores["speed_mps"] = track_speed(ids, times, trans)
        scores["accel_mps2"] = track_acceleration(ids, times, relative)
        if "cam_trans_smoothed" in rows.table.column_names:
            scores["smooth_trans_dev"] = smooth_translation_deviation(trans, rows.arr("cam_trans_smoothed"))
            scores["smooth_pose_deg"] = smooth_pose_deviation(rows.arr("smpl_thetas"), rows.arr("smpl_thetas_smoothed"))
    for key in VIDEO_SCORES:  # images (and videos without tracking columns): not applicable
        scores.setdefault(key, np.full(n, np.nan))
    if flip is not None:
        scores["flip_error"] = _pass_errors(rows, flip, mirror=True)
    if agree is not None:
        scores["agree_error"] = _pass_errors(rows, agree, mirror=False)
    return scores


def label_group(group: Group, fingerprint: str, ctx: LabelContext) -> GroupStats:
    """Score, filter and write the shards of one group; returns its counts."""
    table, errors = _read_group(group, ctx.results)
    meta = read_metadata(read_parquet_schema(group.files[0]))
    model = meta.get("model") or (table.column("model")[0].as_py() if table.num_rows else "romp")
    rows = Rows(table)
    flip = _read_group(group, ctx.flip)[0] if ctx.flip else None
    agree = _read_group(group, ctx.agree)[0] if ctx.agree else None
    scores = group_scores(rows, group.video, flip, agree)
    outcome = apply_rules(scores, ctx.thresholds)
    weight = confidence_weight(scores, ctx.thresholds)
    stats = GroupStats(units=len(group.files), persons=table.num_rows, kept=int(outcome.keep.sum()),
                       errors=errors, names=list(group.names))
    units = rows.col("unit") if table.num_rows else np.zeros(0, np.int32)
    for k, name in enumerate(group.names):
        mine = units == k
        metadata = {"generator": GENERATOR, "annotation_version": ANNOTATION_VERSION, "results_unit": name,
                    "fingerprint": fingerprint, "body_model_set": ctx.body_model_set, "rules": list(outcome.names),
                    **ctx.provenance}
        unit_rows = Rows(table.filter(pa.array(mine)))
        unit_scores = {key: v[mine] for key, v in scores.items()}
        write_bytes_atomic(join(join(ctx.output, SCORES), name), table_to_bytes(
            scores_table(unit_rows, unit_scores, outcome.take(mine), weight[mine], metadata)))
        kept = mine & outcome.keep
        kept_rows = Rows(table.filter(pa.array(kept)))
        columns = label_columns(kept_rows, {key: v[kept] for key, v in scores.items()}, weight[kept], model=model,
                                root_aligned=bool(meta.get("root_align", model == "bev")), body_models=ctx.body_models,
                                body_model_set=ctx.body_model_set, provenance=ctx.provenance, unit_names=group.names)
        labels = annotation_table(columns, {**metadata, "camera": "per row: focal_px / principal_point of the "
                                            "canonical FOV-60 camera of the original image"})
        write_bytes_atomic(join(join(ctx.output, LABELS), name), table_to_bytes(labels))
    return stats


@dataclass
class LabelSummary:
    """The filter stage of one run: units labelled now and already done, people seen and kept now,
    error rows, stale shards removed."""

    units: int = 0
    skipped_units: int = 0
    persons: int = 0
    kept: int = 0
    errors: int = 0
    removed: int = 0
    unit_names: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"labels: units {self.units} ({self.skipped_units} already done)  persons {self.persons}  "
                f"kept {self.kept}  error rows {self.errors}" + (f"  stale shards removed {self.removed}"
                                                                  if self.removed else ""))


def remove_stale(output: str, current: set[str]) -> int:
    """Remove this job's shards and score tables of results units that no longer exist (files that
    carry another generator's metadata are left alone, with a warning)."""
    removed = 0
    for folder in (LABELS, SCORES):
        for path in list_files(join(output, folder), ".parquet"):
            if path.rsplit("/", 1)[-1] in current:
                continue
            if read_metadata(read_parquet_schema(path)).get("generator") == GENERATOR:
                remove(path)
                removed += 1
            else:
                log.warning("%s was not written by meshfleet pseudo-label; left in place", path)
    return removed


def _label_if_changed(group: Group, ctx: LabelContext) -> GroupStats | None:
    """Label ``group`` unless its shards are current (None then)."""
    fingerprint = group_fingerprint(group, ctx)
    if group_done(group, fingerprint, ctx.output):
        return None
    return label_group(group, fingerprint, ctx)


def label_results(ctx: LabelContext, progress: Callable[[LabelSummary, int], None] | None = None,
                  threads: int = THREADS) -> LabelSummary:
    """Label every group of ``ctx.results`` whose fingerprint changed, ``threads`` groups at a time
    (their work is I/O and numpy / torch, which release the GIL); ``progress(summary, units)`` after
    each group."""
    groups = plan_groups(list_files(ctx.results, ".parquet"))
    summary = LabelSummary(unit_names=sorted(n for g in groups for n in g.names))
    summary.removed = remove_stale(ctx.output, set(summary.unit_names))
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(groups)))) as pool:
        for group, stats in zip(groups, pool.map(partial(_label_if_changed, ctx=ctx), groups), strict=True):
            if stats is None:
                summary.skipped_units += len(group.files)
            else:
                summary.units += stats.units
                summary.persons += stats.persons
                summary.kept += stats.kept
                summary.errors += stats.errors
            if progress:
                progress(summary, len(summary.unit_names))
    return summary
