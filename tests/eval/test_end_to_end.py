"""End to end: ``meshfleet infer`` on tiny synthetic images -> ``meshfleet eval cmu-panoptic`` ->
the metrics JSON and an MLflow run with params, metrics and artifacts.

The ground truth is written in the CRMH format FROM the predictions themselves (inverse joint
map, inverse 1920/832 scale, minus the evaluator's GT offset), plus one extra annotated person
that nobody predicted. So the expected numbers are known without trusting the evaluator: every
kept predicted person matches its own annotation at ~0 mm, the extra person is a 150 mm miss.
"""

from __future__ import annotations

import hashlib
import json
import pickle

import cv2
import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.synthetic import draw_scene

runner = CliRunner()
SCALE = 1920 / 832
J14_IN_J24 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14]  # CRMH 24-joint slots of the 14 joints
J14_IN_71 = [54 + j for j in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14)]  # H36M-17 block, pelvis last
GT_OFFSET = np.array([0.0, 0.06, 0.03])  # what the CRMH protocol adds to the 13 non-pelvis joints
IMAGES = {"haggling1-00_00000001.jpg": (240, 320), "pizza1-00_00000002.jpg": (200, 300)}
CMU_KEYS = {"mpjpe_haggling", "mpjpe_mafia", "mpjpe_ultimatum", "mpjpe_pizza", "mpjpe_mean", "matched", "missed",
            "false_positives", "protocol", "evaluator_version"}


