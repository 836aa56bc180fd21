"""CMU Panoptic evaluator on tiny CRMH-format annotations and a meshfleet results table.

Every expected number is worked out by hand below: 3D errors are built joint by joint along x
(joint j of a person is off by e_j mm), so a person's MPJPE is sum(e_j) / 14 (official) or over
its visible joints (fixed); misses count 150 mm.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.predictor import Predictions
from core.smpl_pickle import UnsafePickleError
from eval.cmu_panoptic import (
    FrameGT,
    evaluate,
    load_annotation_file,
    match_greedy,
    prepare_gt,
)
from eval.common import EvalConfig, EvalError
from eval.matching import keypoint_box_iou, spectral_cost
from pipelines.schema import FrameRef, error_table, predictions_table, results_schema

# By hand: J24_TO_H36M = [14,3,4,5,2,1,0,16,12,17,18,9,10,11,8,7,6] indexed by
# H36M_TO_J14 = [6,5,4,1,2,3,16,15,14,11,12,13,8,0] gives J24 slots [0..12, 14].
J14_IN_J24 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14]
J14_IN_J17 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14]  # H36M-17 (H36M_TO_J17 order), pelvis 14
SCALE = 1920 / 832
PRED_ROOT = np.array([0.3, -0.2, 4.0])  # predictions are not root-aligned (ROMP-like)


def pose2d(x0: float, y0: float) -> np.ndarray:
    """(14, 2) annotation pixels (832-wide scale): a 16 x 130 px figure at (x0, y0)."""
    j = np.arange(14)
    return np.stack([x0 + 4.0 * (j % 5), y0 + 10.0 * j], axis=1)


def pose3d(base: tuple[float, float, float]) -> np.ndarray:
    """(14, 3) metres, pelvis (index 13) at ``base``."""
    j = np.arange(14)[:, None]
    return np.asarray(base) + np.concatenate([0.05 * (j % 3), -0.1 * j, 0.02 * j], axis=1) * (j < 13)


def gt_person(p2d: np.ndarray, p3d: np.ndarray, conf2d=None, conf3d=None) -> tuple[np.ndarray, np.ndarray]:
    """A person in the CRMH 24-joint layout. Unused slots hold decoys (2D inside the image with
    confidence 1, 3D far away) that a wrong joint map would pick up."""
    kp2d = np.tile([10.0, 10.0, 1.0], (24, 1))
    kp3d = np.tile([99.0, 99.0, 99.0, 1.0], (24, 1))
    kp2d[J14_IN_J24] = np.c_[p2d, np.ones(14) if conf2d is None else conf2d]
    kp3d[J14_IN_J24] = np.c_[p3d, np.ones(14) if conf3d is None else conf3d]
    return kp2d, kp3d


def gt_relative(p3d: np.ndarray) -> np.ndarray:
    """By hand: +(0, 0.06, 0.03) m on the 13 non-pelvis joints, then minus the pelvis."""
    adjusted = p3d.copy()
    adjusted[:13] += [0.0, 0.06, 0.03]
    return adjusted - adjusted[13]


def pred_person(p2d_px: np.ndarray, p3d_rel: np.ndarray, errors_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """joints (71, 3) and pj2d_org (71, 2): H36M-17 slots 54-70 set, decoys elsewhere; joint j
    of the 14 is moved by errors_mm[j] along x; the body is placed at PRED_ROOT."""
    joints = np.full((71, 3), 7.0)
    pj2d = np.full((71, 2), 5.0)
    moved = p3d_rel + np.c_[np.asarray(errors_mm) / 1000.0, np.zeros((14, 2))]
    joints[54 + np.array(J14_IN_J17)] = moved + PRED_ROOT
    pj2d[54 + np.array(J14_IN_J17)] = p2d_px
    return joints, pj2d


def frame(filename: str, people: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """A frame dict as CRMH's preprocessing writes it (832 x 512 padded canvas)."""
    kpts2d = np.array([p[0] for p in people])
    kpts3d = np.array([p[1] for p in people])
    return {"filename": filename, "width": 832, "height": 512,
            "bboxes": np.zeros((len(people), 4), int), "kpts2d": kpts2d, "kpts3d": kpts3d}


