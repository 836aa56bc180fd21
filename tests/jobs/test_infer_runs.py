"""``meshfleet infer`` as people run it unattended: progress in a log file, no Ray noise, exit codes,
interrupts (Ctrl-C / SIGTERM) and resuming, through the real command in its own process."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.synthetic import draw_scene, write_video
from pipelines.results import read_results
from pipelines.schema import column_array

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("INFO", "WARNING", "streaming_executor", "Token authentication", "core_worker", "Progress bars",
         "SIGTERM received", "Traceback", "deprecated")
runner = CliRunner()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unattended")
    write_video(root / "walk.mp4", [draw_scene(48, 64, 2, seed=80 + i) for i in range(8)], fps=10)
    cv2.imwrite(str(root / "still.jpg"), draw_scene(48, 64, 1, seed=90))
    return root


def _command(inputs, out, checkpoints, body_model_dir, *extra) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", "infer", *map(str, inputs), "--checkpoint", str(checkpoints["romp"]),
            "--body-models", str(body_model_dir), "--output", str(out), "--device", "cpu", "--chunk-frames", "1",
            *extra]


def _rows(out: Path) -> tuple[list, np.ndarray]:
    table = read_results(str(out), ["source", "frame", "person", "joints"], good_only=True)
    table = table.sort_by([("source", "ascending"), ("frame", "ascending"), ("person", "ascending")])
    keys = list(zip(table.column("source").to_pylist(), table.column("frame").to_pylist(),
                    table.column("person").to_pylist(), strict=True))
    return keys, column_array(table, "joints")


@pytest.fixture(scope="module")
def reference(clip, checkpoints, body_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "out"
    result = runner.invoke(app, ["infer", str(clip), "--checkpoint", str(checkpoints["romp"]), "--body-models",
                                 str(body_model_dir), "--output", str(out), "--device", "cpu", "--no-ray"])
    assert result.exit_code == 0, result.output
    return _rows(out)


def test_progress_lines_in_a_log_file_and_no_ray_noise(clip, checkpoints, body_model_dir, tmp_path, reference):
    out, log = tmp_path / "out", tmp_path / "infer.log"
    with log.open("w") as sink:  # stdout and stderr to a file: not a terminal
        done = subprocess.run(_command([clip], out, checkpoints, body_model_dir, "--ray"), stdout=sink,
                              stderr=subprocess.STDOUT,
                              cwd=ROOT, env={**os.environ, "MESHFLEET_PROGRESS_INTERVAL": "1"}, timeout=900)
    text = log.read_text()
    assert done.returncode == 0, text
    for step in ("planning 1 input...", "starting Ray", "loading the model", "9 units to run", "waiting for Ray"):
        assert step in text, step
    counts = [(int(a), int(b)) for a, b in re.findall(r"^progress: (\d+)/(\d+) frames", text, re.M)]
    assert len(counts) >= 2 and counts[-1] == (9, 9) and all(b == 9 for _, b in counts)
    assert [a for a, _ in counts] == sorted(a for a, _ in counts)
    assert [n for n in NOISE if n in text] == []
    assert _rows(out)[0] == reference[0]  # the Ray job's rows are the in-process run's
    np.testing.assert_allclose(_rows(out)[1], reference[1], atol=1e-5)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_says_how_to_resume_and_resumes(how, clip, checkpoints, body_model_dir, tmp_path,
                                                           reference):
    out = tmp_path / "out"
    extra = ("--no-ray",) if how == signal.SIGTERM else ("--ray",)  # Ctrl-C on the Ray job, SIGTERM in-process
    proc = subprocess.Popen(_command([clip], out, checkpoints, body_model_dir, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and len(list(out.glob("*.parquet"))) < 2 and proc.poll() is None:
        time.sleep(0.1)
    if how == signal.SIGINT:
        os.killpg(proc.pid, how)  # Ctrl-C: the whole process group (Ray's processes included)
    else:
        proc.send_signal(how)  # `kill PID`
    stdout, stderr = proc.communicate(timeout=300)
    done = len(list(out.glob("*.parquet")))
    assert proc.returncode == 130, stdout + stderr
    assert re.search(r"interrupted after \d+ of 9 units — rerun the same command to resume", stderr), stderr
    assert [n for n in NOISE if n in stderr] == [] and not list(out.glob(".*.tmp"))
    # units already in flight when the signal lands may still commit: on a fast machine that can be
    # all of them; what must hold is the exit code, the message, no partial file and a lossless rerun
    assert 2 <= done <= 9
    again = subprocess.run(_command([clip], out, checkpoints, body_model_dir, *extra), capture_output=True,
                           text=True, cwd=ROOT, timeout=900)
    assert again.returncode == 0, again.stderr
    assert f"({done} already done)" in again.stdout
    keys, joints = _rows(out)
    assert keys == reference[0]  # nothing lost, nothing twice
    np.testing.assert_allclose(joints, reference[1], atol=1e-5)


def test_exit_codes_and_the_failed_inputs(tmp_path, clip, checkpoints, body_model_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(12):
        (bad / f"broken{i:02d}.jpg").write_bytes(b"not a jpeg")
    args = ["--checkpoint", str(checkpoints["romp"]), "--body-models", str(body_model_dir), "--device", "cpu",
            "--no-ray"]
    every = runner.invoke(app, ["infer", str(bad), "--output", str(tmp_path / "o1"), *args])
    assert every.exit_code == 3, every.output
    assert "12 inputs failed (all of them)" in every.output and "broken09.jpg: cannot decode" in every.output
    assert "broken10.jpg" not in every.output  # ten named, then where the full list is
    listed = (tmp_path / "o1" / "_meshfleet_failed.tsv").read_text().splitlines()
    assert len(listed) == 12 and f"full list: {tmp_path / 'o1' / '_meshfleet_failed.tsv'}" in every.output
    some = runner.invoke(app, ["infer", str(bad / "broken00.jpg"), str(clip / "still.jpg"), "--output",
                               str(tmp_path / "o2"), *args])
    assert some.exit_code == 3 and "1 inputs failed:" in some.output, some.output
    good = runner.invoke(app, ["infer", str(clip / "still.jpg"), "--output", str(tmp_path / "o3"), *args])
    assert good.exit_code == 0 and "inputs failed" not in good.output, good.output
    usage = runner.invoke(app, ["infer", str(clip), "--output", str(clip / "out"), *args])
    assert usage.exit_code == 2 and "overlaps input" in usage.output
    assert "Exit codes" in runner.invoke(app, ["--help"]).output
