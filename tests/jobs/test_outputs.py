"""Owned outputs, grown corpora and transient failures, as a user meets them on the command line."""

import json
import os
import shutil
from pathlib import Path

import cv2
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem
from typer.testing import CliRunner

from eval.leaderboard_job import LeaderboardJob, run_leaderboard
from eval.mlflow_log import log_run
from jobs.cli import app
from jobs.synthetic import draw_scene, write_video
from pipelines.jobstate import JOB_FILE, JobMismatchError
from pipelines.results import read_results, results_files
from pipelines.schema import column_array

runner = CliRunner()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for i, name in enumerate("abc"):
        cv2.imwrite(str(root / f"{name}.jpg"), draw_scene(72, 96, 2, seed=40 + i))
    return root


@pytest.fixture
def infer(checkpoints, body_model_dir):
    def run(inputs, out, *extra):
        args = ["infer", *map(str, inputs), "--checkpoint", str(checkpoints["romp"]), "--body-models",
                str(body_model_dir), "--output", str(out), "--device", "cpu", "--no-ray", *extra]
        return runner.invoke(app, args)

    return run


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_overwrite_removes_only_meshfleets_files(tmp_path, photos, infer):
    out = tmp_path / "out"
    assert infer([photos / "a.jpg"], out).exit_code == 0
    (out / "notes.txt").write_text("my notes")
    pq.write_table(pa.table({"x": [1, 2]}), out / "theirs.parquet")
    (out / "sub").mkdir()
    (out / "sub" / "keep.csv").write_text("a,b\n")
    foreign = snapshot(out)
    foreign = {k: v for k, v in foreign.items() if k in ("notes.txt", "theirs.parquet", "sub/keep.csv")}
    refused = infer([photos / "a.jpg"], out, "--center-thresh", "0.3")
    assert refused.exit_code == 2 and "different job" in refused.output and "--overwrite" in refused.output
    result = infer([photos / "a.jpg"], out, "--center-thresh", "0.3", "--overwrite")
    assert result.exit_code == 0, result.output
    assert {k: v for k, v in snapshot(out).items() if k in foreign} == foreign  # untouched, byte for byte
    ledger = json.loads((out / JOB_FILE).read_text())
    assert ledger["identity"]["thresholds"]["center"] == 0.3
    files = [f.rsplit("/", 1)[-1] for f in results_files(str(out))]  # what readers read: not theirs.parquet
    assert len(files) == 1 and files[0].startswith("images.")


def test_a_folder_of_other_files_is_never_claimed(tmp_path, photos, infer):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.pdf").write_bytes(b"%PDF")
    before = snapshot(out)
    for extra in ((), ("--overwrite",)):
        result = infer([photos / "a.jpg"], out, *extra)
        assert result.exit_code == 2 and "did not write" in result.output and "thesis.pdf" in result.output
    assert snapshot(out) == before


def test_output_overlapping_an_input_is_refused_before_any_work(tmp_path, photos, infer):
    corpus = tmp_path / "corpus"
    shutil.copytree(photos, corpus)
    before = snapshot(corpus)
    for inputs, out in (([corpus], corpus), ([corpus], corpus / "results"), ([corpus / "a.jpg"], corpus),
                        ([corpus / "*.jpg"], corpus / "out")):
        result = infer(inputs, out, "--overwrite")
        assert result.exit_code == 2, result.output
        assert "overlaps input" in result.output and "Traceback" not in result.output
    assert snapshot(corpus) == before