def write_pickle(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


TEN_TO_130 = 10.0 * np.r_[np.arange(1, 14), 0]  # 10, 20, ..., 130 mm; pelvis 0


def ramp(mm: float) -> np.ndarray:
    return np.r_[np.full(13, mm), 0.0]


# image -> (GT people, predicted people [(2D px, 3D rel, errors)])
def build_scene():
    a0, a1, a2 = pose2d(100, 100), pose2d(400, 455), pose2d(600, 465)
    # a1: y = 455 + 10 j -> joints 0-5 inside (y < 512), 6 joints: kept (> 5); its joint 0 has 2D
    # confidence 0, so the applied confidence test (fixed) leaves 5 -> dropped.
    # a2: y = 465 + 10 j -> joints 0-4 inside, 5 joints: dropped under both protocols.
    b0 = pose2d(200, 100)
    a0_3d, b0_3d = pose3d((0.5, 0.2, 3.0)), pose3d((-0.4, 0.1, 3.5))
    conf3d_b = np.ones(14)
    conf3d_b[[0, 1]] = [0.0, 0.15]  # invisible (< 0.2)
    conf3d_b[2] = 0.25  # visible
    conf2d_a1 = np.ones(14)
    conf2d_a1[0] = 0.0
    m0, u0, z0, z1 = pose2d(300, 200), pose2d(500, 150), pose2d(100, 300), pose2d(700, 50)
    m0_3d, u0_3d, z1_3d = pose3d((0.0, 0.0, 2.5)), pose3d((1.0, 0.3, 4.5)), pose3d((0.2, 0.0, 3.2))
    far = np.c_[1500 + 4.0 * (np.arange(14) % 5), 50 + 10.0 * np.arange(14)]  # overlaps nobody
    files = {
        "160422_haggling1.pkl": [
            frame("processed/160422_haggling1/00_16/00_16_00000001.png", [
                gt_person(a0, a0_3d), gt_person(a1, pose3d((1, 0, 3)), conf2d=conf2d_a1),
                gt_person(a2, pose3d((2, 0, 3)))]),
            frame("processed/160422_haggling1/00_16/00_16_00000002.png", [gt_person(b0, b0_3d, conf3d=conf3d_b)]),
        ],
        "160422_mafia2.pkl": [frame("processed/160422_mafia2/00_16/00_16_00000003.png", [gt_person(m0, m0_3d)])],
        "160422_ultimatum1.pkl": [
            frame("processed/160422_ultimatum1/00_16/00_16_00000004.png", [gt_person(u0, u0_3d)])],
        "160906_pizza1.pkl": [
            frame("processed/160906_pizza1/00_16/00_16_00000005.png", [gt_person(z0, pose3d((0, 0, 3)))]),
            frame("processed/160906_pizza1/00_16/00_16_00000006.png", [gt_person(z1, z1_3d)]),
        ],
    }
    preds = {
        "160422_haggling1-00_16_00000001.jpg": [
            (a0 * SCALE + 1.0, gt_relative(a0_3d), TEN_TO_130), (far, gt_relative(a0_3d), ramp(0))],
        "160422_haggling1-00_16_00000002.jpg": [(b0 * SCALE + [-2.0, 1.0], gt_relative(b0_3d), TEN_TO_130)],
        "160422_mafia2-00_16_00000003.jpg": [(m0 * SCALE - 1.5, gt_relative(m0_3d), ramp(20))],
        "160422_ultimatum1-00_16_00000004.jpg": [(u0 * SCALE + 0.5, gt_relative(u0_3d), ramp(14))],
        "160906_pizza1-00_16_00000006.jpg": [(z1 * SCALE, gt_relative(z1_3d), ramp(7))],
        "not_annotated.jpg": [(far, gt_relative(z1_3d), ramp(0))],
    }
    return files, preds


def write_results(root: Path, preds: dict, error_images: list[str]) -> Path:
    """A meshfleet results dataset (BEV, 11 betas) with one row per predicted person, plus error
    rows for ``error_images``."""
    refs, image_index, person, joints, pj2d = [], [], [], [], []
    for i, (image, people) in enumerate(preds.items()):
        refs.append(FrameRef(f"s3://bucket/cmu/images/{image}"))
        for k, (p2d, p3d, errors) in enumerate(people):
            j3, j2 = pred_person(p2d, p3d, errors)
            image_index.append(i)
            person.append(k)
            joints.append(j3)
            pj2d.append(j2)
    n = len(person)
    pred = Predictions(
        model="bev", image_index=np.array(image_index, np.int64), person=np.array(person, np.int32),
        center_conf=np.full(n, 0.5, np.float32), cam=np.zeros((n, 3), np.float32),
        cam_trans=np.zeros((n, 3), np.float32), smpl_thetas=np.zeros((n, 72), np.float32),
        smpl_betas=np.zeros((n, 11), np.float32), joints=np.array(joints, np.float32).reshape(-1, 71, 3),
        pj2d_org=np.array(pj2d, np.float32).reshape(-1, 71, 2), image_hw=np.tile([1080, 1920], (len(refs), 1)))
    schema = results_schema(11)
    table = predictions_table(pred, refs, schema)
    errors = error_table([FrameRef(f"s3://bucket/cmu/images/{e}") for e in error_images],
                         ["cannot decode"] * len(error_images), schema)
    out = root / "results"
    out.mkdir()
    pq.write_table(pa.concat_tables([table, errors]), out / "part-00000.parquet")
    return out


@pytest.fixture
def scene(tmp_path):
    files, preds = build_scene()
    for name, frames in files.items():
        write_pickle(tmp_path / "cmu" / "panoptic_annot" / name, frames)
    results = write_results(tmp_path, preds, ["160906_pizza1-00_16_00000005.jpg"])
    return tmp_path / "cmu", results


# By hand, per person (mm):
#   haggling frame 1: person 0 matched, errors 10..130 on 13 joints + 0 at the pelvis -> 910/14 = 65;
#                     person 1 (6 joints in image, one of them at 2D confidence 0): official kept and
#                     missed -> 150 (the only other prediction is far away); fixed dropped;
#                     person 2 (5 joints in image) dropped; prediction 1 is a false positive.
#   haggling frame 2: joints 0 (conf 0) and 1 (conf 0.15) invisible, errors 10 and 20 not counted:
#                     official (910 - 30)/14, fixed 880/12.
#   mafia: 13 x 20 / 14; ultimatum: 13 x 14 / 14 = 13; pizza: frame 5 is an error row -> 150,
#   frame 6: 13 x 7 / 14 = 6.5.
PEOPLE = {
    "official": {"haggling": [65.0, 150.0, 880 / 14], "mafia": [260 / 14], "ultimatum": [13.0],
                 "pizza": [150.0, 6.5]},
    "fixed": {"haggling": [65.0, 880 / 12], "mafia": [260 / 14], "ultimatum": [13.0], "pizza": [150.0, 6.5]},
}
COUNTS = {"official": (5, 2, 1), "fixed": (5, 1, 1)}


@pytest.mark.parametrize("protocol", ["official", "fixed"])
def test_metrics_match_hand_computed_values(scene, protocol):
    data, results = scene
    result = evaluate(EvalConfig("cmu-panoptic", str(results), protocol=protocol, data=str(data)))
    people = PEOPLE[protocol]
    everyone = [v for values in people.values() for v in values]
    expected = {f"mpjpe_{name}": sum(values) / len(values) for name, values in people.items()}
    expected["mpjpe_mean"] = sum(everyone) / len(everyone)
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-3), key
    matched, missed, fps = COUNTS[protocol]
    assert (result.metrics["matched"], result.metrics["missed"], result.metrics["false_positives"]) == (
        matched, missed, fps)
    assert set(result.metrics) == {"mpjpe_haggling", "mpjpe_mafia", "mpjpe_ultimatum", "mpjpe_pizza", "mpjpe_mean",
                                   "matched", "missed", "false_positives"}
    # spot values: official haggling = (65 + 150 + 62.857) / 3, overall = 465.93 / 7
    if protocol == "official":
        assert result.metrics["mpjpe_haggling"] == pytest.approx(92.6190, abs=1e-3)
        assert result.metrics["mpjpe_mean"] == pytest.approx(66.5612, abs=1e-3)
    else:
        assert result.metrics["mpjpe_haggling"] == pytest.approx(69.1667, abs=1e-3)
        assert result.metrics["mpjpe_mean"] == pytest.approx(54.4008, abs=1e-3)


