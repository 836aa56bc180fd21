"""``meshfleet export gltf|bvh|npz`` end to end: a results dataset built here -> files that independent
readers (pygltflib, trimesh, bvhio, numpy, the Khronos validator, three.js in Chromium) read back
with the tracks' body-model joints to within 1 mm."""

from __future__ import annotations

import functools
import http.server
import io
import shutil
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import trimesh
from typer.testing import CliRunner

from core.body_models import BodyModelSet, root_align
from core.formats.skeleton import SMPL_KINEMATIC_NAMES
from core.predictor import Predictions
from jobs.cli import app
from pipelines.schema import FrameRef, array_column, error_table, predictions_table, results_schema, with_metadata
from tests.export_readers import CAMERA_TO_WORLD, NPM_DIR, GlbFile, bvh_joints, khronos_report, node_tools

runner = CliRunner()
MM = 1e-3
FPS = 25.0
VIDEO, IMAGE = "/corpus/walk.mp4", "/corpus/still.jpg"  # only named: export reads the results, never the media
HEIGHT, WIDTH = 240, 320
FRAMES = 6
GAP = {1: None, 2: 3}  # track 2 was not seen in frame 3


def _layer_joints(models: BodyModelSet, model: str, betas: np.ndarray, thetas: np.ndarray) -> np.ndarray:
    """(T, 24, 3) joints as meshfleet's results hold them (BEV: root-aligned), one shape for all."""
    b = torch.tensor(np.tile(betas, (len(thetas), 1)), dtype=torch.float32)
    with torch.no_grad():
        if model == "romp":
            body = models.smpl_forward(b, torch.tensor(thetas, dtype=torch.float32))
        else:
            body = root_align(models.smpla_forward(b, torch.tensor(thetas, dtype=torch.float32)))
    return body.joints[:, :24].double().numpy()


