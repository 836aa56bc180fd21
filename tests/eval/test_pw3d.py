"""3DPW evaluator on tiny synthetic sets in the official layout, against values computed here.

Ground truth is rebuilt in the test the way the official 3DPW evaluation does it (gendered SMPL
with the world translation, then the 4x4 camera pose applied to homogeneous points), independently
of the evaluator's rotate-about-the-root shortcut; expected errors are written by hand (offsets on
single joints) or computed with solvers that do not use the evaluator (scipy).
"""

from __future__ import annotations

import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from core.body_models import BodyModelSet
from core.smpl_pickle import UnsafePickleError
from eval.common import EvalConfig, EvalError
from eval.pw3d import evaluate, load_sequence
from jobs.synthetic import synthetic_model_dict, write_model_pickle, write_synthetic_body_models
from pipelines.schema import array_column, results_schema
from tests.eval.test_pw3d_metrics import brute_force_pa

NUM_KEYPOINTS = 18
TORSO_2D = [2, 5, 8, 11]
BODY_2D = [10, 9, 8, 11, 12, 13, 4, 3, 2, 5, 6, 7]
PRED_TORSO = [17, 16, 45, 46]


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = write_synthetic_body_models(tmp_path_factory.mktemp("pw3d_models"), seed=3)
    rng = np.random.default_rng(7)
    write_model_pickle(root / "SMPL_MALE.pkl", synthetic_model_dict(rng))
    write_model_pickle(root / "SMPL_FEMALE.pkl", synthetic_model_dict(rng))
    return root


@pytest.fixture(scope="module")
def models(model_dir) -> dict[str, BodyModelSet]:
    return {g: BodyModelSet.from_dir(model_dir, gender=g) for g in ("neutral", "male", "female")}


def py2_pickle(obj: object) -> bytes:
    """Protocol 2 with the Python-2 era layout: ``numpy.core`` module paths and byte strings
    (SHORT_BINSTRING) for ASCII text, which Python 3 reads only with ``encoding='latin1'``."""
    blob = pickle.dumps(obj, protocol=2).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    ops = list(pickletools.genops(blob))
    ends = [pos for _, _, pos in ops[1:]] + [len(blob)]
    out = bytearray()
    for (op, arg, pos), end in zip(ops, ends, strict=True):
        if op.name == "BINUNICODE" and arg.isascii() and len(arg) < 256:
            out += b"U" + bytes([len(arg)]) + arg.encode()
        else:
            out += blob[pos:end]
    return bytes(out)


def keypoints(center: np.ndarray, visible: int = 12) -> np.ndarray:
    """(3, 18) COCO-18 as 3DPW stores poses2d: torso symmetric about ``center``; ``visible`` of the
    12 body keypoints with confidence 0.9, the others 0.1."""
    kp = np.zeros((3, NUM_KEYPOINTS))
    offsets = np.array([[-20, -30], [20, -30], [-20, 30], [20, 30]], float)
    kp[:2] = center[:, None] + np.linspace(-60, 60, NUM_KEYPOINTS)[None]
    kp[:2, TORSO_2D] = (center + offsets).T
    kp[2] = 0.9
    kp[2, BODY_2D[visible:]] = 0.1
    return kp


