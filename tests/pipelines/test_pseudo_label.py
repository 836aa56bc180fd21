"""The filter stage on hand-made results datasets: flip agreement, body-model translations, video
filters across chunk files, resume / relabel / stale shards."""

import json
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from core.body_models import root_align
from core.predictor import Predictions
from core.pseudo_filters import FilterThresholds
from core.pseudo_labels import canonical_intrinsics, mirror_points2d
from pipelines.annotations import annotation_schema
from pipelines.pseudo_label import LABELS, SCORES, LabelContext, label_results
from pipelines.schema import FrameRef, predictions_table, results_schema, with_metadata

H, W = 240, 320


def people(body_models, model: str, xs: list[float], depth: float = 5.0, seed: int = 0) -> dict:
    """Bodies of the body model at (x, 0, depth) m, projected with the canonical camera of an H x W
    image, as the predictor's arrays (BEV: root-aligned joints, as the results store them)."""
    n = len(xs)
    rngs = [np.random.default_rng(seed + i) for i in range(n)]  # person i looks the same in every frame
    betas = np.stack([r.normal(0, 0.3, 10 if model == "romp" else 11) for r in rngs]).astype(np.float32)
    if model == "bev":
        betas[:, 10] = 0.0
    thetas = np.stack([r.normal(0, 0.1, 72) * (np.arange(72) >= 3) for r in rngs]).astype(np.float32)
    thetas[:, 0] = np.pi  # upright in the camera frame (y down)
    forward = body_models.smpl_forward if model == "romp" else body_models.smpla_forward
    body = forward(torch.from_numpy(betas), torch.from_numpy(thetas))
    if model == "bev":
        body = root_align(body)
    joints = body.joints.numpy()
    trans = np.array([[x, 0.0, depth] for x in xs], np.float32)
    focal, principal = canonical_intrinsics(np.full(n, H), np.full(n, W))
    cam = joints + trans[:, None]
    pj2d = cam[..., :2] / cam[..., 2:] * focal[:, None, None] + principal[:, None]
    return {"betas": betas, "thetas": thetas, "joints": joints, "trans": trans, "pj2d": pj2d.astype(np.float32)}


def predictions(model: str, rows: dict, image_index: list[int], images: int) -> Predictions:
    n = len(image_index)
    idx = np.asarray(image_index, np.int64)
    person = np.zeros(n, np.int32)
    for i in np.unique(idx):
        person[idx == i] = np.arange((idx == i).sum())
    return Predictions(model=model, image_index=idx, person=person, center_conf=np.full(n, 0.9, np.float32),
                       cam=np.tile([[0.5, 0.0, 0.0]], (n, 1)).astype(np.float32), cam_trans=rows["trans"],
                       smpl_thetas=rows["thetas"], smpl_betas=rows["betas"], joints=rows["joints"],
                       pj2d_org=rows["pj2d"], image_hw=np.tile([[H, W]], (images, 1)),
                       age_class=np.zeros(n, np.int8) if model == "bev" else None)


def write_unit(root, name, pred, frames, tracking=False, track_ids=None):
    model = pred.model
    schema = results_schema(10 if model == "romp" else 11, with_age=model == "bev", with_tracking=tracking)
    schema = with_metadata(schema, {"model": model, "root_align": model == "bev"})
    table = predictions_table(pred, frames, schema)
    if track_ids is not None:
        table = table.set_column(schema.get_field_index("track_id"), "track_id", pa.array(track_ids, pa.int64()))
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / name)


def context(tmp_path, body_models, **changes) -> LabelContext:
    ctx = LabelContext(output=str(tmp_path), results=str(tmp_path / "results"), thresholds=FilterThresholds(),
                       body_models=body_models, body_model_set="smpl", provenance={"checkpoint_sha256": "ab" * 32})
    return replace(ctx, **changes)


def read_dir(path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(path.glob("*.parquet"))])


def test_flip_agreement_keeps_the_mirror_consistent_person(tmp_path, body_models):
    rows = people(body_models, "romp", [-0.6, 0.6])
    frames = [FrameRef("/data/a.jpg")]
    write_unit(tmp_path / "results", "images.x.parquet", predictions("romp", rows, [0, 0], 1), frames)
    flipped = dict(rows, pj2d=mirror_points2d(rows["pj2d"], np.full(2, W)))  # what a mirror-consistent net finds
    flipped["pj2d"][1, :, 0] += 40.0  # person 1's mirrored result is 40 px off
    write_unit(tmp_path / "results-flip", "images.x.parquet", predictions("romp", flipped, [0, 0], 1), frames)
    summary = label_results(context(tmp_path, body_models, flip=str(tmp_path / "results-flip")))
    assert (summary.units, summary.persons, summary.kept) == (1, 2, 1)
    scores = pq.read_table(tmp_path / SCORES / "images.x.parquet").to_pydict()
    assert scores["flip_error"][0] == pytest.approx(0.0, abs=1e-5) and scores["flip_error"][1] > 0.1
    assert scores["first_failed"] == [None, "flip"] and scores["kept"] == [True, False]
    labels = pq.read_table(tmp_path / LABELS / "images.x.parquet")
    assert labels.column("person").to_pylist() == [0]
    provenance = json.loads(labels.column("provenance")[0].as_py())
    assert provenance["checkpoint_sha256"] == "ab" * 32 and provenance["source"] == "/data/a.jpg"
    assert provenance["scores"]["flip_error"] == pytest.approx(0.0, abs=1e-5)


