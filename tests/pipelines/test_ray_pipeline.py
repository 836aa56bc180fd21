"""End-to-end: the Ray Data pipeline on a generated corpus, on local disk and on S3 (moto)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
import s3fs

from core.predictor import Predictor
from core.settings import PredictorSettings
from jobs.config import InferConfig
from jobs.infer import run_infer
from jobs.synthetic import draw_scene, write_video
from pipelines.jobstate import JobMismatchError
from pipelines.schema import column_array

ARRAYS = ("cam", "cam_trans", "smpl_thetas", "smpl_betas", "joints", "pj2d_org")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray_corpus")
    cv2.imwrite(str(root / "a_wide.jpg"), draw_scene(90, 160, 2, seed=11))
    cv2.imwrite(str(root / "b_tall.png"), draw_scene(150, 80, 1, seed=12))
    cv2.imwrite(str(root / "c_square.jpg"), draw_scene(100, 100, 2, seed=13))
    (root / "d_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    write_video(root / "e_clip.mp4", [draw_scene(72, 96, 2, seed=20 + i) for i in range(5)], fps=10)
    write_video(root / "f_clip.avi", [draw_scene(64, 64, 1, seed=30 + i) for i in range(3)], fps=5)
    whole = (root / "e_clip.mp4").read_bytes()
    (root / "g_truncated.mp4").write_bytes(whole[: len(whole) * 2 // 3])
    return root


@pytest.fixture(scope="module")
def s3_corpus(s3_server, corpus) -> str:
    fs = s3fs.S3FileSystem()
    fs.mkdir("meshfleet-test")
    for path in sorted(corpus.iterdir()):
        fs.pipe_file(f"meshfleet-test/corpus/{path.name}", path.read_bytes())
    return "s3://meshfleet-test/corpus"


def _cfg(inputs, output, checkpoints, body_model_dir, **kw) -> InferConfig:
    settings = PredictorSettings(device="cpu", center_thresh=kw.pop("center_thresh", None))
    return InferConfig(inputs=tuple(inputs), model="romp", checkpoint=str(checkpoints["romp"]),
                       body_models=str(body_model_dir), output=str(output), settings=settings,
                       images_per_unit=kw.pop("images_per_unit", 2), frames_per_chunk=kw.pop("chunk", 2),
                       use_ray=kw.pop("use_ray", True), **kw)


def _read(output: str) -> pa.Table:
    if output.startswith("s3://"):
        endpoint = os.environ["AWS_ENDPOINT_URL"].removeprefix("http://")
        fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", access_key="testing",
                               secret_key="testing", region="us-east-1")
        table = ds.dataset(output.removeprefix("s3://"), filesystem=fs, format="parquet").to_table()
    else:
        table = ds.dataset(output, format="parquet").to_table()
    keys = [("source", "ascending"), ("frame", "ascending"), ("person", "ascending")]
    return table.sort_by(keys)


def _good(table: pa.Table) -> pa.Table:
    return table.filter(table.column("error").is_null())


def _names(table: pa.Table, column="source") -> list[str]:
    return [s.rsplit("/", 1)[-1] for s in table.column(column).to_pylist()]


@pytest.fixture(scope="module")
def expected(corpus, romp_net, body_models):
    """Direct Predictor output for every decodable frame, as (source name, frame) -> Predictions."""
    predictor = Predictor(romp_net, body_models, PredictorSettings(device="cpu"))
    out = {}
    for name in ("a_wide.jpg", "b_tall.png", "c_square.jpg"):
        out[(name, 0)] = predictor.predict([cv2.imread(str(corpus / name))])
    for name in ("e_clip.mp4", "f_clip.avi"):
        cap = cv2.VideoCapture(str(corpus / name))
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            out[(name, index)] = predictor.predict([frame])
            index += 1
    return out


@pytest.fixture(scope="module")
def local_run(ray_local, corpus, checkpoints, body_model_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("ray_out") / "results"
    summary = run_infer(_cfg([str(corpus)], output, checkpoints, body_model_dir))
    return summary, str(output)


def _assert_matches_predictor(table: pa.Table, expected: dict) -> None:
    good = _good(table)
    keys = list(zip(_names(good), good.column("frame").to_pylist(), strict=True))
    assert sorted(set(keys)) == sorted(k for k, v in expected.items() if len(v))
    for key, pred in expected.items():
        rows = good.filter(pa.compute.equal(pa.array([f"{k[0]}#{k[1]}" for k in keys]), f"{key[0]}#{key[1]}"))
        assert rows.num_rows == len(pred), key
        assert rows.column("person").to_pylist() == list(range(len(pred)))
        for name in ARRAYS:
            np.testing.assert_allclose(column_array(rows, name), getattr(pred, name), atol=1e-5, err_msg=name)


def test_ray_output_equals_predictor(local_run, expected):
    summary, output = local_run
    table = _read(output)
    _assert_matches_predictor(table, expected)
    assert summary.persons == _good(table).num_rows
    assert summary.frames == 3 + 1 + 5 + 3 + summary.errors - 1  # images + corrupt + videos + truncated part


def test_error_rows_for_bad_inputs(local_run):
    summary, output = local_run
    table = _read(output)
    errors = table.filter(table.column("error").is_valid())
    by_source = dict(zip(_names(errors), errors.column("error").to_pylist(), strict=True))
    assert "d_corrupt.jpg" in by_source and "cannot decode image" in by_source["d_corrupt.jpg"]
    assert "g_truncated.mp4" in by_source and "g_truncated.mp4" in by_source["g_truncated.mp4"]
    assert summary.errors == errors.num_rows >= 2


def test_s3_run_equals_local(ray_local, s3_corpus, local_run, checkpoints, body_model_dir):
    output = "s3://meshfleet-test/results"
    summary = run_infer(_cfg([s3_corpus], output, checkpoints, body_model_dir))
    s3, local = _good(_read(output)), _good(_read(local_run[1]))
    assert _names(s3) == _names(local) and s3.column("frame").to_pylist() == local.column("frame").to_pylist()
    assert all(s.startswith("s3://meshfleet-test/corpus/") for s in s3.column("source").to_pylist())
    for name in ARRAYS:
        np.testing.assert_allclose(column_array(s3, name), column_array(local, name), atol=1e-5)
    assert summary.errors == local_run[0].errors
    fs = s3fs.S3FileSystem()
    assert fs.exists("meshfleet-test/results/_meshfleet_job.json")


def test_chunked_video_equals_unchunked(ray_local, corpus, checkpoints, body_model_dir, tmp_path, local_run):
    video = str(corpus / "e_clip.mp4")
    run_infer(_cfg([video], tmp_path / "whole", checkpoints, body_model_dir, chunk=100))
    whole, chunked = _read(str(tmp_path / "whole")), _good(_read(local_run[1]))
    chunked = chunked.filter(pa.compute.ends_with(chunked.column("source"), "e_clip.mp4"))
    assert len(list((tmp_path / "whole").glob("*.parquet"))) == 1 and whole.num_rows > 0
    assert whole.column("frame").to_pylist() == chunked.column("frame").to_pylist()
    for name in ARRAYS:
        np.testing.assert_allclose(column_array(whole, name), column_array(chunked, name), atol=1e-6)
    assert whole.column("timestamp").to_pylist()[-1] == pytest.approx(0.4)


def test_rerun_skips_everything_and_mismatch_is_refused(ray_local, corpus, checkpoints, body_model_dir, local_run):
    before = _read(local_run[1])
    summary = run_infer(_cfg([str(corpus)], local_run[1], checkpoints, body_model_dir))
    assert summary.skipped_units == summary.units and summary.frames == 0
    assert _read(local_run[1]).equals(before)
    with pytest.raises(JobMismatchError, match="different job.*center"):
        run_infer(_cfg([str(corpus)], local_run[1], checkpoints, body_model_dir, center_thresh=0.26))
    fewer = run_infer(_cfg([str(corpus / "a_wide.jpg")], local_run[1], checkpoints, body_model_dir))
    assert fewer.frames == 0 and fewer.removed == len(list(corpus.iterdir())) - 1  # not a different job
    assert _read(local_run[1]).equals(before)  # the rows of inputs no longer given stay


def test_killed_run_resumes_without_loss_or_duplicates(corpus, checkpoints, body_model_dir, tmp_path, local_run,
                                                       ray_local):
    output = tmp_path / "killed"
    command = [sys.executable, "-m", "jobs.cli", "infer", str(corpus), "--checkpoint", str(checkpoints["romp"]),
               "--body-models", str(body_model_dir), "--output", str(output), "--device", "cpu",
               "--images-per-unit", "1", "--chunk-frames", "1"]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2])
    deadline = time.time() + 600  # model load and start-up on a loaded 2-core machine
    while time.time() < deadline and len(list(output.glob("*.parquet"))) < 3 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _wait_until_gone(proc.pid)  # a process of the group still running could commit one more file
    done_before = len(list(output.glob("*.parquet")))
    assert 0 < done_before, proc.stderr.read().decode() if proc.stderr else ""
    summary = run_infer(_cfg([str(corpus)], output, checkpoints, body_model_dir, images_per_unit=1, chunk=1))
    assert summary.skipped_units == done_before < summary.units
    final = _read(str(output))
    reference = _read(local_run[1])
    key = lambda t: list(zip(_names(t), t.column("frame").to_pylist(), t.column("person").to_pylist(),  # noqa: E731
                             strict=True))
    assert len(set(key(_good(final)))) == _good(final).num_rows  # no duplicates
    assert key(_good(final)) == key(_good(reference))  # nothing lost
    np.testing.assert_allclose(column_array(_good(final), "joints"), column_array(_good(reference), "joints"),
                               atol=1e-5)
    assert not list(output.glob(".*.tmp"))


def _wait_until_gone(group: int, timeout_s: float = 60.0) -> None:
    """Block until no live process of process group ``group`` is left (SIGKILL is delivered
    asynchronously; zombies, which write nothing, do not count)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if not any(_live_in_group(stat, group) for stat in Path("/proc").glob("[0-9]*/stat")):
            return
        time.sleep(0.05)
    raise AssertionError(f"process group {group} still alive {timeout_s:.0f} s after SIGKILL")