def test_grow_a_corpus(tmp_path, photos, infer):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in "ab":
        shutil.copy(photos / f"{name}.jpg", corpus)
    write_video(corpus / "clip.mp4", [draw_scene(48, 64, 1, seed=70 + i) for i in range(3)], fps=10)
    out = tmp_path / "out"
    first = infer([corpus], out, "--images-per-unit", "2", "--chunk-frames", "2")
    assert first.exit_code == 0 and "frames 5" in first.output, first.output
    shutil.copy(photos / "c.jpg", corpus)  # new
    cv2.imwrite(str(corpus / "b.jpg"), draw_scene(72, 96, 2, seed=99))  # changed content
    os.utime(corpus / "b.jpg", ns=(1, 10**18))
    (corpus / "clip.mp4").rename(tmp_path / "clip.mp4")  # no longer given
    second = infer([corpus], out, "--images-per-unit", "2", "--chunk-frames", "2")
    assert second.exit_code == 0, second.output
    assert "frames 2" in second.output  # only b (redone) and c (new)
    assert "1 new" in second.output and "1 changed" in second.output and "1 no longer given" in second.output
    fresh = tmp_path / "fresh"
    assert infer([corpus], fresh, "--images-per-unit", "2").exit_code == 0
    grown, expected = _rows(out), _rows(fresh)
    keys = list(zip(grown["name"], grown["frame"], grown["person"], strict=True))
    assert len(set(keys)) == len(keys)  # nothing twice
    assert sorted(n for n in set(grown["name"]) if n.endswith(".jpg")) == ["a.jpg", "b.jpg", "c.jpg"]
    assert sorted(set(grown["frame"][grown["name"] == "clip.mp4"])) == [0, 1, 2]  # the removed video's rows stay
    images = grown["name"] != "clip.mp4"
    order = np.lexsort((grown["person"][images], grown["name"][images]))
    order_fresh = np.lexsort((expected["person"], expected["name"]))
    np.testing.assert_allclose(grown["joints"][images][order], expected["joints"][order_fresh], atol=1e-5)
    runs = json.loads((out / JOB_FILE).read_text())["runs"]
    assert len(runs) == 2 and runs[1]["inputs_added"] == 1 and runs[1]["inputs_changed"] == 1
    assert runs[1]["inputs_removed"] == 1 and runs[1]["units_done"] == 1 and runs[1]["status"] == "completed"
    third = infer([corpus], out, "--images-per-unit", "2", "--chunk-frames", "2")
    assert third.exit_code == 0 and "frames 0" in third.output and "already done" in third.output


def _rows(out: Path) -> dict[str, np.ndarray]:
    table = read_results(str(out), ["source", "frame", "person", "joints"], good_only=True)
    return {"name": np.array([s.rsplit("/", 1)[-1] for s in table.column("source").to_pylist()]),
            "frame": table.column("frame").to_numpy(), "person": table.column("person").to_numpy(),
            "joints": column_array(table, "joints")}


class FlakyFileSystem(LocalFileSystem):
    """Local files behind a storage that resets the connection for the paths in ``failing``."""

    protocol = "flaky"
    failing: set[str] = set()

    def cat_file(self, path, start=None, end=None, **kwargs):
        if self._strip_protocol(path) in self.failing:
            raise ConnectionResetError(104, "Connection reset by peer")
        return super().cat_file(path, start, end, **kwargs)


def test_a_transient_failure_is_retried_by_the_rerun(tmp_path, photos, infer, monkeypatch):
    fsspec.register_implementation("flaky", FlakyFileSystem, clobber=True)
    monkeypatch.setattr("pipelines.storage.time.sleep", lambda s: None)  # the retries' backoff
    corpus = tmp_path / "corpus"
    shutil.copytree(photos, corpus)
    FlakyFileSystem.failing = {str(corpus / "b.jpg")}
    out = tmp_path / "out"
    first = infer([f"flaky://{corpus}"], out, "--images-per-unit", "1")
    assert "1 units not committed after transient failures" in first.output, first.output
    assert "Connection reset" in first.output and "rerun" in first.output
    names = {s.rsplit("/", 1)[-1] for s in read_results(str(out), ["source"]).column("source").to_pylist()}
    assert names == {"a.jpg", "c.jpg"}  # b is neither an error row nor silently skipped: it is pending
    FlakyFileSystem.failing = set()
    second = infer([f"flaky://{corpus}"], out, "--images-per-unit", "1")
    assert second.exit_code == 0 and "frames 1" in second.output and "2 already done" in second.output
    table = read_results(str(out), ["source", "person", "error"])
    assert table.column("error").null_count == table.num_rows
    assert sorted({s.rsplit("/", 1)[-1] for s in table.column("source").to_pylist()}) == ["a.jpg", "b.jpg", "c.jpg"]


def test_leaderboard_and_mot_exports_own_their_folders(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>my page</p>")
    uri = f"sqlite:///{tmp_path / 'm.db'}"  # a store with one run: reading a store never creates one
    log_run("meshfleet-eval", "agora-official", {"benchmark": "agora", "track": "smpl", "protocol": "official",
                                                 "evaluator_version": "1.0", "predictions": "p.zip"},
            {"nmve": 150.0, "f1": 0.7}, {"metrics.json": {}}, uri)
    job = LeaderboardJob(output=site, tracking_uri=uri)
    with pytest.raises(JobMismatchError, match="did not write"):
        run_leaderboard(job)
    assert (site / "index.html").read_text() == "<p>my page</p>"
    ours = LeaderboardJob(output=tmp_path / "board", tracking_uri=job.tracking_uri)
    run_leaderboard(ours)
    run_leaderboard(ours)  # regenerated in place
    assert sorted(p.name for p in ours.output.iterdir()) == [JOB_FILE, "index.html", "leaderboard.md"]