def sequence(rng: np.random.Generator, genders: list[str], frames: int, centers: np.ndarray) -> dict:
    """Official fields of one sequence; ``centers`` (P, T, 2) torso centres in pixels."""
    people = len(genders)
    cams = np.tile(np.eye(4), (frames, 1, 1))
    cams[:, :3, :3] = Rotation.random(frames, random_state=int(rng.integers(1 << 30))).as_matrix()
    cams[:, :3, 3] = rng.normal(0.0, 1.0, (frames, 3))
    poses = [rng.normal(0.0, 0.25, (frames, 72)) for _ in range(people)]
    return {
        "sequence": "synthetic",
        "genders": list(genders),
        "betas": [rng.normal(0.0, 1.0, 10) for _ in range(people)],
        "betas_clothed": [rng.normal(0.0, 1.0, 10) for _ in range(people)],
        "poses": poses,
        "trans": [rng.normal(0.0, 2.0, (frames, 3)) for _ in range(people)],
        "poses2d": [np.stack([keypoints(centers[p, t]) for t in range(frames)]) for p in range(people)],
        "jointPositions": [rng.normal(0.0, 1.0, (frames, 72)) for _ in range(people)],
        "cam_poses": cams,
        "cam_intrinsics": np.array([[1962.0, 0, 540], [0, 1969.0, 960], [0, 0, 1]]),
        "campose_valid": [np.ones(frames, bool) for _ in range(people)],
        "img_frame_ids": np.arange(frames) * 2,
        "texture_maps": [np.zeros((4, 4, 3), np.uint8) for _ in range(people)],
    }


def write_sequence(root: Path, name: str, data: dict, split: str = "test") -> Path:
    path = root / "sequenceFiles" / split / f"{name}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(py2_pickle(data))
    return path


def camera_joints(models: dict, seq: dict, p: int, t: int, gendered: bool = False) -> np.ndarray:
    """LSP-14 (14, 3) of GT person p at frame t in the camera frame, built independently of the
    evaluator: SMPL (neutral as VIBE's db for ``official``; the person's gender for ``fixed``) + world
    translation, then homogeneous points times cam_pose^T."""
    return _camera_joints_all(models, seq, p, gendered)[t]


_JOINTS_CACHE: dict[tuple[int, int, bool], np.ndarray] = {}


def _camera_joints_all(models: dict, seq: dict, p: int, gendered: bool) -> np.ndarray:
    key = (hash(seq["poses"][p].tobytes()), p, gendered)
    if key not in _JOINTS_CACHE:
        model = models[{"m": "male", "f": "female"}[seq["genders"][p]] if gendered else "neutral"]
        frames = len(seq["poses"][p])
        betas = torch.tensor(np.tile(seq["betas"][p], (frames, 1))).float()
        out = model.smpl_forward(betas, torch.tensor(seq["poses"][p]).float())
        world = out.joints.double().numpy() + seq["trans"][p][:, None]
        homogeneous = np.concatenate([world, np.ones((*world.shape[:2], 1))], axis=2)
        _JOINTS_CACHE[key] = np.einsum("tkj,tij->tki", homogeneous, seq["cam_poses"])[:, 54:68, :3]
    return _JOINTS_CACHE[key]


def camera_pose(seq: dict, p: int, t: int) -> np.ndarray:
    """(72,) pose with the global orientation turned into the camera (VIBE), hands zeroed (ROMP)."""
    pose = np.array(seq["poses"][p][t], float)
    cam = Rotation.from_matrix(seq["cam_poses"][t][:3, :3]) * Rotation.from_rotvec(pose[:3])
    pose[:3] = cam.as_rotvec()
    pose[66:] = 0.0
    return pose


def mesh(model: BodyModelSet, betas: np.ndarray, pose: np.ndarray) -> np.ndarray:
    out = model.smpl_forward(torch.tensor(betas[None]).float(), torch.tensor(pose[None]).float())
    return out.verts[0].double().numpy()


def hips(joints: np.ndarray) -> np.ndarray:
    return joints - joints[[2, 3]].mean(axis=0)


def pred_row(name: str, frame: int, person: int, joints14: np.ndarray, center: np.ndarray,
             thetas: np.ndarray, betas: np.ndarray) -> dict:
    joints = np.zeros((71, 3))
    joints[54:68] = joints14
    pj2d = np.tile(center, (71, 1))
    pj2d[PRED_TORSO] = center + np.array([[-15, -25], [15, -25], [-15, 25], [15, 25]])
    return {"source": f"/data/3DPW/imageFiles/{name}/image_{frame:05d}.jpg", "person": person,
            "joints": joints, "pj2d_org": pj2d, "smpl_thetas": thetas, "smpl_betas": betas}


