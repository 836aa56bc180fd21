"""`meshfleet body-model build-open` and `--body-models open` where users meet them: the CLI."""

import os

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from core.open_body_model import FILES, SHIPPED_DIR
from jobs.cli import app
from jobs.synthetic import draw_scene
from pipelines.schema import read_metadata

runner = CliRunner()


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("open_images")
    cv2.imwrite(str(root / "people.jpg"), draw_scene(120, 160, 2, seed=7))
    return root


def _infer(*args: str):
    return runner.invoke(app, ["infer", *args, "--device", "cpu", "--no-ray"])


def test_build_open_reproduces_the_shipped_set_byte_for_byte(tmp_path_factory):
    """Needs anny (the `test` extra). Its first model build is anny's own: ~80 s and 790 MB of cache
    (reused from $ANNY_CACHE_DIR when set); meshfleet's part takes ~20 s of CPU."""
    pytest.importorskip("anny")
    cache = os.environ.get("ANNY_CACHE_DIR") or str(tmp_path_factory.mktemp("anny_cache"))
    out = tmp_path_factory.mktemp("open_model")
    result = runner.invoke(app, ["body-model", "build-open", "--output", str(out), "--anny-cache", cache])
    assert result.exit_code == 0, result.output
    assert "held-out error" in result.output
    for name in FILES:
        assert (out / name).read_bytes() == (SHIPPED_DIR / name).read_bytes(), name
    again = runner.invoke(app, ["body-model", "build-open", "--output", str(out), "--anny-cache", cache])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_infer_with_the_open_model_records_the_set_and_refuses_to_mix(tmp_path, image_dir, checkpoints,
                                                                       body_model_dir):
    out = tmp_path / "res"
    result = _infer(str(image_dir), "--checkpoint", str(checkpoints["romp"]), "--body-models", "open",
                    "--output", str(out), "--save-verts", "--center-thresh", "0.2")
    assert result.exit_code == 0, result.output
    meta = read_metadata(pq.read_schema(next(out.glob("*.parquet"))))
    assert meta["body_model_set"] == "open-1"
    rows = pd.read_parquet(out)
    assert len(rows) > 0 and rows["verts"].map(len).eq(13718).all()
    again = _infer(str(image_dir), "--checkpoint", str(checkpoints["romp"]), "--body-models", str(body_model_dir),
                   "--output", str(out), "--save-verts", "--center-thresh", "0.2")
    assert again.exit_code == 2 and "body_model_set" in again.output and "--overwrite" in again.output


def test_official_files_are_recorded_as_smpl(tmp_path, image_dir, checkpoints, body_model_dir):
    out = tmp_path / "res"
    result = _infer(str(image_dir), "--checkpoint", str(checkpoints["romp"]), "--body-models", str(body_model_dir),
                    "--output", str(out), "--save-verts", "--center-thresh", "0.2")
    assert result.exit_code == 0, result.output
    assert read_metadata(pq.read_schema(next(out.glob("*.parquet"))))["body_model_set"] == "smpl"
    assert pd.read_parquet(out)["verts"].map(len).eq(6890).all()


def test_bev_runs_on_the_open_model(tmp_path, image_dir, checkpoints):
    out = tmp_path / "bev"
    result = _infer(str(image_dir), "--model", "bev", "--checkpoint", str(checkpoints["bev"]), "--body-models", "open",
                    "--output", str(out))
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out)
    assert read_metadata(pq.read_schema(next(out.glob("*.parquet"))))["body_model_set"] == "open-1"
    assert len(rows) > 0 and rows["smpl_betas"].map(len).eq(11).all()
    assert np.isfinite(np.stack(rows["joints"].map(np.stack))).all()


def test_open_model_is_neutral_only(tmp_path, image_dir, checkpoints):
    result = _infer(str(image_dir), "--checkpoint", str(checkpoints["romp"]), "--body-models", "open",
                    "--gender", "female", "--output", str(tmp_path / "o"))
    assert result.exit_code == 2 and "gender" in result.output
