"""``meshfleet pseudo-label`` end to end on two tiny images and a short video (random weights: the
people are arbitrary, the mechanics are what is checked)."""

import json
import shutil

import cv2
import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from core.checkpoints import file_sha256
from jobs.cli import app
from jobs.specs import parse_spec
from jobs.synthetic import draw_scene, write_video
from pipelines.annotations import annotation_schema
from pipelines.schema import read_metadata

runner = CliRunner()
# permissive filters, so that random-weight people survive to the shards (the filters themselves are
# tested in tests/core/test_pseudo_filters.py and tests/pipelines/test_pseudo_label.py)
OPEN_FILTERS = {"min_center_conf": 0.0, "min_in_frame": 0.0, "max_abs_beta": 1e3, "max_limit_violation_deg": 360.0,
                "min_depth_m": 0.0, "max_depth_m": 1e6, "max_depth_scale_ratio": 1e6, "min_track_frames": 1,
                "max_speed_mps": 1e6, "max_accel_mps2": 1e9, "max_smooth_trans_dev": 1e6,
                "max_smooth_pose_deg": 360.0}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("pseudo_corpus")
    scene = draw_scene(96, 128, 2, seed=4)  # wider than high: no left padding, so a mirror is exact
    cv2.imwrite(str(root / "a.png"), scene)
    cv2.imwrite(str(root / "a_mirror.png"), np.ascontiguousarray(scene[:, ::-1]))
    base = draw_scene(96, 128, 2, seed=7)
    write_video(root / "walk.mp4", [np.roll(base, 3 * t, axis=1) for t in range(3)], fps=10)
    extra = tmp_path_factory.mktemp("pseudo_extra")
    cv2.imwrite(str(extra / "b.jpg"), draw_scene(80, 80, 1, seed=9))
    return root, extra