def write_results(folder: Path, rows: list[dict]) -> str:
    schema = results_schema(len(rows[0]["smpl_betas"]))
    n = len(rows)
    arrays = {
        "source": pa.array([r["source"] for r in rows], pa.string()),
        "frame": pa.array(np.zeros(n, np.int64)),
        "timestamp": pa.nulls(n, pa.float64()),
        "person": pa.array(np.array([r["person"] for r in rows], np.int32)),
        "track_id": pa.nulls(n, pa.int64()),
        "model": pa.array(["romp"] * n, pa.string()),
        "center_conf": pa.array(np.ones(n, np.float32)),
        "image_height": pa.array(np.full(n, 1920, np.int32)),
        "image_width": pa.array(np.full(n, 1080, np.int32)),
        "error": pa.nulls(n, pa.string()),
    }
    for name, size in (("cam", (3,)), ("cam_trans", (3,))):
        arrays[name] = array_column(np.zeros((n, *size)), schema.field(name).type)
    for name in ("smpl_thetas", "smpl_betas", "joints", "pj2d_org"):
        arrays[name] = array_column(np.stack([r[name] for r in rows]), schema.field(name).type)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_arrays([arrays[f] for f in schema.names], schema=schema), folder / "part.parquet")
    return str(folder)


def run(root: Path, preds: str, model_dir: Path, protocol: str):
    cfg = EvalConfig(benchmark="3dpw", predictions=preds, protocol=protocol, data=str(root),
                     body_models=str(model_dir), split="test")
    return evaluate(cfg)


def umeyama_pa(pred: np.ndarray, gt: np.ndarray) -> float:
    """Per-person PA-MPJPE (mm) through scipy's orthogonal Procrustes (a proper rotation here)."""
    p, g = pred - pred.mean(0), gt - gt.mean(0)
    rot, singular_sum = orthogonal_procrustes(p, g)
    assert np.linalg.det(rot) > 0
    aligned = singular_sum / (p ** 2).sum() * p @ rot + gt.mean(0)
    return float(np.linalg.norm(aligned - gt, axis=-1).mean() * 1000)


def quirk_pa(pred: np.ndarray, gt: np.ndarray) -> float:
    """What the untransposed official path gives: the 3 columns (x, y, z) of the (14, 3) arrays
    are the points, the 14 joints the dimensions; solved here with scipy's orthogonal Procrustes."""
    p, g = pred.T, gt.T  # (3 points, 14 dims)
    pc, gc = p - p.mean(0), g - g.mean(0)
    rot, singular_sum = orthogonal_procrustes(pc, gc)
    aligned = (singular_sum / (pc ** 2).sum() * pc @ rot + g.mean(0)).T  # back to (14, 3)
    return float(np.linalg.norm(aligned - gt, axis=-1).mean() * 1000)


# ---------------------------------------------------------------------------- the loader


def test_loader_reads_python2_layout(tmp_path):
    rng = np.random.default_rng(0)
    data = sequence(rng, ["m", "f"], 3, np.full((2, 3, 2), 100.0))
    path = write_sequence(tmp_path, "downtown_test_00", data)
    assert b"cnumpy.core.multiarray\n" in path.read_bytes() and b"U\x01m" in path.read_bytes()
    seq = load_sequence(str(path))
    assert seq.name == "downtown_test_00" and seq.genders == ("m", "f")
    assert seq.poses.shape == (2, 3, 72) and seq.betas.shape == (2, 10)
    assert seq.keypoints.shape == (2, 3, 18, 3) and seq.cam_rot.shape == (3, 3, 3)
    np.testing.assert_array_equal(seq.keypoints[1, 2], data["poses2d"][1][2].T)
    np.testing.assert_array_equal(seq.cam_rot, data["cam_poses"][:, :3, :3])


