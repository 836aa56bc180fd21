"""``meshfleet synth`` end to end on tiny scenes: determinism, resume after a kill, growth, the oracle
through the evaluators, mask / label / oracle agreement, and readers other than meshfleet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from jobs.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
SIZES = "192x108,160x120"  # a 16:9 size (AGORA's frame) and a 4:3 one


def synth_args(output: Path, scenes: int, *extra: str) -> list[str]:
    return ["synth", "--output", str(output), "--scenes", str(scenes), "--seed", "5", "--body-models",
            "open", "--size", SIZES, "--people", "2-4", "--ages", "adult=1,teen=1,kid=1,baby=1",
            "--scenes-per-unit", "2", "--no-ray", *extra]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    result = runner.invoke(app, synth_args(out, 4))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "v"
    result = runner.invoke(app, synth_args(out, 2, "--video", "--frames", "5", "--fps", "10"))
    assert result.exit_code == 0, result.output
    return out


def test_output_contract(dataset):
    names = {p.name for p in dataset.iterdir()}
    assert {"images", "labels", "masks", "agora", "relative_human", "cmu_panoptic", "oracle", "contact_sheet.jpg",
            "_meshfleet_job.json"} <= names
    stems = sorted(p.stem for p in (dataset / "images").glob("*.jpg"))
    assert stems == sorted(p.stem for p in (dataset / "masks").glob("*.png")) and len(stems) == 4
    assert (dataset / "relative_human" / "synth_annots.npz").is_file()
    assert list((dataset / "agora" / "gt_dataframe_smpl").glob("*_withjv.pkl"))
    assert list((dataset / "cmu_panoptic" / "panoptic_annot").glob("*.pkl"))


def test_same_seed_gives_identical_bytes(dataset, tmp_path):
    again = tmp_path / "b"
    result = runner.invoke(app, synth_args(again, 4))
    assert result.exit_code == 0, result.output
    assert files(again) == files(dataset)
    other = tmp_path / "c"
    assert runner.invoke(app, [*synth_args(other, 1), "--seed", "6"]).exit_code == 0
    changed = files(other / "images")
    assert changed and all(files(dataset / "images")[name] != data for name, data in changed.items())


def test_killed_run_resumes_to_the_same_dataset(dataset, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "jobs.cli", *synth_args(out, 4)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list((out / "labels").glob("*.parquet")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(list((out / "labels").glob("*.parquet"))) < 2, "the run finished before it could be killed"
    result = runner.invoke(app, synth_args(out, 4))
    assert result.exit_code == 0, result.output
    assert "already done" in result.output
    assert files(out) == files(dataset)


def test_more_scenes_adds_only_new_ones(dataset, tmp_path):
    out = tmp_path / "grow"
    assert runner.invoke(app, synth_args(out, 3)).exit_code == 0
    first = files(out / "images")
    result = runner.invoke(app, synth_args(out, 4))
    assert result.exit_code == 0, result.output
    assert "made 1 scenes" in result.output
    assert {k: files(out / "images")[k] for k in first} == first
    order = [("scene", "ascending"), ("frame", "ascending"), ("person", "ascending")]
    grown, fresh = (pq.read_table(root / "labels").sort_by(order) for root in (out, dataset))
    assert grown.num_rows == fresh.num_rows and grown.equals(fresh)


def test_a_different_job_is_refused_and_user_errors_exit_2(dataset, tmp_path):
    result = runner.invoke(app, [*synth_args(dataset, 4)[:-1], "--people", "1-2", "--no-ray"])
    assert result.exit_code == 2 and "different job" in result.output
    assert runner.invoke(app, synth_args(tmp_path / "x", 2, "--people", "5-2")).exit_code == 2
    backgrounds = tmp_path / "backgrounds"
    backgrounds.mkdir()
    cv2.imwrite(str(backgrounds / "a.png"), np.zeros((8, 8, 3), np.uint8))
    inside = runner.invoke(app, synth_args(backgrounds / "out", 2, "--backgrounds", str(backgrounds)))
    assert inside.exit_code == 2 and "overlaps" in inside.output


def test_person_index_mask_value_and_oracle_row_agree(dataset):
    labels = pd.read_parquet(dataset / "labels")
    oracle = pd.read_parquet(dataset / "oracle")
    key = ["source", "frame", "person"]
    assert labels[key].sort_values(key).values.tolist() == oracle[key].sort_values(key).values.tolist()
    merged = labels.merge(oracle, on=key)
    assert np.allclose(np.stack(merged["joints2d"].map(np.stack)), np.stack(merged["pj2d_org"].map(np.stack)))
    for source, rows in labels.groupby("source"):
        stem = Path(source).stem
        mask = cv2.imread(str(dataset / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        image = cv2.imread(str(dataset / source))
        assert mask.shape == image.shape[:2] == (rows["image_height"].iloc[0], rows["image_width"].iloc[0])
        assert set(np.unique(mask)) - {0} == set(rows["person"] + 1)
        for _, row in rows.iterrows():
            ys, xs = np.nonzero(mask == row["person"] + 1)
            assert list(row["bbox"]) == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_masks_hold_the_visible_projected_joints(dataset):
    """The 24 SMPL joints (inside the body) fall on their person's mask; the 71, whose surface points
    (finger tips, toes, nose, head top) lie on the silhouette's edge, within one pixel of it."""
    labels = pd.read_parquet(dataset / "labels")
    inside = {"24 exact": 0, "71 within 1 px": 0}
    total = {"24 exact": 0, "71 within 1 px": 0}
    for _, row in labels.iterrows():
        mask = cv2.imread(str(dataset / "masks" / f"{Path(row['source']).stem}.png"), cv2.IMREAD_UNCHANGED)
        own = (mask == row["person"] + 1).astype(np.uint8)
        near = cv2.dilate(own, np.ones((3, 3), np.uint8))
        visible = np.asarray(row["joints2d_visible"])
        pixels = np.floor(np.stack(row["joints2d"])).astype(int)
        for name, ok, picked in (("24 exact", own, visible & (np.arange(71) < 24)), ("71 within 1 px", near, visible)):
            inside[name] += int(ok[pixels[picked, 1], pixels[picked, 0]].sum())
            total[name] += int(picked.sum())
    for name in inside:
        assert total[name] > 0 and inside[name] / total[name] >= 0.95, (name, inside[name], total[name])


