"""``meshfleet submit`` / ``meshfleet jobs`` against a real Ray head on loopback (Ray Jobs API)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pyarrow.dataset as ds
import pytest
import yaml
from typer.testing import CliRunner

from jobs.cli import app
from jobs.synthetic import draw_scene, write_video

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A Ray head with its dashboard / job server on 127.0.0.1, in its own process group."""
    log_dir = tmp_path_factory.mktemp("head")
    dashboard = _port()
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={_port()}",
               "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
               "--include-dashboard=true", f"--ray-client-server-port={_port()}",
               f"--dashboard-agent-listen-port={_port()}", f"--dashboard-agent-grpc-port={_port()}",
               f"--runtime-env-agent-port={_port()}", "--num-cpus=2", "--disable-usage-stats"]
    # Job drivers run `python -m jobs.cli`; on a cluster that is the image's python, here the venv's.
    env = {**os.environ, "RAY_ADDRESS": "", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with (log_dir / "head.log").open("w") as log:
        proc = subprocess.Popen(command, start_new_session=True, stdout=log, stderr=subprocess.STDOUT, env=env)
        assert proc.wait(timeout=180) == 0, (log_dir / "head.log").read_text()[-3000:]
    yield f"http://127.0.0.1:{dashboard}"
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("submit_corpus")
    cv2.imwrite(str(root / "a.jpg"), draw_scene(120, 160, 2, seed=1))
    write_video(root / "long.mp4", [draw_scene(96, 128, 2, seed=i) for i in range(60)])
    return root


def _spec(tmp_path, corpus_input, checkpoints, body_model_dir, output, chunk=4) -> Path:
    spec = {"kind": "infer", "infer": {
        "inputs": [str(corpus_input)], "model": "romp", "checkpoint": str(checkpoints["romp"]),
        "body_models": str(body_model_dir), "output": str(output), "frames_per_chunk": chunk,
        "settings": {"device": "cpu"}}}
    path = tmp_path / f"{output.name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_submit_follows_an_infer_job_to_success(head, corpus, checkpoints, body_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/secret-path/mlflow.db")
    output = tmp_path / "out"
    spec = _spec(tmp_path, corpus / "a.jpg", checkpoints, body_model_dir, output)
    result = runner.invoke(app, ["submit", str(spec), "--address", head, "--follow"])
    assert result.exit_code == 0, result.output
    assert "SUCCEEDED" in result.output and "frames 1" in result.output
    assert "MLFLOW_TRACKING_URI" in result.output and "secret-path" not in result.output  # name only, no value
    table = ds.dataset(str(output), format="parquet").to_table()
    assert table.num_rows > 0 and table.column("error").null_count == table.num_rows
    listed = runner.invoke(app, ["jobs", "list", "--address", head])
    assert listed.exit_code == 0 and "SUCCEEDED" in listed.output and "infer" in listed.output


def test_stop_a_running_job(head, corpus, checkpoints, body_model_dir, tmp_path):
    spec = _spec(tmp_path, corpus / "long.mp4", checkpoints, body_model_dir, tmp_path / "long", chunk=2)
    result = runner.invoke(app, ["submit", str(spec), "--address", head, "--no-check"])
    assert result.exit_code == 0, result.output
    job_id = result.output.split("job ")[1].split()[0]
    deadline = time.time() + 120
    while time.time() < deadline:
        status = runner.invoke(app, ["jobs", "status", job_id, "--address", head]).output
        if "RUNNING" in status:
            break
        time.sleep(1)
    stopped = runner.invoke(app, ["jobs", "stop", job_id, "--address", head])
    assert stopped.exit_code == 0 and "STOPPED" in stopped.output, stopped.output
    status = runner.invoke(app, ["jobs", "status", job_id, "--address", head])
    assert "STOPPED" in status.output


def test_a_failing_job_reports_its_error(head, corpus, checkpoints, body_model_dir, tmp_path):
    missing = dict(checkpoints)
    missing["romp"] = tmp_path / "nowhere" / "ROMP.pkl"
    spec = _spec(tmp_path, corpus / "a.jpg", missing, body_model_dir, tmp_path / "fail")
    result = runner.invoke(app, ["submit", str(spec), "--address", head, "--follow", "--no-check"])
    assert result.exit_code == 1
    assert "FAILED" in result.output and "nowhere/ROMP.pkl not found" in result.output
    job_id = result.output.split("job ")[1].split()[0]
    logs = runner.invoke(app, ["jobs", "logs", job_id, "--address", head])
    assert "nowhere/ROMP.pkl not found" in logs.output


def test_submit_refuses_a_cluster_python_without_meshfleet(head, corpus, checkpoints, body_model_dir, tmp_path,
                                                           monkeypatch):
    """The job's `python` (here: the head's, its site-packages cut off, as a bare system Python) cannot
    import meshfleet's dependencies: nothing is queued and the message says what to install where."""
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    (bare / "python").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bare}{os.pathsep}{os.environ['PATH']}")
    before = runner.invoke(app, ["jobs", "list", "--address", head]).output.count("\n")
    spec = _spec(tmp_path, corpus / "a.jpg", checkpoints, body_model_dir, tmp_path / "never")
    result = runner.invoke(app, ["submit", str(spec), "--address", head, "--env", "PATH"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in result.output
    assert f"the cluster's python ({sys.executable})" in line and "cannot import" in line
    assert "pip install" in line and "ray start --head" in line and "Nothing was queued" in line
    assert runner.invoke(app, ["jobs", "list", "--address", head]).output.count("\n") == before
    assert not (tmp_path / "never").exists()