@pytest.mark.parametrize("protocol", ["official", "fixed"])
def test_rows_and_plot(scene, protocol):
    data, results = scene
    result = evaluate(EvalConfig("cmu-panoptic", str(results), protocol=protocol, data=str(data)))
    rows = result.rows.set_index(["image", "gt_person"])
    first = "160422_haggling1-00_16_00000001.jpg"
    assert rows.loc[(first, 0), "status"] == "matched"
    assert rows.loc[(first, 0), "mpjpe_mm"] == pytest.approx(65.0, abs=1e-3)
    assert rows.loc[(first, 1), "status"] == ("missed" if protocol == "official" else "excluded")
    assert rows.loc[(first, 1), "in_image_joints"] == (6 if protocol == "official" else 5)
    assert rows.loc[(first, 2), "status"] == "excluded"
    assert rows.loc[("160422_haggling1-00_16_00000002.jpg", 0), "visible_joints"] == 12
    fp = result.rows[result.rows.status == "false_positive"]
    assert fp[["image", "pred_person"]].values.tolist() == [[first, 1]]
    assert set(result.rows.sequence) == {"haggling", "mafia", "ultimatum", "pizza"}
    assert result.plots["mpjpe_per_sequence.png"].startswith(b"\x89PNG")
    assert result.params["iou_thresh"] == 0.05 and result.params["miss_penalty_mm"] == 150.0