def test_root_aligned_translation_is_the_body_models_own(tmp_path, body_models):
    rows = people(body_models, "bev", [0.3], depth=4.0, seed=2)
    write_unit(tmp_path / "results", "images.b.parquet", predictions("bev", rows, [0], 1), [FrameRef("/d/b.jpg")])
    label_results(context(tmp_path, body_models))
    labels = pq.read_table(tmp_path / LABELS / "images.b.parquet")
    assert labels.schema.remove_metadata() == annotation_schema()
    joints3d = np.asarray(labels.column("joints3d").to_pylist(), np.float32)
    trans = np.asarray(labels.column("cam_trans").to_pylist(), np.float32)
    body = body_models.smpla_forward(torch.from_numpy(rows["betas"]), torch.from_numpy(rows["thetas"]))
    np.testing.assert_allclose(joints3d, body.joints.numpy() + trans[:, None], atol=1e-4)  # the contract
    np.testing.assert_allclose(joints3d, rows["joints"] + rows["trans"][:, None], atol=1e-5)
    assert labels.column("has_age").to_pylist() == [True] and labels.column("smpl_betas").type.list_size == 11


def test_video_filters_see_the_whole_track_across_chunk_files(tmp_path, body_models):
    video = "/data/walk.mp4"
    per_frame = []
    for t in range(12):  # track 1 walks 1 m/s at 10 fps, with a 3 m depth jump at frame 7;
        xs = [-1.0 + 0.1 * t] + ([1.0] if t < 3 else [])  # track 2 lives 3 frames
        rows = people(body_models, "romp", xs, seed=3)
        if t == 7:
            rows = people(body_models, "romp", [xs[0]], depth=8.0, seed=3)
        per_frame.append(rows)
    for name, span in (("walk.v.f000000000-000000006.parquet", range(0, 6)),
                       ("walk.v.f000000006-000000012.parquet", range(6, 12))):
        merged = {k: np.concatenate([per_frame[t][k] for t in span]) for k in per_frame[0]}
        index = [i for i, t in enumerate(span) for _ in range(len(per_frame[t]["trans"]))]
        ids = [p + 1 for t in span for p in range(len(per_frame[t]["trans"]))]
        frames = [FrameRef(video, t, t / 10.0) for t in span]
        write_unit(tmp_path / "results", name, predictions("romp", merged, index, len(frames)), frames,
                   tracking=True, track_ids=ids)
    summary = label_results(context(tmp_path, body_models))
    assert summary.units == 2 and summary.persons == 15
    scores = read_dir(tmp_path / SCORES).to_pandas()
    track1 = scores[scores.track_id == 1].sort_values("frame")
    assert (track1.track_frames == 12).all() and (scores[scores.track_id == 2].track_frames == 3).all()
    dropped = scores[~scores.kept]
    assert set(dropped.first_failed) == {"track_length", "speed"}
    assert sorted(dropped[dropped.first_failed == "speed"].frame) == [7]  # not its neighbours
    assert (dropped[dropped.first_failed == "track_length"].track_id == 2).all()
    assert np.allclose(track1.smooth_trans_dev, 0) and (track1.speed_mps[track1.frame != 7] < 1.5).all()
    labels = read_dir(tmp_path / LABELS)
    assert labels.num_rows == 11 and set(labels.column("track_id").to_pylist()) == {1}


def test_resume_relabel_and_stale_shards(tmp_path, body_models, caplog):
    for k in range(2):
        rows = people(body_models, "romp", [0.0], seed=k)
        write_unit(tmp_path / "results", f"images.{k}.parquet", predictions("romp", rows, [0], 1),
                   [FrameRef(f"/d/{k}.jpg")])
    ctx = context(tmp_path, body_models)
    assert label_results(ctx).units == 2
    stamp = (tmp_path / LABELS / "images.0.parquet").stat().st_mtime_ns
    again = label_results(ctx)
    assert (again.units, again.skipped_units) == (0, 2)
    assert (tmp_path / LABELS / "images.0.parquet").stat().st_mtime_ns == stamp
    stricter = label_results(replace(ctx, thresholds=FilterThresholds(min_center_conf=0.95)))
    assert (stricter.units, stricter.kept) == (2, 0)  # new thresholds: everything relabelled
    (tmp_path / "results" / "images.1.parquet").unlink()
    pq.write_table(pa.table({"x": [1]}), tmp_path / LABELS / "mine.parquet")
    with caplog.at_level("WARNING"):
        last = label_results(ctx)
    assert last.removed == 2 and not (tmp_path / LABELS / "images.1.parquet").exists()
    assert (tmp_path / LABELS / "mine.parquet").exists() and "mine.parquet" in caplog.text