def command(inputs, out, checkpoints, body_model_dir, tmp_path, *extra):
    return ["pseudo-label", *map(str, inputs), "--checkpoint", str(checkpoints["romp"]), "--body-models",
            str(body_model_dir), "--output", str(out), "--device", "cpu", "--no-ray", "--center-thresh", "0.1",
            "--chunk-frames", "2", "--mlflow-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *extra]


@pytest.fixture(scope="module")
def labelled(corpus, checkpoints, body_model_dir, tmp_path_factory):
    """One run over a.png and walk.mp4 (3 frames, chunks of 2), filters from a spec file."""
    root, _ = corpus
    tmp = tmp_path_factory.mktemp("pseudo_run")
    spec = tmp / "spec.yaml"
    spec.write_text(yaml.safe_dump({"kind": "pseudo-label", "pseudo-label": {"filters": OPEN_FILTERS}}))
    args = command([root / "a.png", root / "walk.mp4"], tmp / "out", checkpoints, body_model_dir, tmp,
                   "--spec", str(spec))
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return tmp, args, result.output


def names(folder) -> set[str]:
    return {p.name for p in folder.glob("*.parquet")}


def test_shards_carry_provenance_and_read_with_pandas_and_duckdb(labelled, checkpoints):
    tmp, _, output = labelled
    out = tmp / "out"
    assert names(out / "labels") == names(out / "results") == names(out / "scores")
    assert len(names(out / "results")) == 3  # one image unit, two video chunks
    labels = pd.read_parquet(out / "labels")
    assert len(labels) > 0 and f"kept {len(labels)}" in output
    assert pq.read_schema(next((out / "labels").glob("*.parquet"))).remove_metadata() == annotation_schema()
    sha = file_sha256(checkpoints["romp"])
    for row in labels.itertuples():
        provenance = json.loads(row.provenance)
        assert provenance["checkpoint_sha256"] == sha and provenance["meshfleet_version"]
        assert (provenance["source"], provenance["frame"]) == (row.source, row.frame)
        assert provenance["thresholds"]["min_center_conf"] == 0.0 and provenance["results_unit"] in names(
            out / "results")
    assert labels.source.map(lambda s: s.startswith("/")).all()  # absolute URIs of the original inputs
    video = labels[labels.source.str.endswith("walk.mp4")]
    assert len(video) and video.track_id.notna().all()  # untracked video people fail min_track_frames = 1
    assert labels[~labels.source.str.endswith("walk.mp4")].track_id.isna().all()
    assert labels.weight.between(0, 1).all() and labels.has_smpl.all() and not labels.has_age.any()
    con = duckdb.connect()
    glob = str(out / "labels" / "*.parquet")
    count, weight, z = con.execute(f"SELECT count(*), max(weight), min(joints3d[1][3]) FROM read_parquet('{glob}')"
                                   ).fetchone()
    assert count == len(labels) and weight <= 1 and np.isfinite(z)


def test_report_and_mlflow_run_have_the_counts(labelled):
    tmp, _, _ = labelled
    out = tmp / "out"
    report = json.loads((out / "report" / "report.json").read_text())
    scores = pd.read_parquet(out / "scores")
    assert report["persons"] == len(scores) and report["kept"] == len(pd.read_parquet(out / "labels"))
    filters = {f["name"]: f for f in report["filters"]}
    assert filters["track_length"]["applicable"] == scores.source.str.endswith("walk.mp4").sum()
    assert sum(f["dropped_sequential"] for f in report["filters"]) == report["dropped"]
    for name, entry in filters.items():
        assert entry["dropped_marginal"] == (~scores[f"pass_{name}"]).sum()
    assert (out / "report" / "hist_center_conf.png").read_bytes()[:4] == b"\x89PNG"
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("meshfleet-pseudo-label")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.metrics["persons"] == report["persons"] and run.data.metrics["kept"] == report["kept"]
    assert run.data.metrics["dropped_marginal.center_conf"] == filters["center_conf"]["dropped_marginal"]
    assert run.data.params["filter.min_center_conf"] == "0.0"


def test_rerun_resumes_and_new_thresholds_relabel_without_inference(labelled, tmp_path):
    tmp, args, _ = labelled
    out = tmp_path / "out"
    shutil.copytree(tmp / "out", out)
    args = [str(out) if a == str(tmp / "out") else a for a in args]
    stamps = {p: p.stat().st_mtime_ns for p in (out / "results").glob("*.parquet")}
    labels = {p: p.stat().st_mtime_ns for p in (out / "labels").glob("*.parquet")}
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "labels: units 0 (3 already done)" in again.output
    assert {p: p.stat().st_mtime_ns for p in (out / "labels").glob("*.parquet")} == labels
    strict = runner.invoke(app, [*args, "--min-center-conf", "1.0"])
    assert strict.exit_code == 0, strict.output
    assert "labels: units 3 (0 already done)" in strict.output and "kept 0" in strict.output
    assert {p: p.stat().st_mtime_ns for p in (out / "results").glob("*.parquet")} == stamps  # no inference
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["kept"] == 0 and report["thresholds"]["min_center_conf"] == 1.0


def test_rerun_with_an_extra_input_labels_only_the_new_unit(labelled, corpus, tmp_path):
    tmp, args, _ = labelled
    out = tmp_path / "out"
    shutil.copytree(tmp / "out", out)
    args = [str(out) if a == str(tmp / "out") else a for a in args]
    grown = runner.invoke(app, [args[0], str(corpus[1] / "b.jpg"), *args[1:]])
    assert grown.exit_code == 0, grown.output
    assert "labels: units 1 (3 already done)" in grown.output


def test_flip_tta_and_a_second_checkpoint(corpus, checkpoints, body_model_dir, tmp_path):
    root, _ = corpus
    out = tmp_path / "out"
    args = command([root / "a.png", root / "a_mirror.png"], out, checkpoints, body_model_dir, tmp_path,
                   "--flip-tta", "--agree-checkpoint", str(checkpoints["romp"]), "--no-mlflow")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    main, flipped = pd.read_parquet(out / "results"), pd.read_parquet(out / "results-flip")
    assert "hflip" not in read_metadata(pq.read_schema(next((out / "results").glob("*.parquet"))))
    assert read_metadata(pq.read_schema(next((out / "results-flip").glob("*.parquet"))))["hflip"] is True
    for name, mirror in (("a.png", "a_mirror.png"), ("a_mirror.png", "a.png")):
        # the flipped pass over an image sees exactly the pixels of its mirror image
        mine = flipped[flipped.source.str.endswith("/" + name)].sort_values("person")
        theirs = main[main.source.str.endswith("/" + mirror)].sort_values("person")
        assert len(mine) == len(theirs) > 0
        np.testing.assert_array_equal(np.stack(mine.pj2d_org.map(np.stack)), np.stack(theirs.pj2d_org.map(np.stack)))
    scores = pd.read_parquet(out / "scores")
    assert len(scores) == len(main) and (scores.agree_error == 0).all() and scores.pass_agree.all()
    assert np.isfinite(scores.flip_error).any()
    assert (out / "report" / "hist_flip.png").exists() and (out / "report" / "hist_agree.png").exists()


def test_dry_run_prints_a_spec_that_parses(tmp_path, checkpoints, body_model_dir):
    result = runner.invoke(app, ["pseudo-label", "x.jpg", "--checkpoint", str(checkpoints["romp"]),
                                 "--body-models", str(body_model_dir), "--output", str(tmp_path / "o"),
                                 "--max-abs-beta", "2.5", "--flip-tta", "--tracking-uri", "sqlite:///m.db",
                                 "--dry-run"])
    assert result.exit_code == 0, result.output
    kind, cfg = parse_spec(yaml.safe_load(result.output))
    assert kind == "pseudo-label" and cfg.filters.max_abs_beta == 2.5 and cfg.flip_tta
    assert cfg.mlflow_uri == "sqlite:///m.db" and cfg.filters.min_center_conf == 0.5
    assert not (tmp_path / "o").exists()


def test_user_errors_are_one_line_with_exit_2(corpus, checkpoints, body_model_dir, tmp_path):
    root, _ = corpus
    base = ["pseudo-label", str(root / "a.png"), "--body-models", str(body_model_dir), "--no-ray"]
    missing = runner.invoke(app, [*base, "--checkpoint", str(tmp_path / "none.pkl"), "--output", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "none.pkl" in missing.output
    inside = runner.invoke(app, ["pseudo-label", str(root), "--body-models", str(body_model_dir), "--no-ray",
                                 "--checkpoint", str(checkpoints["romp"]), "--output", str(root / "out")])
    assert inside.exit_code == 2 and "overlaps" in inside.output
    bad = runner.invoke(app, [*base, "--checkpoint", str(checkpoints["romp"]), "--output", str(tmp_path / "o"),
                              "--min-depth-m", "50"])
    assert bad.exit_code == 2 and "min_depth_m" in bad.output
    for result in (missing, inside, bad):
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