def test_prepare_gt_maps_scales_offsets_and_invalidates():
    p2d, p3d = pose2d(100, 100), pose3d((0.5, 0.2, 3.0))
    conf3d = np.ones(14)
    conf3d[4] = 0.1
    kp2d, kp3d = gt_person(p2d, p3d, conf3d=conf3d)
    gt = frame("processed/x_haggling1/00_00/00_00_00000000.png", [(kp2d, kp3d)])
    people = prepare_gt(FrameGT("x", "f.pkl", 832.0, 512.0, gt["kpts2d"], gt["kpts3d"]), "official")
    assert people.ids.tolist() == [0]
    np.testing.assert_allclose(people.kp2d[0], p2d * 1920 / 832)
    expected = p3d.copy()
    expected[4] = -2.0
    expected[:13] += [0.0, 0.06, 0.03]
    np.testing.assert_allclose(people.kp3d[0], expected)


def test_keypoint_box_iou_is_pixel_inclusive():
    a = np.array([[0.0, 0.0], [9.0, 9.0]])  # 10 x 10 px with the +1 convention
    b = np.array([[5.0, 5.0], [14.0, 14.0]])
    assert keypoint_box_iou(a, b) == pytest.approx(25 / 175)
    assert keypoint_box_iou(a, b + 100) == 0.0


def _figure(x0=100.0, y0=100.0) -> np.ndarray:
    j = np.arange(14)
    return np.stack([x0 + 10.0 * (j % 5), y0 + 10.0 * j], axis=1)


def test_matching_cost_is_the_largest_singular_value():
    pred = _figure()[None]
    g0 = pred[0] + [1.0, 0.0]  # Frobenius sqrt(14) = 3.74, spectral sqrt(14)
    shift = np.where((np.arange(14) % 2 == 0)[:, None], [1.2, 0.0], [0.0, 1.2])
    g1 = pred[0] + shift  # Frobenius 1.2 sqrt(14) = 4.49, spectral 1.2 sqrt(7) = 3.17
    gt = np.stack([g0, g1])
    valid = np.ones((2, 14), bool)
    np.testing.assert_allclose(spectral_cost(pred, gt, valid), [[np.sqrt(14), 1.2 * np.sqrt(7)]])
    m = match_greedy(pred, gt, valid)
    assert (m.pairs, m.false_positives, m.misses) == ([(0, 1)], [], [0])


def test_low_iou_counter_ends_matching_early():
    # GT 0 equals the prediction on its 6 valid joints (cost 0) but its 8 invalid joints at
    # x = -5000 widen its box: IoU = 41*131 / (5141*131) < 0.05, so the low-IoU counter reaches
    # the number of predictions and the loop stops before trying GT 1 (a perfect overlap).
    pred = _figure()[None]
    g0 = pred[0].copy()
    g0[6:, 0] = -5000.0
    g1 = pred[0] + 3.0
    valid = np.ones((2, 14), bool)
    valid[0, 6:] = False
    m = match_greedy(pred, np.stack([g0, g1]), valid)
    assert (m.pairs, m.false_positives, m.misses) == ([], [0], [0, 1])
    alone = match_greedy(pred, g1[None], np.ones((1, 14), bool))
    assert alone.pairs == [(0, 0)]


def _good_frame() -> dict:
    return frame("processed/160422_haggling1/00_16/00_16_00000001.png",
                 [gt_person(pose2d(100, 100), pose3d((0, 0, 3)))])


@pytest.mark.parametrize("corrupt, field", [
    (lambda f: f.pop("kpts3d"), "kpts3d"),
    (lambda f: f.update(kpts2d=np.zeros((1, 17, 3))), "kpts2d"),
    (lambda f: f.update(kpts3d=np.zeros((2, 24, 4))), "kpts3d"),
    (lambda f: f.update(kpts2d=[[1, 2, 3]]), "kpts2d"),
    (lambda f: f.update(filename="no_folder.png"), "filename"),
    (lambda f: f.update(width="832"), "width"),
])
def test_malformed_annotation_names_file_and_field(tmp_path, corrupt, field):
    bad = _good_frame()
    corrupt(bad)
    path = write_pickle(tmp_path / "panoptic_annot" / "160422_haggling1.pkl", [_good_frame(), bad])
    with pytest.raises(EvalError) as err:
        load_annotation_file(str(path))
    assert str(path) in str(err.value) and field in str(err.value) and "frame 1" in str(err.value)


