import shutil

import cv2
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.synthetic import draw_scene
from pipelines.schema import read_metadata

runner = CliRunner()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_images")
    cv2.imwrite(str(root / "one.jpg"), draw_scene(100, 140, 2, seed=4))
    cv2.imwrite(str(root / "two.png"), draw_scene(90, 90, 1, seed=5))
    return root


def test_infer_romp(tmp_path, images, checkpoints, body_model_dir):
    out = tmp_path / "res"
    result = runner.invoke(app, ["infer", str(images), "--model", "romp", "--checkpoint", str(checkpoints["romp"]),
                                 "--body-models", str(body_model_dir), "--output", str(out), "--device", "cpu",
                                 "--center-thresh", "0.24", "--no-ray"])
    assert result.exit_code == 0, result.output
    assert "frames 2" in result.output and "errors 0" in result.output
    frame = pd.read_parquet(out)
    assert set(frame["source"].map(lambda s: s.rsplit("/", 1)[1])) <= {"one.jpg", "two.png"}
    meta = read_metadata(pq.read_schema(next(out.glob("images.*.parquet"))))
    assert meta["model"] == "romp" and meta["thresholds"]["center"] == 0.24 and len(meta["checkpoint_sha256"]) == 64
    again = runner.invoke(app, ["infer", str(images), "--checkpoint", str(checkpoints["romp"]), "--no-ray",
                                "--body-models", str(body_model_dir), "--output", str(out), "--device", "cpu"])
    assert again.exit_code == 2 and "--overwrite" in again.output and "center" in again.output


def test_infer_bev_explicit_flags(tmp_path, images, checkpoints, body_model_dir):
    out = tmp_path / "bev"
    result = runner.invoke(app, ["infer", str(images / "two.png"), "--model", "bev",
                                 "--checkpoint", str(checkpoints["bev"]), "--body-models", str(body_model_dir),
                                 "--output", str(out), "--device", "cpu", "--no-crowd", "--nms-thresh", "16",
                                 "--relative-scale-thresh", "2", "--no-ray"])
    assert result.exit_code == 0, result.output
    meta = read_metadata(pq.read_schema(next(out.glob("images.*.parquet"))))
    assert meta["thresholds"] == {"center": 0.1, "nms": 16.0, "relative_scale": 2.0, "overlap": 0.8}
    assert meta["crowd"] is False and meta["bev_variant"] == "bev"
    assert pd.read_parquet(out)["smpl_betas"].map(len).eq(11).all()


@pytest.fixture(scope="module")
def small_bev_checkpoint(tmp_path_factory):
    """A random meshfleet checkpoint of the compact BEV at 128 px: it records its own architecture."""
    import torch

    from core.checkpoints import CheckpointInfo, save_checkpoint
    from core.models import build_network
    from core.nets.config import NetworkConfig

    torch.manual_seed(0)
    config = NetworkConfig("bev", "small", 128)
    info = CheckpointInfo(network=config.to_dict(), body_model_set="smpl", training={"steps": 0})
    return save_checkpoint(tmp_path_factory.mktemp("ours") / "model.pth", build_network(config).state_dict(), info)


def test_infer_meshfleet_checkpoint_needs_no_flags(tmp_path, images, small_bev_checkpoint, body_model_dir):
    out = tmp_path / "ours"
    common = ["--checkpoint", str(small_bev_checkpoint), "--body-models", str(body_model_dir), "--device", "cpu"]
    dry = runner.invoke(app, ["infer", str(images), *common, "--dry-run"])
    assert dry.exit_code == 0 and "model: bev" in dry.output
    result = runner.invoke(app, ["infer", str(images), *common, "--output", str(out), "--center-thresh", "0",
                                 "--no-ray"])
    assert result.exit_code == 0, result.output
    assert "frames 2" in result.output and "errors 0" in result.output
    meta = read_metadata(pq.read_schema(next(out.glob("images.*.parquet"))))
    assert meta["model"] == "bev" and meta["root_align"] is True
    frame = pd.read_parquet(out)
    assert len(frame) > 0 and frame["smpl_betas"].map(len).eq(11).all()
    wrong = runner.invoke(app, ["infer", str(images), *common, "--model", "romp", "--output", str(tmp_path / "w"),
                                "--no-ray"])
    assert wrong.exit_code == 2 and "holds a bev model" in wrong.output


def test_bad_checkpoint_is_named(tmp_path, images, checkpoints, body_model_dir):
    wrong = tmp_path / "ROMP.pkl"
    shutil.copy(checkpoints["bev"], wrong)
    result = runner.invoke(app, ["infer", str(images), "--model", "romp", "--checkpoint", str(wrong),
                                 "--body-models", str(body_model_dir), "--output", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert f"{wrong}: this looks like a BEV checkpoint, not ROMP: use --model bev" in result.output


def test_missing_inputs_and_body_models(tmp_path, checkpoints, body_model_dir):
    result = runner.invoke(app, ["infer", str(tmp_path / "none.jpg"), "--checkpoint", str(checkpoints["romp"]),
                                 "--body-models", str(tmp_path), "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "SMPL_NEUTRAL.pkl" in result.output
    result = runner.invoke(app, ["infer", "x.jpg", "--checkpoint", str(tmp_path / "absent.pkl"),
                                 "--body-models", str(body_model_dir)])
    assert result.exit_code == 2 and "checkpoint" in result.output
