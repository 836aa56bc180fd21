import json

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from core.settings import PredictorSettings
from jobs.cli import app
from jobs.config import InferConfig
from jobs.infer import run_infer
from jobs.synthetic import draw_scene, write_video
from pipelines.schema import column_array
from pipelines.tracking import TrackingSettings
from tests.pipelines.test_tracking_pass import synthetic_video

runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("track_corpus")
    frames = []
    for t in range(8):  # the same scene drifting: the same people from frame to frame
        scene = draw_scene(200, 260, 3, seed=5)
        frames.append(np.roll(scene, 3 * t, axis=1))
    write_video(root / "walk.mp4", frames, fps=10)
    cv2.imwrite(str(root / "still.jpg"), draw_scene(120, 160, 2, seed=6))
    return root


def _cfg(corpus, out, checkpoints, body_model_dir, chunk, track=True, use_ray=False):
    return InferConfig(inputs=(str(corpus),), model="romp", checkpoint=str(checkpoints["romp"]),
                       body_models=str(body_model_dir), output=str(out),
                       settings=PredictorSettings(device="cpu", center_thresh=0.2), frames_per_chunk=chunk,
                       track=TrackingSettings() if track else None, use_ray=use_ray)


def _sorted(path):
    table = ds.dataset(str(path), format="parquet").to_table()
    return table.sort_by([("source", "ascending"), ("frame", "ascending"), ("person", "ascending")])