def test_malformed_annotation_container_and_bytes(tmp_path):
    path = write_pickle(tmp_path / "a.pkl", {"filename": "x"})
    with pytest.raises(EvalError, match="a.pkl.*list"):
        load_annotation_file(str(path))
    junk = tmp_path / "b.pkl"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(EvalError, match="b.pkl"):
        load_annotation_file(str(junk))


class _Payload:
    def __init__(self, victim: str):
        self.victim = victim

    def __reduce__(self):
        return (os.remove, (self.victim,))


def test_unsafe_pickle_is_refused_without_running_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path = write_pickle(tmp_path / "cmu" / "panoptic_annot" / "evil.pkl", [_Payload(str(victim))])
    with pytest.raises(UnsafePickleError, match="evil.pkl"):
        load_annotation_file(str(path))
    assert victim.exists()


def test_empty_frame_and_missing_inputs(tmp_path):
    # CRMH writes np.array([]) for a frame without people: zero GT people, nothing scored.
    empty = {"filename": "processed/160422_mafia2/00_16/00_16_00000009.png", "width": 832, "height": 512,
             "kpts2d": np.array([]), "kpts3d": np.array([])}
    path = write_pickle(tmp_path / "cmu" / "panoptic_annot" / "160422_mafia2.pkl", [empty])
    assert len(load_annotation_file(str(path))[0].kpts2d) == 0
    results = write_results(tmp_path, {"160422_mafia2-00_16_00000009.jpg": []}, [])
    with pytest.raises(EvalError, match="--data"):
        evaluate(EvalConfig("cmu-panoptic", str(results)))
    with pytest.raises(EvalError, match="panoptic_annot"):
        evaluate(EvalConfig("cmu-panoptic", str(results), data=str(tmp_path / "nowhere")))
    with pytest.raises(EvalError, match="parquet"):
        evaluate(EvalConfig("cmu-panoptic", str(tmp_path / "cmu"), data=str(tmp_path / "cmu")))


def test_predictions_with_wrong_joint_count_are_refused(tmp_path):
    (tmp_path / "cmu" / "panoptic_annot").mkdir(parents=True)
    write_pickle(tmp_path / "cmu" / "panoptic_annot" / "160422_mafia2.pkl", [_good_frame()])
    f32 = pa.float32()
    table = pa.table({
        "source": pa.array(["a.jpg"]), "frame": pa.array([0], pa.int64()), "person": pa.array([0], pa.int32()),
        "joints": pa.array([np.zeros((24, 3)).tolist()], pa.list_(pa.list_(f32, 3), 24)),
        "pj2d_org": pa.array([np.zeros((71, 2)).tolist()], pa.list_(pa.list_(f32, 2), 71)),
        "error": pa.nulls(1, pa.string()),
    })
    (tmp_path / "res").mkdir()
    pq.write_table(table, tmp_path / "res" / "part-0.parquet")
    with pytest.raises(EvalError, match="res.*'joints'"):
        evaluate(EvalConfig("cmu-panoptic", str(tmp_path / "res"), data=str(tmp_path / "cmu")))


def test_flat_list_columns_read_like_nested_ones(scene, tmp_path):
    data, results = scene
    table = pq.read_table(results)
    for name in ("joints", "pj2d_org"):
        flat = table.column(name).combine_chunks().flatten().flatten()
        width = 3 if name == "joints" else 2
        column = pa.ListArray.from_arrays(pa.array(np.arange(table.num_rows + 1) * 71 * width, pa.int32()), flat)
        table = table.set_column(table.schema.get_field_index(name), name, column)
    (tmp_path / "flat").mkdir()
    pq.write_table(table, tmp_path / "flat" / "part-0.parquet")
    nested = evaluate(EvalConfig("cmu-panoptic", str(results), data=str(data))).metrics
    assert evaluate(EvalConfig("cmu-panoptic", str(tmp_path / "flat"), data=str(data))).metrics == nested


def test_results_without_optional_columns(scene, tmp_path):
    """A table that follows the documented schema but has no error / timestamp / track_id columns."""
    data, results = scene
    table = pq.read_table(results)
    bare = table.filter(table.column("error").is_null()).drop_columns(["error", "timestamp", "track_id"])
    (tmp_path / "bare").mkdir()
    pq.write_table(bare, tmp_path / "bare" / "part-0.parquet")
    expected = evaluate(EvalConfig("cmu-panoptic", str(results), data=str(data))).metrics
    assert evaluate(EvalConfig("cmu-panoptic", str(tmp_path / "bare"), data=str(data))).metrics == expected