@pytest.mark.parametrize(("field", "value"), [
    ("cam_poses", None),
    ("poses", "short"),
    ("poses2d", "wrong"),
    ("genders", ["m", "x"]),
    ("betas", [np.zeros(8), np.zeros(8)]),
    ("campose_valid", [np.ones(3, bool)]),
])
def test_malformed_field_names_file_and_field(tmp_path, field, value):
    rng = np.random.default_rng(1)
    data = sequence(rng, ["m", "f"], 3, np.full((2, 3, 2), 100.0))
    if value is None:
        del data[field]
    elif value == "short":
        data[field] = [p[:, :69] for p in data[field]]
    elif value == "wrong":
        data[field] = [p.transpose(0, 2, 1) for p in data[field]]
    else:
        data[field] = value
    path = write_sequence(tmp_path, "bad_00", data)
    with pytest.raises(EvalError) as err:
        load_sequence(str(path))
    assert str(path) in str(err.value) and repr(field) in str(err.value)


def test_not_a_dict_and_not_a_pickle(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(py2_pickle([1, 2]))
    with pytest.raises(EvalError, match="x.pkl"):
        load_sequence(str(path))
    path.write_bytes(b"not a pickle")
    with pytest.raises(EvalError, match="x.pkl"):
        load_sequence(str(path))


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"genders": ["m"], "poses": _Payload()}, protocol=2))
    with pytest.raises(UnsafePickleError) as err:
        load_sequence(str(path))
    assert str(path) in str(err.value) and "system" in str(err.value)


# -------------------------------------------------------------- matching, alignment, misses


@pytest.fixture(scope="module", params=["official", "fixed"])
def main_scene(request, tmp_path_factory, models):
    """Two people over 4 frames (see test_main_scene for what each frame checks); predictions are
    built from the ground truth of the protocol under test."""
    protocol = request.param
    gendered = protocol == "fixed"
    root = tmp_path_factory.mktemp("pw3d_main")
    rng = np.random.default_rng(11)
    centers = np.zeros((2, 4, 2))
    centers[0], centers[1] = [300.0, 500.0], [700.0, 520.0]
    seq = sequence(rng, ["m", "f"], 4, centers)
    seq["poses2d"][1][3] = keypoints(centers[1, 3], visible=6)  # 6 visible body keypoints: not a frame
    seq["campose_valid"][0][3] = False
    name = "courtyard_scene_00"
    write_sequence(root, name, seq)
    betas_p1 = rng.normal(0.0, 1.0, 10)
    offset = np.zeros((14, 3))
    offset[0, 1] = 0.05  # R_Ankle 5 cm off
    rows = [
        # frame 0: listed in the wrong order on purpose; matching goes by torso centre
        pred_row(name, 0, 0, camera_joints(models, seq, 1, 0, gendered) + offset, centers[1, 0] + 4,
                 camera_pose(seq, 1, 0), betas_p1),
        pred_row(name, 0, 1, camera_joints(models, seq, 0, 0, gendered) + [1.0, -2.0, 3.0], centers[0, 0] - 3,
                 camera_pose(seq, 0, 0), np.array(seq["betas"][0])),
        # frame 1: no predictions (both GT people missed); frame 2: one prediction for two people
        pred_row(name, 2, 0, camera_joints(models, seq, 0, 2, gendered), centers[0, 2],
                 camera_pose(seq, 0, 2), np.array(seq["betas"][0])),
        # a row of another image layout, ignored
        {**pred_row(name, 0, 5, np.zeros((14, 3)), centers[0, 0], np.zeros(72), np.zeros(10)),
         "source": "/elsewhere/picture.png"},
    ]
    preds = write_results(root / "preds", rows)
    return root, preds, seq, betas_p1, offset, protocol


