"""``meshfleet render`` end to end: a results dataset built here (open body model, canonical FOV-60
camera, BEV conventions) -> pictures and MP4s whose meshes land where ``pj2d_org`` says, in depth
order; reruns skip what is done; bad inputs exit 2 with one line."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from core.body_models import BodyModelSet, root_align
from core.render import PinholeCamera, canonical_camera
from jobs.cli import app
from pipelines.schema import METADATA_KEY, array_column, results_schema
from pipelines.synth.media import encode_mp4
from pipelines.video import iter_video_frames, probe_video

runner = CliRunner()
HEIGHT, WIDTH = 96, 128
NEAR, FAR = (0.15, 0.1, 3.0), (-0.15, 0.1, 6.0)  # cam_trans (m): the far person is half hidden behind
GREY = 90  # the frames' colour: the meshes are told apart from it
# A scene camera other than the canonical one (focal 110.85 px for 128 px): longer lens, off-centre.
SCENE_CAMERA = PinholeCamera(torch.tensor([160.0]), torch.tensor([[70.0, 44.0]]), HEIGHT, WIDTH)


@pytest.fixture(scope="module")
def models() -> BodyModelSet:
    return BodyModelSet.open(for_bev=True)


def _person(models: BodyModelSet, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """thetas (72,), betas (11,) of an adult standing upright, and its root-aligned joints (71, 3)."""
    rng = np.random.default_rng(seed)
    thetas = np.zeros(72, np.float32)
    thetas[0] = np.pi  # SMPL's body is Y up: turned about x, it stands upright in the camera frame (y down)
    thetas[3:] = rng.normal(0, 0.1, 69)
    betas = np.zeros(11, np.float32)
    betas[:10] = rng.normal(0, 0.5, 10)
    with torch.no_grad():
        body = root_align(models.smpla_forward(torch.from_numpy(betas)[None], torch.from_numpy(thetas)[None]))
    return thetas, betas, body.joints[0].numpy()


def _rows(models: BodyModelSet, source: str, frame: int, people: list[tuple[int, tuple]],
          scene_camera: PinholeCamera | None = None) -> dict[str, list]:
    """Result rows of one frame: people are (track id, cam_trans); pj2d_org is their projection by the
    canonical camera, or -- as in the synthetic oracle, whose ``cam`` is NaN -- by ``scene_camera``."""
    camera = scene_camera or canonical_camera(HEIGHT, WIDTH)
    cam = np.full(3, np.nan if scene_camera else 1.0, np.float32)
    rows: dict[str, list] = {k: [] for k in ("source", "frame", "person", "track_id", "thetas", "betas", "trans",
                                              "joints", "pj2d", "cam")}
    for person, (track, trans) in enumerate(people):
        thetas, betas, joints = _person(models, track)
        pj2d = camera.project(torch.from_numpy(joints + np.asarray(trans, np.float32))).numpy()
        values = (source, frame, person, track, thetas, betas, trans, joints, pj2d, cam)
        for key, value in zip(rows, values, strict=True):
            rows[key].append(value)
    return rows


def _write_results(path: Path, frames: list[dict[str, list]]) -> None:
    rows = {k: [v for f in frames for v in f[k]] for k in frames[0]}
    n = len(rows["source"])
    schema = results_schema(11, with_age=True, with_tracking=False)
    schema = schema.with_metadata({METADATA_KEY: json.dumps({"model": "bev", "root_align": True}).encode()})
    arrays = {
        "source": pa.array(rows["source"]), "frame": pa.array(rows["frame"], pa.int64()),
        "timestamp": pa.nulls(n, pa.float64()), "person": pa.array(rows["person"], pa.int32()),
        "track_id": pa.array(rows["track_id"], pa.int64()), "model": pa.array(["bev"] * n),
        "center_conf": pa.array(np.ones(n, np.float32)),
        "cam": array_column(np.stack(rows["cam"]), schema.field("cam").type),
        "cam_trans": array_column(np.array(rows["trans"], np.float32), schema.field("cam_trans").type),
        "smpl_thetas": array_column(np.stack(rows["thetas"]), schema.field("smpl_thetas").type),
        "smpl_betas": array_column(np.stack(rows["betas"]), schema.field("smpl_betas").type),
        "joints": array_column(np.stack(rows["joints"]), schema.field("joints").type),
        "pj2d_org": array_column(np.stack(rows["pj2d"]), schema.field("pj2d_org").type),
        "image_height": pa.array([HEIGHT] * n, pa.int32()), "image_width": pa.array([WIDTH] * n, pa.int32()),
        "age_class": pa.array([0] * n, pa.int8()), "error": pa.nulls(n, pa.string()),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_arrays([arrays[f.name] for f in schema], schema=schema), path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, models) -> Path:
    """media/: near.png, far.png, both.png (grey frames) and clip.mp4 (3 frames; nobody in frame 1);
    results/: their rows, sources relative to media/."""
    root = tmp_path_factory.mktemp("render")
    media = root / "media"
    media.mkdir()
    grey = np.full((HEIGHT, WIDTH, 3), GREY, np.uint8)
    for name in ("near.png", "far.png", "both.png", "scene.png"):
        cv2.imwrite(str(media / name), grey)
    (media / "clip.mp4").write_bytes(encode_mp4([grey] * 3, 10.0))
    frames = [_rows(models, "near.png", 0, [(1, NEAR)]), _rows(models, "far.png", 0, [(2, FAR)]),
              _rows(models, "both.png", 0, [(1, NEAR), (2, FAR)]),
              _rows(models, "scene.png", 0, [(3, NEAR)], SCENE_CAMERA),
              _rows(models, "clip.mp4", 0, [(1, NEAR)]), _rows(models, "clip.mp4", 2, [(1, NEAR), (2, FAR)])]
    _write_results(root / "results" / "part-0.parquet", frames[:4])
    _write_results(root / "results" / "part-1.parquet", frames[4:])
    return root


def _render(corpus: Path, out: Path, *extra: str):
    return runner.invoke(app, ["render", str(corpus / "results"), "--output", str(out),
                               "--inputs", str(corpus / "media"), *extra])


def _read(path: Path) -> np.ndarray:
    return cv2.imread(str(path))[:, :, ::-1]


@pytest.fixture(scope="module")
def overlays(corpus, tmp_path_factory) -> Path:
    """The overlays alone (no joints, opaque, PNG), drawn in this process."""
    out = tmp_path_factory.mktemp("overlays")
    result = _render(corpus, out, "--views", "overlay", "--no-joints", "--format", "png", "--no-ray")
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("source", ["near.png", "scene.png"])  # canonical camera; own camera (NaN cam)
def test_the_mesh_projects_where_pj2d_org_says(corpus, overlays, source):
    picture = _read(overlays / source)
    assert picture.shape == (HEIGHT, WIDTH, 3)
    mask = (np.abs(picture.astype(int) - GREY) > 8).any(axis=2)
    table = pq.read_table(corpus / "results" / "part-0.parquet").to_pylist()
    pj2d = np.array(next(r for r in table if r["source"] == source)["pj2d_org"])[:24]
    cols, rows = np.floor(pj2d).astype(int).T
    inside = mask[rows.clip(0, HEIGHT - 1), cols.clip(0, WIDTH - 1)]
    assert inside.mean() >= 0.9, f"only {inside.sum()} of 24 SMPL joints fall on the rendered mesh"
    ys, xs = np.nonzero(mask)
    assert mask.sum() > 200  # a body, not a speck
    # the silhouette hugs the joints: its box is the joints' box grown by at most ~the body's girth
    assert xs.min() >= pj2d[:, 0].min() - 12 and xs.max() <= pj2d[:, 0].max() + 12
    assert ys.min() >= pj2d[:, 1].min() - 12 and ys.max() <= pj2d[:, 1].max() + 12


def test_the_nearer_person_hides_the_farther_one(overlays):
    near, far, both = (_read(overlays / f"{n}.png").astype(int) for n in ("near", "far", "both"))
    near_mask, far_mask = ((np.abs(p - GREY) > 8).any(axis=2) for p in (near, far))
    overlap = near_mask & far_mask
    assert overlap.sum() > 20, "the test scene must overlap the two people"
    assert np.abs(both[overlap] - near[overlap]).max() <= 2  # the near person wins the overlap
    assert np.abs(both[overlap] - far[overlap]).max() > 30  # (and looks different from the far one)
    far_only = far_mask & ~near_mask
    assert np.abs(both[far_only] - far[far_only]).max() <= 2  # the far person shows where uncovered


def test_render_images_and_video_on_ray_then_rerun_skips(corpus, tmp_path, ray_local):
    out = tmp_path / "out"
    result = _render(corpus, out, "--alpha", "0.6")
    assert result.exit_code == 0, result.output
    assert "5 files rendered (7 frames" in result.output
    for name in ("near.jpg", "far.jpg", "both.jpg"):
        picture = _read(out / name)
        assert picture.shape == (HEIGHT, WIDTH + 2 * HEIGHT, 3)  # overlay + square side and top views
    info = probe_video(str(out / "clip.mp4"))
    frames = list(iter_video_frames(str(out / "clip.mp4")))
    assert info.frames == 3 and len(frames) == 3 and all(f.image is not None for f in frames)
    assert abs(info.fps - 10.0) < 1e-6
    overlay = [f.image[:, :WIDTH].astype(int) for f in frames]
    assert np.abs(overlay[1] - GREY).max() < 12  # nobody in frame 1: the frame itself
    assert (np.abs(overlay[2] - GREY) > 30).any(axis=2).sum() > 100  # semi-transparent people in frame 2
    # the pictures stay untouched (the job's ledger, _meshfleet_job.json, records the run)
    before = {p: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file() and not p.name.startswith("_")}
    again = _render(corpus, out, "--alpha", "0.6")
    assert again.exit_code == 0, again.output
    assert "0 files rendered" in again.output and "5 already done" in again.output
    assert {p: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file() and not p.name.startswith("_")} == before


def test_missing_media_is_reported_and_the_job_carries_on(corpus, tmp_path):
    result = runner.invoke(app, ["render", str(corpus / "results"), "--output", str(tmp_path / "out"),
                                 "--inputs", str(tmp_path / "nowhere"), "--views", "top", "--no-ray"])
    assert result.exit_code == 0, result.output
    assert "5 files rendered" in result.output and "5 inputs with unreadable frames" in result.output
    assert "warning:" in result.output and "not found" in result.output
    assert _read(tmp_path / "out" / "both.jpg").shape == (HEIGHT, HEIGHT, 3)  # the views need no media


@pytest.mark.parametrize("args, message", [
    (["--views", "overlay,front"], "views must be some of overlay, side, top"),
    (["--alpha", "0"], "alpha must be in (0, 1]"),
    (["--format", "gif"], "format must be jpg or png"),
    (["--device", "tpu"], "device must be auto, cpu or cuda"),
])
def test_bad_options_exit_2_with_one_line(corpus, tmp_path, args, message):
    result = _render(corpus, tmp_path / "out", *args)
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_bad_results_exit_2_with_one_line(corpus, tmp_path):
    missing = runner.invoke(app, ["render", str(tmp_path / "none"), "--output", str(tmp_path / "a")])
    assert missing.exit_code == 2 and "results dataset not found" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    table = pq.read_table(corpus / "results" / "part-0.parquet").drop_columns(["pj2d_org"])
    (tmp_path / "bad").mkdir()
    pq.write_table(table, tmp_path / "bad" / "part.parquet")
    lacking = runner.invoke(app, ["render", str(tmp_path / "bad"), "--output", str(tmp_path / "b")])
    assert lacking.exit_code == 2 and "lack the column 'pj2d_org'" in lacking.output
    assert len(lacking.output.strip().splitlines()) == 1
    inside = runner.invoke(app, ["render", str(corpus / "results"), "--output", str(corpus / "results" / "x")])
    assert inside.exit_code == 2 and "overlaps the results dataset" in inside.output


def test_another_job_in_the_output_is_refused(corpus, overlays):
    result = _render(corpus, overlays, "--views", "overlay", "--format", "png", "--no-ray")
    assert result.exit_code == 2 and "different job" in result.output


def test_dry_run_prints_the_render_spec(corpus, tmp_path):
    result = _render(corpus, tmp_path / "out", "--views", "top,overlay", "--dry-run")
    assert result.exit_code == 0
    assert "kind: render" in result.output and "- top\n  - overlay" in result.output


def test_a_run_with_renders_shows_a_thumbnail_on_the_leaderboard(corpus, tmp_path):
    from eval.mlflow_log import log_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = {"benchmark": "agora", "split": "validation", "track": "smpl", "protocol": "official",
              "evaluator_version": "1.0", "model": "bev", "checkpoint_sha256": "ab" * 32}
    rendered = log_run("meshfleet-eval", "with-renders", params, {"f1": 0.9}, {"metrics.json": {}}, uri)
    log_run("meshfleet-eval", "without", params, {"f1": 0.8}, {"metrics.json": {}}, uri)
    result = _render(corpus, tmp_path / "out", "--views", "overlay", "--no-ray", "--mlflow-run", rendered,
                     "--mlflow-uri", uri)
    assert result.exit_code == 0, result.output
    board = runner.invoke(app, ["leaderboard", "--mlflow-uri", uri, "--output", str(tmp_path / "board")])
    assert board.exit_code == 0, board.output
    page = (tmp_path / "board" / "index.html").read_text()
    assert page.count('<img class="thumb"') == 1  # only the run that has renders
    row = next(r for r in page.split("<tr") if rendered[:8] in r)
    blob = base64.b64decode(row.split('src="data:image/jpeg;base64,')[1].split('"')[0])
    thumb = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    assert thumb.shape[0] == 160 and thumb.shape[1] == round(WIDTH * 160 / HEIGHT)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where there is no GPU")
def test_device_cuda_without_a_gpu_exits_2(corpus, tmp_path):
    result = _render(corpus, tmp_path / "out", "--device", "cuda", "--no-ray")
    assert result.exit_code == 2 and "--device cuda: no CUDA GPU here" in result.output