def _live_in_group(stat: Path, group: int) -> bool:
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
    except OSError:  # the process ended meanwhile
        return False
    return int(fields[2]) == group and fields[0] != "Z"


def test_attach_to_a_running_cluster(corpus, checkpoints, body_model_dir, tmp_path, local_run):
    """``--address``: a Ray head started with ``ray start`` on loopback, in its own process group."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ray_bin = Path(sys.executable).with_name("ray")
    log = (tmp_path / "head.log").open("w")
    head = subprocess.Popen([str(ray_bin), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                            start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert head.wait(timeout=120) == 0, (tmp_path / "head.log").read_text()
        output = tmp_path / "attached"
        result = subprocess.run(
            [sys.executable, "-m", "jobs.cli", "infer", str(corpus / "a_wide.jpg"), str(corpus / "e_clip.mp4"),
             "--checkpoint", str(checkpoints["romp"]), "--body-models", str(body_model_dir), "--output", str(output),
             "--device", "cpu", "--address", f"127.0.0.1:{port}", "--images-per-unit", "2", "--chunk-frames", "2"],
            capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
        assert result.returncode == 0, result.stderr[-3000:]
        assert "frames 6" in result.stdout
        attached = _good(_read(str(output)))
        reference = _good(_read(local_run[1]))
        reference = reference.filter(pa.compute.is_in(reference.column("source"), attached.column("source").unique()))
        assert attached.num_rows == reference.num_rows > 0
        np.testing.assert_allclose(column_array(attached, "joints"), column_array(reference, "joints"), atol=1e-5)
    finally:
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
