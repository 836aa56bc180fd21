"""`meshfleet demo`, reduced (CI): held-out scenes -> infer --track -> eval -> render -> leaderboard
with the shipped checkpoint, offline."""

from __future__ import annotations

import json
import os
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.config import SHIPPED

runner = CliRunner()


@pytest.fixture(scope="module")
def demo(tmp_path_factory, ray_local):
    workdir = tmp_path_factory.mktemp("demo") / "run"
    result = runner.invoke(app, ["demo", "--workdir", str(workdir), "--scenes", "3", "--frames", "8",
                                 "--device", "cpu"])
    return workdir, result


def test_the_shipped_checkpoint_is_small_and_records_what_it_is():
    from core.checkpoints import read_checkpoint

    path = SHIPPED["checkpoint"]["demo"]
    _, info = read_checkpoint(path)
    assert info is not None and info.network["model"] == "romp" and info.network["backbone"] == "small"
    assert info.body_model_set.startswith("open-")
    assert os.path.getsize(path) <= 25 * 2**20


def test_demo_runs_the_loop_and_prints_numbers(demo):
    workdir, result = demo
    assert result.exit_code == 0, result.output
    f1 = float(re.search(r"detection F1 \(AGORA protocol, held-out images\)\s+([0-9.]+)", result.output).group(1))
    idf1 = float(re.search(r"IDF1 \(tracking, held-out video\)\s+([0-9.]+)", result.output).group(1))
    assert 0.0 <= f1 <= 1.0 and 0.0 <= idf1 <= 1.0
    agora = json.loads((workdir / "eval" / "agora.json").read_text())
    assert agora["f1"] == pytest.approx(f1, abs=1e-3)
    images, video = pd.read_parquet(workdir / "results" / "images"), pd.read_parquet(workdir / "results" / "video")
    assert len(images) > 0 and images["error"].isna().all()
    assert video["source"].str.endswith(".mp4").all() and video["track_id"].notna().any()
    assert (workdir / "leaderboard" / "index.html").is_file()
    assert any((workdir / "renders").rglob("*.jpg")) and any((workdir / "renders").rglob("*.mp4"))


def test_a_rerun_reuses_what_is_done(demo):
    workdir, _ = demo
    again = runner.invoke(app, ["demo", "--workdir", str(workdir), "--scenes", "3", "--frames", "8", "--device", "cpu",
                                "--steps", "synth,infer"])
    assert again.exit_code == 0, again.output
    assert "made 0 scenes" in again.output and "frames 0" in again.output


def test_an_unknown_step_is_one_line_exit_2(tmp_path):
    result = runner.invoke(app, ["demo", "--workdir", str(tmp_path), "--steps", "synth,fly"])
    assert result.exit_code == 2 and "fly" in result.output and "Traceback" not in result.output