@pytest.fixture(scope="module")
def tracked(corpus, checkpoints, body_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tracked") / "out"
    summary = run_infer(_cfg(corpus, out, checkpoints, body_model_dir, chunk=3))
    return summary, out


def test_infer_track_fills_ids_and_smoothed_columns(tracked, corpus, checkpoints, body_model_dir):
    summary, out = tracked
    assert summary.tracking.videos == 1 and summary.tracking.tracks > 0
    table = _sorted(out)
    video = table.filter(ds.field("source") == str(corpus / "walk.mp4"))
    still = table.filter(ds.field("source") == str(corpus / "still.jpg"))
    assert video.num_rows > 0 and video.column("track_id").null_count < video.num_rows
    assert still.column("track_id").null_count == still.num_rows
    for name in ("smpl_thetas", "cam", "cam_trans", "smpl_betas"):
        assert column_array(video, f"{name}_smoothed").shape == column_array(video, name).shape
    assert (out / "_meshfleet_tracking").is_dir()
    again = run_infer(_cfg(corpus, out, checkpoints, body_model_dir, chunk=3))
    assert again.skipped_units == again.units and again.tracking.skipped_videos == 1


def test_chunked_pipeline_tracking_equals_unchunked(tracked, corpus, checkpoints, body_model_dir, tmp_path):
    run_infer(_cfg(corpus, tmp_path / "whole", checkpoints, body_model_dir, chunk=100))
    a, b = _sorted(tracked[1]), _sorted(tmp_path / "whole")
    assert a.column("track_id").to_pylist() == b.column("track_id").to_pylist()
    good = a.column("error").is_null()
    np.testing.assert_allclose(column_array(a.filter(good), "smpl_thetas_smoothed"),
                               column_array(b.filter(good), "smpl_thetas_smoothed"), atol=1e-6)


def test_track_command_equals_infer_track(tracked, corpus, checkpoints, body_model_dir, tmp_path):
    run_infer(_cfg(corpus, tmp_path / "raw", checkpoints, body_model_dir, chunk=3, track=False))
    result = runner.invoke(app, ["track", str(tmp_path / "raw"), "--output", str(tmp_path / "retracked")])
    assert result.exit_code == 0, result.output
    a, b = _sorted(tracked[1]), _sorted(tmp_path / "retracked")
    assert a.column("track_id").to_pylist() == b.column("track_id").to_pylist()
    good = a.column("error").is_null()
    for name in ("smpl_thetas_smoothed", "cam_trans_smoothed"):
        np.testing.assert_allclose(column_array(a.filter(good), name), column_array(b.filter(good), name), atol=1e-6)
    raw = _sorted(tmp_path / "raw")
    b = _sorted(tmp_path / "retracked")
    for name in raw.column_names:  # every input column is kept (track_id / smoothed ones updated)
        if name != "track_id" and not name.endswith("_smoothed"):
            assert b.column(name).equals(raw.column(name)), name
    again = runner.invoke(app, ["track", str(tmp_path / "raw"), "--output", str(tmp_path / "retracked")])
    assert again.exit_code == 2 and "--overwrite" in again.output
    exported = runner.invoke(app, ["export", "mot", str(tmp_path / "retracked"), "--output", str(tmp_path / "mot")])
    assert exported.exit_code == 0, exported.output
    scored = runner.invoke(app, ["eval", "tracking", str(tmp_path / "retracked"), "--gt", str(tmp_path / "mot"),
                                 "--no-mlflow"])
    assert scored.exit_code == 0 and "HOTA 1.000" in scored.output and "IDsw 0" in scored.output, scored.output


def test_export_mot_and_eval_tracking(tracked, tmp_path):
    out = tracked[1]
    result = runner.invoke(app, ["export", "mot", str(out), "--output", str(tmp_path / "mot")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mot" / "walk.txt").read_text().strip()
    spec = tmp_path / "export.yaml"
    spec.write_text(f"kind: export-mot\nexport-mot: {{results: {out}, output: {tmp_path / 'from-spec'}}}\n")
    from_spec = runner.invoke(app, ["run", str(spec)])
    assert from_spec.exit_code == 0, from_spec.output
    assert (tmp_path / "from-spec" / "walk.txt").read_text() == (tmp_path / "mot" / "walk.txt").read_text()
    missing = runner.invoke(app, ["export", "mot", str(tmp_path / "nothing"), "--output", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "nothing" in missing.output
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = runner.invoke(app, ["eval", "tracking", str(out), "--gt", str(tmp_path / "mot"),
                                 "--output", str(tmp_path / "m.json"), "--mlflow-uri", uri])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["overall"]["HOTA"] == pytest.approx(1.0) and metrics["overall"]["mota"] == pytest.approx(1.0)
    assert metrics["per_sequence"]["walk"]["num_switches"] == 0
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["meshfleet-eval"])
    assert runs.loc[0, "metrics.HOTA"] == pytest.approx(1.0) and runs.loc[0, "run_id"] == metrics["mlflow_run_id"]


def test_ray_pipeline_with_tracking(ray_local, corpus, checkpoints, body_model_dir, tmp_path, tracked):
    run_infer(_cfg(corpus, tmp_path / "ray", checkpoints, body_model_dir, chunk=3, use_ray=True))
    a, b = _sorted(tracked[1]), _sorted(tmp_path / "ray")
    assert a.column("track_id").to_pylist() == b.column("track_id").to_pylist()


def _write_rows(root, table, name="part-0.parquet"):
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / name)
    return root


def test_track_keeps_every_column_and_tables_may_lack_optional_ones(tmp_path):
    rows = synthetic_video(frames=12, skip=())
    bare = rows.drop_columns(["error", "timestamp", "track_id", "smpl_thetas_smoothed"])
    bare = bare.append_column("my_note", pa.array([f"n{i}" for i in range(bare.num_rows)]))
    _write_rows(tmp_path / "bare", bare)
    result = runner.invoke(app, ["track", str(tmp_path / "bare"), "--output", str(tmp_path / "tracked"),
                                 "--fps", "25"])
    assert result.exit_code == 0, result.output
    assert "no timestamps; tracked at --fps 25" in result.output
    tracked = _sorted(tmp_path / "tracked")
    assert set(bare.column_names) <= set(tracked.column_names)
    assert {f"{n}_smoothed" for n in ("smpl_thetas", "smpl_betas", "cam", "cam_trans")} <= set(tracked.column_names)
    assert tracked.column("my_note").to_pylist() == bare.column("my_note").to_pylist()
    for name in ("joints", "pj2d_org", "age_class", "image_height"):
        assert tracked.column(name).equals(bare.column(name)), name
    assert tracked.column("track_id").null_count == 0
    exported = runner.invoke(app, ["export", "mot", str(tmp_path / "tracked"), "--output", str(tmp_path / "mot")])
    assert exported.exit_code == 0 and (tmp_path / "mot" / "walk.txt").read_text().strip(), exported.output
    scored = runner.invoke(app, ["eval", "tracking", str(tmp_path / "tracked"), "--gt", str(tmp_path / "mot"),
                                 "--no-mlflow"])
    assert scored.exit_code == 0 and "HOTA 1.000" in scored.output, scored.output


def test_a_missing_required_column_is_one_line(tmp_path):
    _write_rows(tmp_path / "nocam", synthetic_video(frames=3, skip=()).drop_columns(["cam"]))
    result = runner.invoke(app, ["track", str(tmp_path / "nocam"), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "missing required column 'cam'" in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_videos_with_the_same_name_are_two_sequences(tmp_path):
    rows = synthetic_video(frames=6, skip=())
    for folder in ("a", "b"):
        source = pa.array([f"/data/{folder}/clip.mp4"] * rows.num_rows)
        _write_rows(tmp_path / "res", rows.set_column(0, "source", source), f"{folder}.parquet")
    assert runner.invoke(app, ["track", str(tmp_path / "res"), "--output", str(tmp_path / "t")]).exit_code == 0
    result = runner.invoke(app, ["export", "mot", str(tmp_path / "t"), "--output", str(tmp_path / "mot")])
    assert result.exit_code == 0 and "2 sequences" in result.output, result.output
    a, b = (tmp_path / "mot" / "a_clip.txt").read_text(), (tmp_path / "mot" / "b_clip.txt").read_text()
    assert a == b and a.strip()