def test_main_scene(main_scene, models, model_dir):
    root, preds, seq, betas_p1, offset, protocol = main_scene
    gendered = protocol == "fixed"
    result = run(root, preds, model_dir, protocol)
    m = result.metrics
    # 3 frames x 2 people are valid (frame 3: p0 has no valid camera, p1 only 6 keypoints)
    assert (m["gt_people"], m["matched"], m["missed"], m["shared"]) == (6.0, 4.0, 2.0, 2.0)
    rows = result.rows.set_index(["frame", "gt_person"])
    assert rows.loc[(0, 0), "pred_person"] == 1 and rows.loc[(0, 1), "pred_person"] == 0
    assert not rows.loc[(1, 0), "matched"] and not rows.loc[(1, 1), "matched"]
    assert rows.loc[(2, 0), "pred_person"] == 0 and rows.loc[(2, 1), "pred_person"] == 0

    shared_pred = camera_joints(models, seq, 0, 2, gendered)
    expected_mpjpe = {
        (0, 0): 0.0,  # exact joints 1, -2, 3 m away: removed by the hip-midpoint root
        (0, 1): 50.0 / 14,  # one joint 5 cm off, the hips exact
        (2, 0): 0.0,
        (2, 1): float(np.linalg.norm(hips(shared_pred) - hips(camera_joints(models, seq, 1, 2, gendered)),
                                     axis=1).mean() * 1000),
    }
    for key, value in expected_mpjpe.items():
        assert rows.loc[key, "mpjpe"] == pytest.approx(value, abs=2e-3)
    assert m["mpjpe"] == pytest.approx(np.mean(list(expected_mpjpe.values())), abs=2e-3)

    # PA-MPJPE: one batch of 3 images with 4 matched people -> no quirk, both protocols per person
    pred_joints = {(0, 0): camera_joints(models, seq, 0, 0, gendered),
                   (0, 1): camera_joints(models, seq, 1, 0, gendered) + offset,
                   (2, 0): shared_pred, (2, 1): shared_pred}
    for key, pj in pred_joints.items():
        gt = hips(camera_joints(models, seq, key[1], key[0], gendered))
        expected = 0.0 if key in ((0, 0), (2, 0)) else brute_force_pa(pj, gt)
        assert rows.loc[key, "pa_mpjpe"] == pytest.approx(expected, abs=2e-3)
    assert m["pa_quirk_people"] == 0.0

    # PVE: official meshes the GT params with the neutral model, fixed with the gendered one
    gt_model = {"official": lambda g: models["neutral"], "fixed": lambda g: models[g]}[protocol]
    pred_params = {(0, 0): (seq["betas"][0], camera_pose(seq, 0, 0)), (0, 1): (betas_p1, camera_pose(seq, 1, 0)),
                   (2, 0): (seq["betas"][0], camera_pose(seq, 0, 2)), (2, 1): (seq["betas"][0], camera_pose(seq, 0, 2))}
    for (frame, person), (betas, pose) in pred_params.items():
        gender = {"m": "male", "f": "female"}[seq["genders"][person]]
        target = mesh(gt_model(gender), np.array(seq["betas"][person]), camera_pose(seq, person, frame))
        expected = np.linalg.norm(mesh(models["neutral"], np.array(betas), pose) - target, axis=1).mean() * 1000
        assert rows.loc[(frame, person), "pve"] == pytest.approx(expected, abs=2e-3)
    if protocol == "official":  # the exact prediction of person 0 in frame 0 has zero PVE
        assert rows.loc[(0, 0), "pve"] == pytest.approx(0.0, abs=2e-3)
    else:
        assert rows.loc[(0, 0), "pve"] > 1.0
    assert result.plots["per_sequence.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert result.params["pw3d_pve_gt_model"] == ("neutral" if protocol == "official" else "gendered")
    assert result.params["pw3d_gt_model"] == result.params["pw3d_pve_gt_model"]


def test_mirrored_prediction(tmp_path, models, model_dir):
    """A reflected prediction keeps a PA-MPJPE > 0 (no reflection in the Procrustes)."""
    rng = np.random.default_rng(5)
    seq = sequence(rng, ["f"], 1, np.full((1, 1, 2), 400.0))
    write_sequence(tmp_path, "mirror_00", seq)
    gt = camera_joints(models, seq, 0, 0)
    mirrored = hips(gt) * np.array([-1.0, 1.0, 1.0]) + 0.4
    preds = write_results(tmp_path / "preds", [pred_row("mirror_00", 0, 0, mirrored, np.full(2, 400.0),
                                                        np.zeros(72), np.zeros(10))])
    for protocol in ("official", "fixed"):  # a batch of one person: both per person
        expected = brute_force_pa(mirrored, hips(camera_joints(models, seq, 0, 0, gendered=protocol == "fixed")))
        assert expected > 10.0
        assert run(tmp_path, preds, model_dir, protocol).metrics["pa_mpjpe"] == pytest.approx(expected, abs=1e-3)


def test_bev_results_are_meshed_with_smpla(tmp_path, models, model_dir):
    """11 betas (BEV): the predicted mesh is SMPL-A; the GT mesh of the official PVE is neutral SMPL."""
    rng = np.random.default_rng(8)
    seq = sequence(rng, ["m"], 1, np.full((1, 1, 2), 500.0))
    write_sequence(tmp_path, "bev_00", seq)
    pose = camera_pose(seq, 0, 0)
    betas = np.append(seq["betas"][0], 0.3)
    preds = write_results(tmp_path / "preds", [pred_row("bev_00", 0, 0, camera_joints(models, seq, 0, 0),
                                                        np.full(2, 500.0), pose, betas)])
    smpla = BodyModelSet.from_dir(model_dir, for_bev=True)
    pred_mesh = smpla.smpla_forward(torch.tensor(betas[None]).float(), torch.tensor(pose[None]).float()).verts
    target = mesh(models["neutral"], np.array(seq["betas"][0]), pose)
    expected = np.linalg.norm(pred_mesh[0].double().numpy() - target, axis=1).mean() * 1000
    metrics = run(tmp_path, preds, model_dir, "official").metrics
    assert expected > 1.0
    assert metrics["pve"] == pytest.approx(expected, abs=2e-3)
    assert metrics["mpjpe"] == pytest.approx(0.0, abs=2e-3)


# -------------------------------------------------------------- the batch Procrustes quirk


def quirk_scene(root: Path, models: dict, people_per_frame: list[int], seed: int):
    """One sequence; frame t holds the first ``people_per_frame[t]`` of max(...) people, each with a
    noisy, rotated, moved prediction. Returns the results URI and {(frame, person): (pred, gt of
    the official protocol (neutral), gt of the fixed one (gendered))}."""
    rng = np.random.default_rng(seed)
    people, frames = max(people_per_frame), len(people_per_frame)
    centers = np.stack([np.stack([np.full(frames, 200.0 + 300 * p), np.full(frames, 600.0)], 1)
                        for p in range(people)])
    seq = sequence(rng, ["m", "f", "m"][:people], frames, centers)
    for p in range(people):
        seq["campose_valid"][p][:] = [p < n for n in people_per_frame]
    write_sequence(root, "quirk_00", seq)
    rows, pairs = [], {}
    for t, count in enumerate(people_per_frame):
        for p in range(count):
            gt = camera_joints(models, seq, p, t)
            rot = Rotation.from_rotvec(rng.normal(0.0, 0.3, 3)).as_matrix()
            pred = (gt + rng.normal(0.0, 0.03, gt.shape)) @ rot.T * 1.05 + rng.normal(0.0, 0.3, 3)
            rows.append(pred_row("quirk_00", t, p, pred, centers[p, t], camera_pose(seq, p, t),
                                 np.array(seq["betas"][p])))
            pairs[(t, p)] = (pred, hips(gt), hips(camera_joints(models, seq, p, t, gendered=True)))
    return write_results(root / "preds", rows), pairs


@pytest.mark.parametrize(("people_per_frame", "quirk"), [
    ([2], True),  # one frame of two people: a batch of 2
    ([2, 1], True),  # two frames of 2 and 1 people: still one batch of 3, the 1-person frame included
    ([3], True),
    ([2, 2], False),  # a batch of 4: transposed, correct
])
def test_batch_of_two_or_three_people(tmp_path, models, model_dir, people_per_frame, quirk):
    seed = len(people_per_frame) * 10 + sum(people_per_frame)
    preds, pairs = quirk_scene(tmp_path, models, people_per_frame, seed=seed)
    official = run(tmp_path, preds, model_dir, "official").rows.set_index(["frame", "gt_person"])
    fixed = run(tmp_path, preds, model_dir, "fixed").rows.set_index(["frame", "gt_person"])
    for key, (pred, gt, gt_gendered) in pairs.items():
        assert fixed.loc[key, "pa_mpjpe"] == pytest.approx(brute_force_pa(pred, gt_gendered), rel=1e-5)
        correct = umeyama_pa(pred, gt)
        assert official.loc[key, "pa_mpjpe"] == pytest.approx(quirk_pa(pred, gt) if quirk else correct, rel=1e-6)
        assert bool(official.loc[key, "pa_quirk"]) is quirk and not fixed.loc[key, "pa_quirk"]
        for rows, target in ((official, gt), (fixed, gt_gendered)):
            expected = np.linalg.norm(hips(pred) - target, axis=1).mean() * 1000
            assert rows.loc[key, "mpjpe"] == pytest.approx(expected, rel=1e-6)
    if quirk:
        diffs = [abs(official.loc[k, "pa_mpjpe"] - umeyama_pa(pred, gt)) for k, (pred, gt, _) in pairs.items()]
        assert max(diffs) > 1.0


def test_batches_are_16_images(tmp_path, models, model_dir):
    """18 one-person frames: images 0-15 form a batch of 16 (correct), 16-17 a batch of 2 (quirk)."""
    preds, pairs = quirk_scene(tmp_path, models, [1] * 18, seed=99)
    result = run(tmp_path, preds, model_dir, "official")
    rows = result.rows.set_index(["frame", "gt_person"])
    for (t, p), (pred, gt, _) in pairs.items():
        quirk = t >= 16
        assert int(rows.loc[(t, p), "batch"]) == (1 if quirk else 0)
        assert bool(rows.loc[(t, p), "pa_quirk"]) is quirk
        expected = quirk_pa(pred, gt) if quirk else umeyama_pa(pred, gt)
        assert rows.loc[(t, p), "pa_mpjpe"] == pytest.approx(expected, rel=1e-6)
    assert result.metrics["pa_quirk_people"] == 2.0


# ------------------------------------------------------------------------ bad predictions


def test_predictions_without_3dpw_sources(tmp_path, model_dir):
    rng = np.random.default_rng(2)
    write_sequence(tmp_path, "seq_00", sequence(rng, ["m"], 1, np.full((1, 1, 2), 300.0)))
    row = {**pred_row("seq_00", 0, 0, np.zeros((14, 3)), np.full(2, 300.0), np.zeros(72), np.zeros(10)),
           "source": "s3://bucket/frames/000001.jpg.txt"}
    preds = write_results(tmp_path / "preds", [row])
    with pytest.raises(EvalError, match="'source'"):
        run(tmp_path, preds, model_dir, "official")


def test_missing_inputs(tmp_path, model_dir):
    with pytest.raises(EvalError, match="sequenceFiles"):
        run(tmp_path, str(tmp_path), model_dir, "official")
    with pytest.raises(EvalError, match="split"):
        evaluate(EvalConfig(benchmark="3dpw", predictions="x", data=str(tmp_path), body_models=str(model_dir),
                            split="dev"))
