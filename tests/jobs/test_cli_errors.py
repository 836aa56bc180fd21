"""Every user error: exit 2 and one line on stderr naming the input, no traceback, before Ray starts
(and, for what can be checked without it, before any model is loaded)."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import cv2
import pytest
import torch
from typer.testing import CliRunner

import jobs.infer
import pipelines.inference
from jobs.cli import app
from jobs.synthetic import draw_scene

runner = CliRunner()


class Exploit:
    def __reduce__(self):
        return os.system, ("echo pwned",)


@pytest.fixture(scope="module")
def files(tmp_path_factory, checkpoints, body_model_dir) -> dict[str, str]:
    """The good and bad inputs the cases name, by key (``{key}`` in a case's arguments)."""
    root = tmp_path_factory.mktemp("cli_errors")
    (root / "images").mkdir()
    cv2.imwrite(str(root / "images" / "a.jpg"), draw_scene(64, 80, 1, seed=3))
    (root / "afile").write_text("not a folder")
    (root / "notes.txt").write_text("Notes on the corpus.\nThe images were taken in 2024.\n")
    (root / "report.doc").write_text("x")
    (root / "garbage.pkl").write_text("not a checkpoint")
    shutil.copy(checkpoints["bev"], root / "ROMP.pkl")  # a BEV checkpoint under ROMP's name
    (root / "no_smpl").mkdir()
    unsafe = root / "unsafe_models"
    shutil.copytree(body_model_dir, unsafe)
    (unsafe / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps(Exploit()))
    (root / "data").mkdir()
    names = {"romp": str(checkpoints["romp"]), "bev": str(checkpoints["bev"]), "models": str(body_model_dir),
             "wrong_ckpt": str(root / "ROMP.pkl")}
    return {**names, **{p.name: str(p) for p in root.iterdir()}, "root": str(root)}


@pytest.fixture(autouse=True)
def no_expensive_start(monkeypatch):
    """Starting Ray fails the test: every case must be refused before."""

    def ray_started(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(jobs.infer, "ensure_ray", ray_started)


INFER = ["infer", "{images}", "--checkpoint", "{romp}", "--body-models", "{models}", "--output", "{root}/out",
         "--device", "cpu"]

# (id, arguments, exit code, text the one line must hold, True if refused before any model is loaded)
CASES = [
    ("input folder missing", ["infer", "{root}/nowhere", *INFER[2:]], 2, "{root}/nowhere: does not exist", False),
    ("prose txt", ["infer", "{notes.txt}", *INFER[2:]], 2, "notes.txt: not a manifest", False),
    ("manifest missing", ["infer", "{root}/list.txt", *INFER[2:]], 2, "list.txt: does not exist", False),
    ("unknown extension", ["infer", "{report.doc}", *INFER[2:]], 2, "report.doc: not an image, video or manifest",
     False),
    ("no inputs", INFER[:1] + INFER[2:], 2, "inputs: give at least one", True),
    ("output under a file", [*INFER, "--output", "{afile}/sub"], 2, "cannot create {afile}/sub: {afile} is a file",
     True),
    ("output is a file", [*INFER, "--output", "{afile}"], 2, "output: {afile} exists and is not a directory", True),
    ("center 5", [*INFER, "--center-thresh", "5"], 2, "center_thresh must be in [0, 1], not 5.0", True),
    ("center -1", [*INFER, "--center-thresh", "-1"], 2, "center_thresh must be in [0, 1], not -1.0", True),
    ("center nan", [*INFER, "--center-thresh", "nan"], 2, "center_thresh must be in [0, 1], not nan", True),
    ("center inf", [*INFER, "--center-thresh", "inf"], 2, "center_thresh must be in [0, 1], not inf", True),
    ("center text", [*INFER, "--center-thresh", "high"], 2, "Invalid value for '--center-thresh'", True),
    ("nms -1", [*INFER, "--nms-thresh", "-1"], 2, "nms_thresh must be >= 0", True),
    ("scale inf", [*INFER, "--relative-scale-thresh", "inf"], 2, "relative_scale_thresh must be >= 0", True),
    ("overlap 1", [*INFER, "--overlap-ratio", "1"], 2, "overlap_ratio must be in [0, 1), not 1.0", True),
    ("batch 0", [*INFER, "--batch-size", "0"], 2, "batch_size must be >= 1", True),
    ("device name", [*INFER, "--device", "gpu"], 2, "device must be auto, cpu, cuda or cuda:N, not 'gpu'", True),
    ("device cuda", [*INFER, "--device", "cuda"], 2, "device: cuda requested but CUDA is not available", True),
    ("precision on cpu", [*INFER, "--precision", "bf16"], 2, "precision: bf16 needs a CUDA device", True),
    ("model name", [*INFER, "--model", "hmr"], 2, "model: must be one of ('romp', 'bev'), not 'hmr'", True),
    ("gender", [*INFER, "--gender", "other"], 2, "gender: must be neutral, male or female", True),
    ("checkpoint missing", [*INFER, "--checkpoint", "{root}/none.pkl"], 2, "checkpoint: {root}/none.pkl not found",
     True),
    ("body models missing", [*INFER, "--body-models", "{root}/none"], 2, "body_models: {root}/none does not exist",
     True),
    ("body models a file", [*INFER, "--body-models", "{afile}"], 2, "body_models: {afile} is a file", True),
    ("body model files missing", [*INFER, "--body-models", "{no_smpl}"], 2, "{no_smpl}/SMPL_NEUTRAL.pkl", True),
    ("track thresholds", [*INFER, "--track", "--track-low-thresh", "0.5"], 2,
     "track_low_thresh must be in [0, 0.12], not 0.5", True),
    ("unknown option", [*INFER, "--centre-thresh", "0.2"], 2, "No such option: --centre-thresh", True),
    ("wrong checkpoint", [*INFER, "--checkpoint", "{wrong_ckpt}"], 2,
     "{wrong_ckpt}: this looks like a BEV checkpoint, not ROMP: use --model bev", False),
    ("garbage checkpoint", [*INFER, "--checkpoint", "{garbage.pkl}"], 2,
     "{garbage.pkl}: not a readable PyTorch checkpoint", False),
    ("unsafe body model pickle", [*INFER, "--body-models", "{unsafe_models}"], 2,
     "{unsafe_models}/SMPL_NEUTRAL.pkl", False),
    ("track alias range", ["track", "{images}", "--output", "{root}/t", "--det-thresh", "2"], 2,
     "track_det_thresh must be in [0, 1], not 2.0", True),
    ("track no results", ["track", "{root}/none", "--output", "{root}/t"], 2, "{root}/none: no results files", True),
    ("rh without annots", ["eval", "relative-human", "--predictions", "{images}"], 2,
     "--annots: required by eval relative-human", True),
    ("agora without data", ["eval", "agora", "--predictions", "{images}"], 2, "--data: required by eval agora", True),
    ("3dpw without body models", ["eval", "3dpw", "--predictions", "{images}", "--data", "{data}"], 2,
     "--body-models: required by eval 3dpw", True),
    ("cmu data missing", ["eval", "cmu-panoptic", "--predictions", "{images}", "--data", "{root}/none"], 2,
     "--data: {root}/none does not exist", True),
    ("cmu predictions missing", ["eval", "cmu-panoptic", "--predictions", "{root}/none", "--data", "{data}"], 2,
     "--predictions: {root}/none does not exist", True),
    ("cmu no predictions", ["eval", "cmu-panoptic", "--data", "{data}"], 2, "--predictions: required", True),
    ("cmu takes no annots", ["eval", "cmu-panoptic", "--annots", "{notes.txt}"], 2, "No such option: --annots", True),
    ("eval protocol", ["eval", "cmu-panoptic", "--predictions", "{images}", "--data", "{data}", "--protocol",
                       "strict"], 2, "protocol must be one of ('official', 'fixed'), not 'strict'", True),
    ("eval infer threshold", ["eval", "cmu-panoptic", "--data", "{data}", "--checkpoint", "{romp}",
                              "--body-models", "{models}", "--center-thresh", "5"], 2, "center_thresh must be in",
     True),
    ("eval infer checkpoint", ["eval", "cmu-panoptic", "--data", "{data}", "--checkpoint", "{root}/none.pth",
                               "--body-models", "{models}"], 2, "checkpoint: {root}/none.pth not found", True),
    ("tracking without gt", ["eval", "tracking", "{images}"], 2, "give RESULTS and --gt", True),
    ("tracking iou", ["eval", "tracking", "{images}", "--gt", "{data}", "--iou", "1.5"], 2, "iou must be in (0, 1]",
     True),
    ("leaderboard store missing", ["leaderboard", "--output", "{root}/board", "--mlflow-uri",
                                   "sqlite:///{root}/none.db"], 2, "{root}/none.db does not exist", True),
    ("run spec missing", ["run", "{root}/none.yaml"], 2, "{root}/none.yaml: cannot read", True),
    ("run spec kind", ["run", "{notes.txt}"], 2, "expected a mapping with 'kind'", True),
    ("export missing", ["export", "mot", "{root}/none", "--output", "{root}/mot"], 2, "{root}/none: no results files",
     True),
]


def _fill(text: str, files: dict[str, str]) -> str:
    for key, value in files.items():
        text = text.replace("{" + key + "}", value)
    return text


@pytest.mark.parametrize("args,code,message,before_model", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_error_is_one_line_naming_the_input(args, code, message, before_model, files, monkeypatch):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if before_model:
        def model_loaded(*_):
            raise AssertionError("a model was loaded")

        monkeypatch.setattr(pipelines.inference.ModelSpec, "build", model_loaded)
    result = runner.invoke(app, [_fill(a, files) for a in args])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith(("error: ", "warning: ")), result.stderr
    assert _fill(message, files) in lines[0]
    assert "Traceback" not in result.output


def test_verbose_adds_the_traceback(files):
    result = runner.invoke(app, [_fill(a, files) for a in [*INFER, "--checkpoint", "{wrong_ckpt}", "-v"]])
    assert result.exit_code == 2 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_reading_a_missing_store_creates_nothing(files):
    runner.invoke(app, ["leaderboard", "--output", f"{files['root']}/board", "--mlflow-uri",
                        f"sqlite:///{files['root']}/none.db"])
    assert not Path(files["root"], "none.db").exists() and not Path(files["root"], "board").exists()


def test_help_reads_at_80_columns_without_type_tags(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    commands = [[], ["infer"], ["track"], ["leaderboard"], ["run"], ["submit"], ["demo"], ["export", "mot"],
                ["jobs", "list"], ["eval"], ["eval", "tracking"], ["eval", "agora"], ["eval", "relative-human"],
                ["eval", "cmu-panoptic"], ["eval", "3dpw"]]
    for command in commands:
        result = runner.invoke(app, [*command, "-h"])
        assert result.exit_code == 0, (command, result.output)
        assert max(len(line) for line in result.output.splitlines()) <= 80, command
        assert "<bool>" not in result.output and "<str>" not in result.output, command
    agora = runner.invoke(app, ["eval", "agora", "-h"]).output
    assert "--annots" not in agora and "--data TEXT" in agora and "[required]" in agora
    assert "--annots" in runner.invoke(app, ["eval", "relative-human", "-h"]).output
    assert "--det-thresh FLOAT" not in runner.invoke(app, ["track", "-h"]).output  # old name: hidden alias
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("meshfleet ")