def _annotation(pj2d: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A CRMH (24, 3) / (24, 4) annotation that the protocol maps back onto this prediction."""
    kp2d = np.tile([-1.0, -1.0, 0.0], (24, 1))
    kp3d = np.tile([0.0, 0.0, 0.0, 0.0], (24, 1))
    p3d = joints[J14_IN_71].astype(np.float64)
    p3d[:13] -= GT_OFFSET
    kp2d[J14_IN_J24] = np.c_[pj2d[J14_IN_71] / SCALE, np.ones(14)]
    kp3d[J14_IN_J24] = np.c_[p3d, np.ones(14)]
    return kp2d, kp3d


def _kept(pj2d: np.ndarray, height: int, width: int) -> bool:
    """The protocol keeps a person with more than 5 of its 14 joints strictly inside the image."""
    x, y = pj2d[J14_IN_71, 0], pj2d[J14_IN_71, 1]
    return int(((x > 0) & (x < width) & (y > 0) & (y < height)).sum()) > 5


@pytest.fixture(scope="module")
def inferred(ray_local, tmp_path_factory, checkpoints, body_model_dir):
    root = tmp_path_factory.mktemp("e2e")
    images = root / "images"
    images.mkdir()
    for seed, (name, (h, w)) in enumerate(IMAGES.items()):
        cv2.imwrite(str(images / name), draw_scene(h, w, 2, seed=20 + seed))
    results = root / "results"
    result = runner.invoke(app, ["infer", str(images), "--model", "romp", "--checkpoint", str(checkpoints["romp"]),
                                 "--body-models", str(body_model_dir), "--output", str(results), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return root, images, results


@pytest.fixture(scope="module")
def benchmark(inferred):
    """CRMH annotations built from the predictions (+ one unpredicted person in the haggling image)
    and the expected metrics, counted independently of the evaluator."""
    root, _, results = inferred
    table = pd.read_parquet(results)
    table = table[table["error"].isna()]
    table["name"] = table["source"].map(lambda s: s.rsplit("/", 1)[-1])
    assert len(table) >= 2, "the calibrated random checkpoint should detect people"
    frames, kept, fps = [], {"haggling": 0, "pizza": 0}, 0
    for name, (h, w) in IMAGES.items():
        people = []
        for _, row in table[table["name"] == name].iterrows():
            pj2d, joints = np.stack(row["pj2d_org"]), np.stack(row["joints"])
            people.append(_annotation(pj2d, joints))
            sequence = name.split("1-")[0]
            kept[sequence] += _kept(pj2d, h, w)
            fps += not _kept(pj2d, h, w)
        if name.startswith("haggling"):  # a small figure no prediction is near: a miss
            kp2d = np.tile([-1.0, -1.0, 0.0], (24, 1))
            kp2d[J14_IN_J24] = np.c_[np.full(14, 2.0 + 0.1 * np.arange(14)), np.full(14, 3.0), np.ones(14)]
            kp3d = np.zeros((24, 4))
            kp3d[J14_IN_J24, 3] = 1.0
            people.append((kp2d, kp3d))
        sequence, frame_name = name[:-4].split("-")
        frames.append({"filename": f"processed/{sequence}/00_00/{frame_name}.png", "width": w / SCALE,
                       "height": h / SCALE, "kpts2d": np.array([p[0] for p in people]),
                       "kpts3d": np.array([p[1] for p in people])})
    data = root / "cmu"
    (data / "panoptic_annot").mkdir(parents=True)
    (data / "panoptic_annot" / "e2e.pkl").write_bytes(pickle.dumps(frames, protocol=2))
    matched = kept["haggling"] + kept["pizza"]
    expected = {"matched": matched, "missed": 1, "false_positives": fps,
                "mpjpe_haggling": 150.0 / (kept["haggling"] + 1), "mpjpe_mean": 150.0 / (matched + 1),
                "mpjpe_pizza": 0.0 if kept["pizza"] else float("nan")}
    return data, expected


def _check_metrics(metrics: dict, expected: dict) -> None:
    assert CMU_KEYS <= set(metrics)
    assert metrics["protocol"] == "official" and metrics["evaluator_version"] == "1.0"
    for key, value in expected.items():
        if value != value:
            assert metrics[key] is None or metrics[key] != metrics[key], key
        else:
            assert metrics[key] == pytest.approx(value, abs=1e-3), key


def test_infer_then_eval_logs_a_complete_mlflow_run(inferred, benchmark, checkpoints, tmp_path):
    _, _, results = inferred
    data, expected = benchmark
    out, uri = tmp_path / "metrics.json", f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = runner.invoke(app, ["eval", "cmu-panoptic", "--data", str(data), "--predictions", str(results),
                                 "--output-json", str(out), "--mlflow-uri", uri, "--split", "test"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    _check_metrics(metrics, expected)

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["meshfleet-eval"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    params = run.data.params
    assert params["benchmark"] == "cmu-panoptic" and params["split"] == "test" and params["protocol"] == "official"
    assert params["evaluator_version"] == "1.0" and params["model"] == "romp"
    assert params["checkpoint_sha256"] == hashlib.sha256(checkpoints["romp"].read_bytes()).hexdigest()
    assert json.loads(params["thresholds"])["center"] == pytest.approx(0.25)
    assert params["iou_thresh"] == "0.05" and params["miss_penalty_mm"] == "150.0"
    for key in ("matched", "missed", "false_positives", "mpjpe_mean", "mpjpe_haggling"):
        assert run.data.metrics[key] == pytest.approx(metrics[key]), key
    assert "mpjpe_mafia" not in run.data.metrics  # NaN (no such sequence here) is not logged
    names = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(run.info.run_id)}
    assert {"metrics.json", "config.json", "per_item.csv", "mpjpe_per_sequence.png"} <= names
    logged = json.loads(open(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="metrics.json",
                                                                 dst_path=str(tmp_path / "dl"))).read())
    assert logged["mpjpe_mean"] == pytest.approx(metrics["mpjpe_mean"])
    rows = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="per_item.csv",
                                                           dst_path=str(tmp_path / "dl")))
    assert (rows["status"] == "matched").sum() == expected["matched"]
    assert rows.loc[rows["status"] == "missed", "mpjpe_mm"].tolist() == [150.0]


def test_eval_with_checkpoint_runs_inference_first(inferred, benchmark, checkpoints, body_model_dir, tmp_path):
    _, images, _ = inferred
    data, expected = benchmark
    out = tmp_path / "metrics.json"
    result = runner.invoke(app, ["eval", "cmu-panoptic", "--data", str(data), "--checkpoint", str(checkpoints["romp"]),
                                 "--model", "romp", "--body-models", str(body_model_dir), "--images", str(images),
                                 "--infer-output", str(tmp_path / "results"), "--device", "cpu",
                                 "--output-json", str(out), "--no-mlflow"])
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "results").glob("*.parquet"))
    _check_metrics(json.loads(out.read_text()), expected)