def _write_results(root: Path, models: BodyModelSet, model: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A tracked results dataset in two files: video ``walk`` with tracks 1 and 2 and one untracked
    detection, an error row, and image ``still`` with two people. The smoothed columns hold clean
    motion, the raw ones noise on top (an export that used them would miss by centimetres).
    Returns {exported name: (frames, world joints (T, 24, 3))}, the reference."""
    rng = np.random.default_rng(5)
    k = 10 if model == "romp" else 11
    rows, expected = [], {}
    smooth: dict[str, list] = {"thetas": [], "betas": [], "trans": []}
    raw: dict[str, list] = {"thetas": [], "betas": [], "trans": []}
    people = [(VIDEO, 1, 0), (VIDEO, 2, 1), (IMAGE, None, 0), (IMAGE, None, 1)]
    for source, track, person in people:
        frames = [f for f in range(FRAMES) if f != GAP.get(track or 0)] if source == VIDEO else [0]
        base = rng.normal(0.0, 0.3, 72)
        betas = rng.normal(0.0, 0.8, k)
        if k == 11:
            betas[10] = 0.2  # an adult (above 0.8 BEV meshes an infant with SMIL)
        thetas = np.stack([base + 0.15 * np.sin(f + np.arange(72)) for f in frames])
        thetas[:, :3] = [np.pi, 0.1, 0.0] + 0.05 * np.array(frames)[:, None]
        trans = np.stack([[0.6 * person - 0.3, 0.2, 4.0 + 0.1 * f] for f in frames])
        noisy = 0.0 if source == IMAGE else 1.0  # image people are never smoothed: raw = smoothed
        for i, f in enumerate(frames):
            rows.append((source, f, f / FPS if source == VIDEO else None, person, track))
            smooth["thetas"].append(thetas[i])
            smooth["betas"].append(betas)
            smooth["trans"].append(trans[i])
            raw["thetas"].append(thetas[i] + noisy * rng.normal(0.0, 0.2, 72))
            raw["betas"].append(betas + noisy * rng.normal(0.0, 0.5, k))
            raw["trans"].append(trans[i] + noisy * rng.normal(0.0, 0.3, 3))
        name = f"walk.track{track}" if source == VIDEO else f"still.person{person}"
        world = (_layer_joints(models, model, betas, thetas) + trans[:, None]) * CAMERA_TO_WORLD
        expected[name] = (np.array(frames), world)
    rows.append((VIDEO, 2, 2 / FPS, 2, None))  # a detection the tracker did not keep: skipped
    for key in smooth:
        smooth[key].append(smooth[key][0])
        raw[key].append(raw[key][0])
    n = len(rows)
    arrays = {key: np.array(values, np.float32) for key, values in raw.items()}
    pred = Predictions(
        model=model, image_index=np.arange(n), person=np.array([r[3] for r in rows], np.int32),
        center_conf=np.full(n, 0.9, np.float32), cam=np.zeros((n, 3), np.float32), cam_trans=arrays["trans"],
        smpl_thetas=arrays["thetas"], smpl_betas=arrays["betas"], joints=np.zeros((n, 71, 3), np.float32),
        pj2d_org=np.zeros((n, 71, 2), np.float32), image_hw=np.tile([HEIGHT, WIDTH], (n, 1)))
    schema = with_metadata(results_schema(k, with_tracking=True),
                           {"model": model, "root_align": model == "bev", "gender": "neutral"})
    table = predictions_table(pred, [FrameRef(s, f, t) for s, f, t, _, _ in rows], schema)
    table = table.set_column(schema.get_field_index("track_id"), "track_id", pa.array([r[4] for r in rows], pa.int64()))
    for name, column in (("thetas", "smpl_thetas_smoothed"), ("betas", "smpl_betas_smoothed"),
                         ("trans", "cam_trans_smoothed")):
        values = array_column(np.array(smooth[name], np.float32), schema.field(column).type)
        table = table.set_column(schema.get_field_index(column), column, values)
    errors = error_table([FrameRef(VIDEO, FRAMES, FRAMES / FPS)], ["walk.mp4: cannot decode frame 6"], schema)
    first = np.array([s == VIDEO and f < 3 for s, f, *_ in rows])
    root.mkdir(parents=True)
    pq.write_table(table.filter(pa.array(first)), root / "part-000.parquet")
    pq.write_table(pa.concat_tables([table.filter(pa.array(~first)), errors]), root / "part-001.parquet")
    return expected


@pytest.fixture(scope="module")
def romp_results(tmp_path_factory, body_models):
    root = tmp_path_factory.mktemp("export") / "results"
    return root, _write_results(root, body_models, "romp")


@pytest.fixture(scope="module")
def gltf_export(romp_results, body_model_dir, tmp_path_factory):
    results, expected = romp_results
    out = tmp_path_factory.mktemp("gltf") / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")  # must survive: outputs are owned
    result = runner.invoke(app, ["export", "gltf", str(results), "--output", str(out),
                                 "--body-models", str(body_model_dir)])
    assert result.exit_code == 0, result.output
    return out, expected, result.output


def _check_frames(frames: np.ndarray, got: np.ndarray, expected: tuple[np.ndarray, np.ndarray]) -> None:
    """got (T, 24, 3) over consecutive frames from frames[0]; expected at the observed frames."""
    observed, world = expected
    assert frames.tolist() == list(range(observed[0], observed[-1] + 1))
    error = np.abs(got[observed - observed[0]] - world).max()
    assert error < MM, f"max joint error {error * 1000:.3f} mm"


def test_gltf_per_track_reproduces_the_tracks_joints(gltf_export):
    out, expected, output = gltf_export
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{name}.glb" for name in expected] + ["notes.txt"])
    assert (out / "notes.txt").read_text() == "the user's"
    assert "4 tracks exported; 1 video detections without a track id skipped" in output
    assert "export gltf: 2/2" in output  # plain progress line off a terminal
    for name, reference in expected.items():
        glb = GlbFile(out / f"{name}.glb")
        assert glb.joint_names() == list(SMPL_KINEMATIC_NAMES)
        times, joints = glb.animated_joints()
        _check_frames(np.rint(times * FPS).astype(int) + reference[0][0], joints, reference)
        extras = glb.gltf.nodes[0].extras
        video = name.startswith("walk")
        assert extras["source"] == (VIDEO if video else IMAGE) and extras["fps"] == (FPS if video else 30.0)
        (mesh,) = trimesh.load(out / f"{name}.glb").geometry.values()
        assert mesh.vertices.shape == (6890, 3)
    _, gap = GlbFile(out / "walk.track2.glb").animated_joints()  # frame 3 lies halfway, by interpolation
    np.testing.assert_allclose(gap[3, 0], (gap[2, 0] + gap[4, 0]) / 2, atol=1e-6)


def test_gltf_files_pass_the_khronos_validator(gltf_export):
    out, expected, _ = gltf_export
    for name in expected:
        report = khronos_report(out / f"{name}.glb")
        assert report["numErrors"] == 0, (name, report["messages"])


def test_bvh_and_npz_reproduce_the_tracks_joints(romp_results, body_model_dir, body_models, tmp_path):
    results, expected = romp_results
    by_option = runner.invoke(app, ["export", str(results), "--format", "bvh", "--output", str(tmp_path / "bvh"),
                                    "--body-models", str(body_model_dir)])
    assert by_option.exit_code == 0, by_option.output
    for name, reference in expected.items():
        frame_time, joints = bvh_joints(tmp_path / "bvh" / f"{name}.bvh", list(SMPL_KINEMATIC_NAMES))
        assert frame_time == pytest.approx(1 / (FPS if name.startswith("walk") else 30.0))  # images: 30
        _check_frames(reference[0][0] + np.arange(len(joints)), joints, reference)
    as_subcommand = runner.invoke(app, ["export", "bvh", str(results), "--output", str(tmp_path / "bvh2"),
                                        "--body-models", str(body_model_dir)])
    assert as_subcommand.exit_code == 0, as_subcommand.output
    assert (tmp_path / "bvh2" / "walk.track2.bvh").read_bytes() == (tmp_path / "bvh" / "walk.track2.bvh").read_bytes()

    npz = runner.invoke(app, ["export", "npz", str(results), "--output", str(tmp_path / "npz"),
                              "--body-models", str(body_model_dir)])
    assert npz.exit_code == 0, npz.output
    for name, reference in expected.items():
        data = np.load(io.BytesIO((tmp_path / "npz" / f"{name}.npz").read_bytes()), allow_pickle=False)
        assert data["poses"].shape[1] == 72 and data["betas"].shape == (10,) and str(data["gender"]) == "neutral"
        assert float(data["mocap_framerate"]) == (FPS if name.startswith("walk") else 30.0)
        with torch.no_grad():
            betas = torch.tensor(data["betas"], dtype=torch.float32).expand(len(data["poses"]), -1)
            body = body_models.smpl_forward(betas, torch.tensor(data["poses"], dtype=torch.float32))
        _check_frames(data["frames"], body.joints[:, :24].double().numpy() + data["trans"][:, None], reference)


def test_bev_results_are_exported_without_their_root_alignment(body_models, body_model_dir, tmp_path):
    expected = _write_results(tmp_path / "bev", body_models, "bev")
    result = runner.invoke(app, ["export", "gltf", str(tmp_path / "bev"), "--output", str(tmp_path / "out"),
                                 "--body-models", str(body_model_dir), "--track", "1"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["walk.track1.glb"]
    times, joints = GlbFile(tmp_path / "out" / "walk.track1.glb").animated_joints()
    _check_frames(np.rint(times * FPS).astype(int), joints, expected["walk.track1"])


def test_track_selection_and_one_line_errors(romp_results, body_model_dir, tmp_path):
    results, _ = romp_results
    base = ["--body-models", str(body_model_dir)]
    one = runner.invoke(app, ["export", "npz", str(results), "--output", str(tmp_path / "a"),
                              "--track", "still.person1", *base])
    assert one.exit_code == 0 and sorted(p.name for p in (tmp_path / "a").iterdir()) == ["still.person1.npz"]
    cases = {
        "no track '9'": ["export", "npz", str(results), "--output", str(tmp_path / "b"), "--track", "9", *base],
        "no results dataset": ["export", "gltf", str(tmp_path / "nothing"), "--output", str(tmp_path / "c"), *base],
        "body-model directory not found": ["export", "bvh", str(results), "--output", str(tmp_path / "d"),
                                           "--body-models", str(tmp_path / "no-models")],
        "--format must be": ["export", str(results), "--format", "fbx", "--output", str(tmp_path / "e")],
        "does not apply to --format mot": ["export", str(results), "--format", "mot", "--track", "1",
                                           "--output", str(tmp_path / "f")],
        "give --format": ["export", str(results), "--output", str(tmp_path / "g")],
        "overlaps the results dataset": ["export", "npz", str(results), "--output", str(results / "anim"), *base],
    }
    for message, args in cases.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        lines = [line for line in result.output.splitlines() if not line.startswith("export ")]  # progress aside
        assert "Traceback" not in result.output and len(lines) == 1, result.output
    assert not any((tmp_path / d).exists() for d in "bcdefg")  # nothing written on a user error
    assert not (results / "anim").exists()


def test_format_mot_is_export_mot(romp_results, tmp_path):
    results, _ = romp_results
    by_option = runner.invoke(app, ["export", str(results), "--format", "mot", "--output", str(tmp_path / "a")])
    as_before = runner.invoke(app, ["export", "mot", str(results), "--output", str(tmp_path / "b")])
    assert by_option.exit_code == as_before.exit_code == 0, by_option.output + as_before.output
    assert (tmp_path / "a" / "walk.txt").read_text() == (tmp_path / "b" / "walk.txt").read_text() != ""


def test_export_spec_dry_run_and_run(romp_results, body_model_dir, tmp_path):
    results, _ = romp_results
    dry = runner.invoke(app, ["export", "bvh", str(results), "--output", str(tmp_path / "o"), "--track", "2",
                              "--dry-run"])
    assert dry.exit_code == 0 and "kind: export" in dry.output and "format: bvh" in dry.output
    spec = tmp_path / "export.yaml"
    spec.write_text(f"kind: export\nexport: {{results: {results}, output: {tmp_path / 'o'}, format: npz, "
                    f"track: '2', body_models: {body_model_dir}}}\n")
    ran = runner.invoke(app, ["run", str(spec)])
    assert ran.exit_code == 0, ran.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["walk.track2.npz"]
    overridden = runner.invoke(app, ["export", "gltf", "--spec", str(spec), "--dry-run"])
    assert overridden.exit_code == 0 and "format: gltf" in overridden.output  # the subcommand names the format


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_glb_renders_in_three_js_in_a_headless_browser(gltf_export, tmp_path):
    """three.js (GLTFLoader) draws walk.track1.glb through the file's own camera: the body's pixels lie
    where its joints project in the original image (FOV 60 over the longer side)."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium installed (Debian package 'chromium'); the three.js check needs a real browser")
    modules = node_tools("three")
    out, expected, _ = gltf_export
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(NPM_DIR / "view_glb.html", site / "index.html")
    shutil.copy(out / "walk.track1.glb", site / "track.glb")
    (site / "three").symlink_to(modules / "three")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html?w={WIDTH}&h={HEIGHT}&glb=track.glb"
        shot = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
             f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={tmp_path / 'shot.png'}", url],
            capture_output=True, timeout=120)
    finally:
        server.shutdown()
    assert shot.returncode == 0, shot.stderr[-2000:]
    image = cv2.imread(str(tmp_path / "shot.png"))
    assert image is not None and image.shape[:2] == (HEIGHT, WIDTH)
    body = image.max(axis=2) > 16  # background is black
    camera = expected["walk.track1"][1][0] * CAMERA_TO_WORLD  # frame 0, back in the camera frame
    focal = max(HEIGHT, WIDTH) / (2 * np.tan(np.radians(30)))
    uv = camera[:, :2] / camera[:, 2:] * focal + [WIDTH / 2, HEIGHT / 2]
    (u0, v0), (u1, v1) = uv.min(0), uv.max(0)
    margin = 0.25 * max(u1 - u0, v1 - v0)  # the mesh reaches past the joints (hands, feet, head)
    inside = np.zeros_like(body)
    inside[int(max(v0 - margin, 0)):int(v1 + margin) + 1, int(max(u0 - margin, 0)):int(u1 + margin) + 1] = True
    joint_box = body[int(v0):int(v1) + 1, int(u0):int(u1) + 1]
    assert joint_box.mean() > 0.15, f"only {joint_box.mean():.1%} of the body's box is drawn"
    assert body[~inside].sum() <= 0.02 * body.sum(), "the body is drawn away from where its joints project"