def test_labels_read_with_pandas_and_duckdb(dataset):
    frame = pd.read_parquet(dataset / "labels")
    assert len(frame) > 0 and frame["smpl_betas"].map(len).eq(11).all()
    rows = duckdb.sql(f"SELECT source, person, len(joints2d) AS j, joints3d[1][3] AS z, depth_layer "
                      f"FROM read_parquet('{dataset / 'labels' / '*.parquet'}') ORDER BY source, person").fetchall()
    assert len(rows) == len(frame) and all(r[2] == 71 and r[3] > 0 for r in rows)
    meta = json.loads(duckdb.sql(f"SELECT value FROM parquet_kv_metadata('{next((dataset / 'labels').glob('*'))}') "
                                 "WHERE key = 'meshfleet'").fetchall()[0][0])
    assert meta["seed"] == 5 and meta["generator"] == "meshfleet synth"


def _eval(benchmark: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / f"{benchmark}.json"
    result = runner.invoke(app, ["eval", benchmark, *args, "--output-json", str(out), "--no-mlflow"])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


@pytest.mark.parametrize("protocol", ["official", "fixed"])
def test_the_oracle_scores_perfectly(dataset, tmp_path, ray_local, protocol):
    oracle = ["--predictions", str(dataset / "oracle"), "--protocol", protocol]
    agora = _eval("agora", tmp_path, *oracle, "--data", str(dataset / "agora"), "--body-models", "open")
    assert agora["f1"] == 1.0 and agora["false_positives"] == 0 and agora["mpjpe"] < 1e-3 and agora["mve"] < 1e-3
    rh = _eval("relative-human", tmp_path, *oracle, "--annots", str(dataset / "relative_human" / "synth_annots.npz"))
    assert rh["f1"] == 1.0 and rh["pcrd"] == 100.0 and rh["mpckh"] == 100.0
    cmu = _eval("cmu-panoptic", tmp_path, *oracle, "--data", str(dataset / "cmu_panoptic"))
    people = len(pd.read_parquet(dataset / "labels"))
    assert cmu["missed"] == 0 and cmu["false_positives"] == 0 and cmu["matched"] == people
    assert cmu["mpjpe_mean"] < 1e-3


def test_video_oracle_tracks_perfectly(videos, tmp_path):
    assert sorted(p.name for p in (videos / "videos").glob("*.mp4")) == sorted(
        f"{p.name}.mp4" for p in (videos / "masks").iterdir())
    labels = pd.read_parquet(videos / "labels")
    assert labels["track_id"].notna().all() and (labels["track_id"] == labels["person"] + 1).all()
    cap = cv2.VideoCapture(str(next((videos / "videos").glob("*.mp4"))))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    out = tmp_path / "mot.json"
    result = runner.invoke(app, ["eval", "tracking", str(videos / "oracle"), "--gt", str(videos / "mot"),
                                 "--output", str(out), "--no-mlflow"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    overall = metrics.get("overall", metrics)
    assert overall["mota"] == 1.0 and overall["idf1"] == 1.0 and overall["HOTA"] == 1.0


def test_spec_and_dry_run(tmp_path):
    spec = tmp_path / "synth.yaml"
    printed = runner.invoke(app, [*synth_args(tmp_path / "s", 3), "--dry-run"])
    assert printed.exit_code == 0 and "kind: synth" in printed.output
    spec.write_text(printed.output)
    again = runner.invoke(app, ["run", str(spec), "--dry-run"])
    assert again.exit_code == 0 and again.output == printed.output
    override = runner.invoke(app, ["synth", "--spec", str(spec), "--scenes", "7", "--dry-run"])
    assert override.exit_code == 0 and "scenes: 7" in override.output and "192x108" in override.output


def test_labels_feed_the_trainers_image_labels(dataset):
    """Every image's rows build core.train's ImageLabels (the contract the trainer reads)."""
    from core.train.labels import LABEL_FLAGS, ImageLabels
    from pipelines.schema import column_array

    table = pq.read_table(dataset / "labels")
    sources = table.column("source").to_pylist()
    for source in dict.fromkeys(sources):
        rows = table.filter(pa.compute.equal(table.column("source"), source))
        arrays = {name: column_array(rows, name) for name in ("joints2d", "joints3d", "smpl_thetas", "smpl_betas",
                                                              "cam_trans", "bbox")}
        flags = {name: rows.column(name).to_numpy(zero_copy_only=False) for name in LABEL_FLAGS}
        labels = ImageLabels(
            **arrays, joints2d_visible=np.array(rows.column("joints2d_visible").to_pylist(), bool),
            depth_layer=rows.column("depth_layer").to_numpy().astype(np.int64),
            age_class=rows.column("age_class").to_numpy().astype(np.int64), **flags,
            weight=rows.column("weight").to_numpy(), focal_px=float(rows.column("focal_px")[0].as_py()),
            principal_point=np.asarray(rows.column("principal_point")[0].as_py(), np.float32))
        assert labels.count == rows.num_rows and (labels.depth_layer >= 0).all()
