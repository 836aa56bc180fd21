"""Storage guarantees: durable atomic commits, a model cache keyed by content, the job's weights only."""

import os

import pytest
import s3fs

from core.checkpoints import CheckpointError
from core.settings import PredictorSettings
from pipelines.inference import ModelSpec
from pipelines.storage import localize, write_bytes_atomic


def test_local_commit_is_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_bytes_atomic(str(tmp_path / "unit.parquet"), b"rows")
    assert events == [("fsync", "file"), ("rename", "unit.parquet"), ("fsync", "dir")]
    assert (tmp_path / "unit.parquet").read_bytes() == b"rows" and os.listdir(tmp_path) == ["unit.parquet"]


def test_model_cache_follows_the_objects_content(s3_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MESHFLEET_CACHE", str(tmp_path / "cache"))
    fs = s3fs.S3FileSystem()
    fs.mkdir("cache-test")
    fs.pipe_file("cache-test/models/ROMP.pkl", b"first weights")
    fs.pipe_file("cache-test/models/smpl/SMPL_NEUTRAL.pkl", b"body")
    first = localize("s3://cache-test/models/ROMP.pkl")
    assert open(first, "rb").read() == b"first weights"
    assert localize("s3://cache-test/models/ROMP.pkl") == first  # cached
    body = localize("s3://cache-test/models/smpl/", directory=True)
    fs.pipe_file("cache-test/models/ROMP.pkl", b"replaced weights")
    fs.pipe_file("cache-test/models/smpl/SMPL_NEUTRAL.pkl", b"new body")
    second = localize("s3://cache-test/models/ROMP.pkl")
    assert second != first and open(second, "rb").read() == b"replaced weights"
    assert open(os.path.join(localize("s3://cache-test/models/smpl/", directory=True), "SMPL_NEUTRAL.pkl"),
                "rb").read() == b"new body"
    assert open(os.path.join(body, "SMPL_NEUTRAL.pkl"), "rb").read() == b"body"  # the old copy, untouched


def test_a_worker_refuses_weights_other_than_the_jobs(checkpoints, body_model_dir):
    spec = ModelSpec("romp", str(checkpoints["romp"]), str(body_model_dir), "neutral",
                     PredictorSettings(device="cpu"), checkpoint_sha256="0" * 64)
    with pytest.raises(CheckpointError, match="differs from the job's"):
        spec.build()
