"""AGORA evaluator: official on-disk formats built here, metrics checked against hand-computed values.

The scene (3840x2160 px, metres), written as two ground-truth dataframes and one prediction file
per person:

* imgA: g0 adult (occlusion 20 %) matched by an adult prediction whose GT differs only in joint 5
  (3-4-0 cm) and in every body vertex (0-6-8 mm): MPJPE 50/24 mm, MVE 10 mm under both protocols.
  g1 (50 %) has no prediction: a miss. g2 is 95 % occluded (isValid False): excluded; a prediction
  on it and one in empty space are false positives.
* imgB: one kid (5 %) matched by a kid prediction (kid_flag, 11 betas) whose GT differs only in
  joint 1 (2 cm): official (root = mid-hips) every joint and vertex is 10 mm off -> 10 / 10 mm;
  fixed (root = joint 0) only joint 1 is 20 mm off -> 20/24 mm and 0 mm.
* imgC (second dataframe): g0 (30 %) without predictions -> miss; g1 is isValid but 95 % occluded:
  the official counter counts it (a miss), fixed excludes it.

Predicted joints and vertices come from smplx's own SMPL class (with age='kid' and the kid
template), not from the evaluator.
"""

from __future__ import annotations

import copyreg
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import smplx
import torch

from core.smpl_pickle import UnsafePickleError, load_model_pickle
from eval.agora import AgoraBodyModels, evaluate, keypoint_box_iou, match_fixed, match_official, summarize
from eval.agora_format import (
    FRAME_CLASSES,
    load_dataframe,
    load_prediction,
    order_person_files,
    person_file_key,
    write_predictions,
)
from eval.common import EvalConfig, EvalError
from pipelines.schema import array_column, results_schema

BODY_VERTS = np.arange(0, 6890, 3)
RNG = np.random.default_rng(7)


# -- building the official files -------------------------------------------------------------------

def person_2d(center: tuple[float, float], radius: float) -> np.ndarray:
    """(45, 2) px: 24 body joints on a circle, the 21 extra SMPL joints inside the same box."""
    angles = np.linspace(0.0, 2 * np.pi, 24, endpoint=False)
    body = np.stack([np.cos(angles), np.sin(angles)], axis=1) * radius + np.array(center)
    return np.concatenate([body, 0.5 * body[:21] + 0.5 * np.array(center)], axis=0)


def smpl_reference(body_model_dir: Path, kid: bool) -> smplx.SMPL:
    """smplx's SMPL class (what the official evaluator calls), on the synthetic model files."""
    struct = smplx.utils.Struct(**load_model_pickle(body_model_dir / "SMPL_NEUTRAL.pkl"))
    if kid:
        return smplx.SMPL(str(body_model_dir), data_struct=struct, age="kid",
                          kid_template_path=str(body_model_dir / "smpl_kid_template.npy"))
    return smplx.SMPL(str(body_model_dir), data_struct=struct)


def random_params(num_betas: int, kid_offset: float = 0.0) -> dict[str, np.ndarray]:
    betas = RNG.normal(0.0, 0.5, (1, num_betas)).astype(np.float32)
    if num_betas == 11:
        betas[0, 10] = kid_offset
    return {"global_orient": RNG.normal(0.0, 0.3, (1, 1, 3)).astype(np.float32),
            "body_pose": RNG.normal(0.0, 0.2, (1, 23, 3)).astype(np.float32), "betas": betas,
            "transl": np.array([[0.1, 0.2, 5.0]], np.float32)}


def reference_body(model: smplx.SMPL, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(45, 3) joints and (6890, 3) vertices with translation, as the official get_smpl_vertices."""
    with torch.no_grad():
        out = model(**{k: torch.tensor(v, dtype=torch.float) for k, v in params.items()})
    return out.joints[0].numpy(), out.vertices[0].numpy()


def gt_row(img: str, people: list[dict]) -> dict:
    """One dataframe row (image) from per-person dicts."""
    row: dict = {"imgPath": img, "camYaw": 0.0, "camX": 1.0, "camY": 2.0, "camZ": 3.0}
    for field in ("isValid", "occlusion", "kid", "Yaw", "gt_joints_2d", "gt_joints_3d", "gt_verts"):
        row[field] = [p[field] for p in people]
    return row


def gt_person(joints2d: np.ndarray, occlusion: float, kid: bool = False, valid: bool | None = None,
              joints3d: np.ndarray | None = None, verts: np.ndarray | None = None) -> dict:
    return {"isValid": bool(0 <= occlusion <= 90) if valid is None else valid, "occlusion": occlusion,
            "kid": kid, "Yaw": 100.0, "gt_joints_2d": joints2d,
            "gt_joints_3d": joints3d if joints3d is not None else RNG.normal(0, 1, (45, 3)),
            "gt_verts": verts if verts is not None else RNG.normal(0, 1, (6890, 3))}


def write_pred(folder: Path, name: str, params: dict | None, joints2d: np.ndarray, **flags) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"params": params, "pose2rot": True, "joints": joints2d.astype(np.float32), **flags}
    if params is None:
        payload.pop("params")
    path = folder / name
    path.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory, body_model_dir) -> dict:
    root = tmp_path_factory.mktemp("agora")
    data, preds = root / "data", root / "predictions"
    (data / "gt_dataframe_smpl").mkdir(parents=True)
    (data / "utils").mkdir()
    np.save(data / "utils" / "body_verts_smpl.npy", BODY_VERTS)
    adult, kid = smpl_reference(body_model_dir, False), smpl_reference(body_model_dir, True)
    shift = np.array([1.0, -0.5, 2.0])  # GT camera frame differs from the predicted translation

    a0_2d, a1_2d, a2_2d = person_2d((600, 800), 150), person_2d((2000, 900), 150), person_2d((3000, 1200), 120)
    p0 = random_params(10)
    j, v = reference_body(adult, p0)
    a0_j3d = j.astype(np.float64) + shift
    a0_j3d[5] += [0.03, 0.04, 0.0]
    a0_v = v.astype(np.float64) + shift + [0.0, 0.006, 0.008]
    write_pred(preds, "imgA_personId_0.pkl", p0, a0_2d[:24] + 1.0)
    write_pred(preds, "imgA_personId_1.pkl", random_params(10), a2_2d[:24] + 2.0)
    write_pred(preds, "imgA_personId_2.pkl", random_params(10), person_2d((1000, 1800), 100)[:24])

    b0_2d = person_2d((1500, 1000), 80)
    pk = random_params(11, kid_offset=0.6)
    j, v = reference_body(kid, pk)
    b0_j3d = j.astype(np.float64) + shift
    b0_j3d[1] += [0.02, 0.0, 0.0]
    b0_v = v.astype(np.float64) + shift
    write_pred(preds, "imgB_personId_0.pkl", pk, b0_2d[:24] - 1.5, kid_flag=True, age="kid", num_betas=11)

    frame_ab = pd.DataFrame([
        gt_row("imgA.png", [gt_person(a0_2d, 20.0, joints3d=a0_j3d, verts=a0_v), gt_person(a1_2d, 50.0),
                            gt_person(a2_2d, 95.0)]),
        gt_row("imgB.png", [gt_person(b0_2d, 5.0, kid=True, joints3d=b0_j3d, verts=b0_v)]),
    ])
    frame_c = pd.DataFrame([gt_row("imgC.png", [gt_person(person_2d((900, 900), 100), 30.0),
                                                gt_person(person_2d((2900, 900), 100), 95.0, valid=True)])])
    frame_ab.to_pickle(data / "gt_dataframe_smpl" / "validation_0_withjv.pkl")
    frame_c.to_pickle(data / "gt_dataframe_smpl" / "validation_1_withjv.pkl")
    return {"data": data, "preds": preds, "body_models": body_model_dir, "frame": frame_ab}


def run(scene: dict, protocol: str, predictions: str | None = None):
    return evaluate(EvalConfig(benchmark="agora", predictions=predictions or str(scene["preds"]),
                               protocol=protocol, data=str(scene["data"]), body_models=str(scene["body_models"])))


# -- end to end ------------------------------------------------------------------------------------

def test_official_metrics_by_hand(scene):
    result = run(scene, "official")
    # counted (isValid): A.g0, A.g1, B.g0, C.g0, C.g1 = 5; misses A.g1, C.g0, C.g1 = 3; FP 2.
    expected = {
        "true_positives": 2.0, "false_negatives": 3.0, "false_positives": 2.0,
        "precision": 0.5, "recall": 0.4, "f1": 0.44,  # 2 / (2 + 0.5 * 5) = 0.444
        "mpjpe": 6.0, "mve": 10.0,  # mean(50/24, 10) = 6.04; mean(10, 10)
        "nmje": 13.6, "nmve": 22.7,  # from the rounded values: 6.0/0.44, 10.0/0.44 (unrounded: 22.5)
        "kid_precision": 0.33, "kid_recall": 1.0, "kid_f1": 0.5,  # 1 kid TP, every FP charged
        "kid_mpjpe": 10.0, "kid_mve": 10.0, "kid_nmje": 20.0, "kid_nmve": 20.0,
    }
    assert result.metrics == expected
    rows = result.rows.set_index(["image", "gt_person"])
    assert rows.loc[("imgA.png", 0), "mpjpe"] == pytest.approx(50 / 24, abs=1e-3)
    assert rows.loc[("imgA.png", 0), "mve"] == pytest.approx(10.0, abs=1e-3)
    assert rows.loc[("imgA.png", 2), "status"] == "excluded" and not rows.loc[("imgA.png", 2), "counted"]
    assert rows.loc[("imgC.png", 1), "status"] == "excluded" and rows.loc[("imgC.png", 1), "missed"]
    assert set(result.rows.loc[result.rows["status"] == "false_positive", "prediction"]) == \
        {"imgA_personId_1.pkl", "imgA_personId_2.pkl"}
    assert result.plots["agora_error_vs_occlusion.png"].startswith(b"\x89PNG")
    assert result.params["prediction_format"] == "official-folder"


def test_fixed_metrics_by_hand(scene):
    m = run(scene, "fixed").metrics
    # valid GT: A.g0, A.g1, B.g0, C.g0 = 4 (C.g1 is 95 % occluded); misses A.g1, C.g0; FP 2.
    assert (m["true_positives"], m["false_negatives"], m["false_positives"]) == (2.0, 2.0, 2.0)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5) and m["f1"] == pytest.approx(0.5)
    kid_mpjpe = 20 / 24  # root = joint 0: only joint 1 is off, by 20 mm; vertices exact
    assert m["mpjpe"] == pytest.approx((50 / 24 + kid_mpjpe) / 2, abs=1e-4)
    assert m["mve"] == pytest.approx((10.0 + 0.0) / 2, abs=1e-4)
    assert m["pa_mpjpe"] > 0.0
    assert m["nmje"] == pytest.approx((50 / 24 + kid_mpjpe) / 2 / 0.5, abs=1e-4)
    assert m["nmve"] == pytest.approx(10.0, abs=1e-4)
    assert m["kid_precision"] == pytest.approx(1 / 3) and m["kid_recall"] == 1.0 and m["kid_f1"] == pytest.approx(0.5)
    assert m["kid_mpjpe"] == pytest.approx(kid_mpjpe, abs=1e-4) and m["kid_mve"] == pytest.approx(0.0, abs=1e-4)
    assert m["kid_nmje"] == pytest.approx(kid_mpjpe / 0.5, abs=1e-4)


def test_metric_keys(scene):
    keys = {"f1", "precision", "recall", "mpjpe", "mve", "nmje", "nmve", "kid_f1", "kid_precision", "kid_recall",
            "kid_mpjpe", "kid_mve", "kid_nmje", "kid_nmve", "true_positives", "false_negatives", "false_positives"}
    assert set(run(scene, "official").metrics) == keys


def test_no_predictions_for_a_dataframe_counts_misses(scene, tmp_path):
    preds = tmp_path / "only_b"
    preds.mkdir()
    (preds / "imgB_personId_0.pkl").write_bytes((scene["preds"] / "imgB_personId_0.pkl").read_bytes())
    m = run(scene, "official", str(preds)).metrics
    assert (m["true_positives"], m["false_negatives"], m["false_positives"]) == (1.0, 4.0, 0.0)
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 0.2, 0.33)  # 1 / (1 + 2) = 0.333
    assert m["mpjpe"] == 10.0 and m["nmje"] == 30.3  # 10.0 / 0.33


# -- body models -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kid", [False, True])
def test_forward_equals_smplx(body_model_dir, kid):
    """The evaluator's SMPL / kid model gives bit-identical joints and vertices to smplx's class."""
    from eval.agora_format import parse_prediction

    models = AgoraBodyModels(str(body_model_dir), str(body_model_dir / "smpl_kid_template.npy"))
    params = random_params(11 if kid else 10, kid_offset=0.7)
    person = parse_prediction({"params": params, "joints": np.zeros((24, 2))}, "mem")
    joints, verts = models.forward(person, kid)
    ref_joints, ref_verts = reference_body(smpl_reference(body_model_dir, kid), params)
    assert np.array_equal(joints, ref_joints[:24]) and np.array_equal(verts, ref_verts)


def test_rotation_matrix_params_give_the_same_body(body_model_dir):
    from eval.agora_format import parse_prediction

    models = AgoraBodyModels(str(body_model_dir), str(body_model_dir / "smpl_kid_template.npy"))
    params = random_params(10)
    rotmats = {k: smplx.lbs.batch_rodrigues(torch.tensor(params[k]).reshape(-1, 3)).numpy()[None]
               for k in ("global_orient", "body_pose")}
    vector = parse_prediction({"params": params, "joints": np.zeros((24, 2))}, "mem")
    matrix = parse_prediction({"params": {**params, **rotmats}, "pose2rot": False, "joints": np.zeros((24, 2))}, "mem")
    assert rotmats["body_pose"].shape == (1, 23, 3, 3)
    for a, b in zip(models.forward(vector, False), models.forward(matrix, False), strict=True):
        assert np.array_equal(a, b)


def test_joints_and_vertices_given_directly(scene, tmp_path):
    """allSmplJoints3d + verts need no body model: the kid of imgB scores 10 / 10 mm officially."""
    kid_model = smpl_reference(scene["body_models"], True)
    params = pickle.loads((scene["preds"] / "imgB_personId_0.pkl").read_bytes())["params"]
    joints, verts = reference_body(kid_model, params)
    preds = tmp_path / "direct"
    write_pred(preds, "imgB_personId_0.pkl", None, person_2d((1500, 1000), 80)[:24], allSmplJoints3d=joints,
               verts=verts)
    cfg = EvalConfig(benchmark="agora", predictions=str(preds), data=str(scene["data"]))
    m = evaluate(cfg).metrics
    assert (m["kid_mpjpe"], m["kid_mve"], m["true_positives"], m["false_positives"]) == (10.0, 10.0, 1.0, 0.0)


def test_params_without_body_models_is_an_error(scene):
    cfg = EvalConfig(benchmark="agora", predictions=str(scene["preds"]), data=str(scene["data"]))
    with pytest.raises(EvalError, match="--body-models"):
        evaluate(cfg)


# -- matching --------------------------------------------------------------------------------------

def test_cost_is_spectral_norm_officially():
    """Pred B: half the joints 2 px right, half 2 px down (singular values 6.9, 6.9; Frobenius 9.8);
    pred C: every joint 1.8 px right (rank 1: both norms 8.8). Official picks B, fixed picks C."""
    gt = person_2d((1000, 1000), 100)
    offsets = np.zeros((24, 2))
    offsets[:12, 0], offsets[12:, 1] = 2.0, 2.0
    pred_b, pred_c = gt[:24] + offsets, gt[:24] + [1.8, 0.0]
    valid = np.array([True])
    assert match_official([pred_b, pred_c], [gt], valid).pairs == [(0, 0)]
    assert match_fixed([pred_b, pred_c], [gt], valid).pairs == [(1, 0)]


def test_iou_uses_45_gt_points_officially():
    """The 21 extra GT joints spread to a 1001 px box: IoU with the 24-joint box (101 px) is
    101^2 / 1001^2 = 0.0102 < 0.1 officially; 1.0 between the 24-joint boxes (fixed)."""
    gt = person_2d((1000, 1000), 50)
    gt[24:] = np.array([[500.0, 500.0], [1500.0, 1500.0]] * 10 + [[500.0, 1500.0]])
    pred = gt[:24].copy()
    assert keypoint_box_iou(pred, gt) == pytest.approx(101 ** 2 / 1001 ** 2)
    assert match_official([pred], [gt], np.array([True])).pairs == []
    assert match_fixed([pred], [gt], np.array([True])).pairs == [(0, 0)]


def test_invalid_gt_consumed_inside_the_loop():
    """g0 (invalid) lies on the prediction but its 45-point box is huge (IoU < 0.1): the official
    loop counts that pair as a rejection, which ends the loop (1 rejection = 1 prediction) before
    the prediction can meet g1 (IoU 0.6). Fixed drops g0 first and matches g1."""
    g0 = person_2d((1000, 1000), 50)
    g0[24:] = np.array([[0.0, 0.0], [2000.0, 2000.0]] * 10 + [[0.0, 2000.0]])
    g1 = person_2d((1020, 1000), 50)
    pred = g0[:24].copy()
    valid = np.array([False, True])
    official = match_official([pred], [g0, g1], valid)
    assert official.pairs == [] and official.false_positives == [0] and official.invalid == [0]
    assert match_fixed([pred], [g0, g1], valid).pairs == [(0, 1)]


def test_ties_go_to_the_first_prediction_in_file_order():
    gt = person_2d((1000, 1000), 100)
    same = gt[:24] + 1.0
    assert match_official([same, same.copy()], [gt], np.array([True])).pairs == [(0, 0)]
    names = ["imgA_personId_2.pkl", "imgA_personId_10.pkl", "imgA_personId_1.pkl"]
    assert order_person_files(names, "official") == ["imgA_personId_1.pkl", "imgA_personId_10.pkl",
                                                     "imgA_personId_2.pkl"]
    assert order_person_files(names, "fixed") == ["imgA_personId_1.pkl", "imgA_personId_2.pkl",
                                                  "imgA_personId_10.pkl"]


def test_prediction_file_names():
    assert person_file_key("ag_x_00001_personId_3.pkl", "official") == ("ag_x_00001.png", 3)
    assert person_file_key("ag_x_00001_1280x720_personId_3.pkl", "official") == ("ag_x_00001_1280x720.png", 3)
    assert person_file_key("ag_x_00001_1280x720_personId_3.pkl", "fixed") == ("ag_x_00001.png", 3)
    assert person_file_key("notes.pkl", "official") is None


# -- rounding --------------------------------------------------------------------------------------

def records(errors: list[float], misses: int, kid: bool = False) -> pd.DataFrame:
    rows = [{"counted": True, "missed": False, "kid": kid, "mpjpe": e, "mve": e} for e in errors]
    rows += [{"counted": True, "missed": True, "kid": kid, "mpjpe": np.nan, "mve": np.nan}] * misses
    return pd.DataFrame(rows)


def test_official_rounding():
    """Errors: numpy rounding (0.35 -> 0.4; Python's round gives 0.3). P/R/F1: Python's round
    (F1 = 1/40 = 0.025 -> 0.03; numpy gives 0.02). NMJE from the rounded values: 0.4 / 0.03."""
    m = summarize(records([0.35], misses=78), false_positives=0, protocol="official")
    assert m["mpjpe"] == 0.4 and m["f1"] == 0.03 and m["recall"] == 0.01 and m["precision"] == 1.0
    assert m["nmje"] == 13.3  # round(0.4 / 0.03, 1); unrounded 0.35 / 0.025 = 14.0
    fixed = summarize(records([0.35], misses=78), false_positives=0, protocol="fixed")
    assert fixed["f1"] == pytest.approx(0.025) and fixed["nmje"] == pytest.approx(14.0)


def test_kid_metrics_are_nan_without_kids():
    m = summarize(records([5.0], misses=0), false_positives=1, protocol="official")
    assert np.isnan(m["kid_f1"]) and np.isnan(m["kid_mpjpe"]) and m["f1"] == 0.67


# -- formats ---------------------------------------------------------------------------------------

def test_dataframe_round_trip(scene):
    path = scene["data"] / "gt_dataframe_smpl" / "validation_0_withjv.pkl"
    pd.testing.assert_frame_equal(load_dataframe(str(path)), pd.read_pickle(path))


def legacy_pandas10_pickle(frame: pd.DataFrame) -> bytes:
    """``frame`` as pandas 1.0.x pickled DataFrames (AGORA's era), protocol 2: NEWOBJ DataFrame
    with state {'_data': BlockManager, ...}; NEWOBJ BlockManager without arguments and the
    '0.14.1' state tuple; indexes via _new_Index (Int64Index rows); numpy.core paths."""
    module = types.ModuleType("legacy_pd")

    class State:
        def __init__(self, state):
            self.state = state

        def __reduce__(self):
            return copyreg.__newobj__, (type(self),), self.state

    class LegacyIndex:
        def __init__(self, data):
            self.data = data

        def __reduce__(self):
            return module._new_Index, (type(self), {"data": self.data, "name": None}), None

    def _new_Index(cls, d):  # pragma: no cover - only named in the pickle
        raise AssertionError

    classes = {"DataFrame": State, "BlockManager": State, "Index": LegacyIndex, "Int64Index": LegacyIndex}
    for name, base in classes.items():
        cls = type(name, (base,), {"__module__": "legacy_pd", "__qualname__": name})
        setattr(module, name, cls)
    _new_Index.__module__, _new_Index.__qualname__ = "legacy_pd", "_new_Index"
    module._new_Index = _new_Index
    blocks, values, items = [], [], []
    for is_float in (True, False):
        locs = [i for i, c in enumerate(frame.columns) if (frame[c].dtype == np.float64) == is_float]
        block = np.array([frame.iloc[:, i].to_numpy(dtype=np.float64 if is_float else object) for i in locs],
                         dtype=np.float64 if is_float else object)
        blocks.append({"values": block, "mgr_locs": np.array(locs, dtype=np.int64)})
        values.append(block)
        items.append(module.Index(np.array([frame.columns[i] for i in locs], dtype=object)))
    axes = [module.Index(np.array(list(frame.columns), dtype=object)),
            module.Int64Index(np.asarray(frame.index, dtype=np.int64))]
    manager = module.BlockManager((axes, values, items, {"0.14.1": {"axes": axes, "blocks": blocks}}))
    df = module.DataFrame({"_data": manager, "_typ": "dataframe", "_metadata": [], "attrs": {}})
    sys.modules["legacy_pd"] = module
    try:
        blob = pickle.dumps(df, protocol=2)
    finally:
        del sys.modules["legacy_pd"]
    for name, where in (("DataFrame", "pandas.core.frame"), ("BlockManager", "pandas.core.internals.managers"),
                        ("_new_Index", "pandas.core.indexes.base"), ("Index", "pandas.core.indexes.base"),
                        ("Int64Index", "pandas.core.indexes.numeric")):
        blob = blob.replace(f"clegacy_pd\n{name}\n".encode(), f"c{where}\n{name}\n".encode())
    return blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def test_pandas10_dataframe_layout(tmp_path, scene):
    frame = scene["frame"].copy()
    frame["imgPath"] = frame["imgPath"].astype(object)
    frame.index = [4, 9]
    path = tmp_path / "validation_0_withjv.pkl"
    path.write_bytes(legacy_pandas10_pickle(frame))
    loaded = load_dataframe(str(path))
    pd.testing.assert_frame_equal(loaded, pd.read_pickle(path))  # pandas' own compat reads the same
    assert list(loaded.index) == [4, 9] and loaded["imgPath"].tolist() == ["imgA.png", "imgB.png"]
    assert np.array_equal(loaded["gt_verts"].iloc[0][0], frame["gt_verts"].iloc[0][0])


def test_frame_allow_list_is_only_pandas_and_arrow():
    assert all(m.split(".")[0] in ("pandas", "pyarrow", "builtins", "__builtin__") for m, _ in FRAME_CLASSES)


EVIL = b"cos\nsystem\n(S'echo owned'\ntR."


def test_unsafe_pickles_refused(tmp_path):
    bad = tmp_path / "imgA_personId_0.pkl"
    bad.write_bytes(EVIL)
    with pytest.raises(UnsafePickleError, match=r"imgA_personId_0\.pkl.*os\.system"):
        load_prediction(str(bad))
    frame = tmp_path / "validation_0_withjv.pkl"
    frame.write_bytes(EVIL)
    with pytest.raises(UnsafePickleError, match=r"validation_0_withjv\.pkl.*os\.system"):
        load_dataframe(str(frame))


@pytest.mark.parametrize(("payload", "field"), [
    ({"params": {}}, "joints"),
    ({"joints": np.zeros((24, 2))}, "params"),
    ({"joints": np.zeros((24, 2)), "params": {"global_orient": np.zeros((1, 1, 3)), "body_pose": np.zeros((1, 23, 3)),
                                               "transl": np.zeros((1, 3))}}, "params.betas"),
    ({"joints": np.zeros((10, 2)), "params": {}}, "joints"),
])
def test_malformed_prediction_names_file_and_field(tmp_path, payload, field):
    path = tmp_path / "imgA_personId_0.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(EvalError, match=rf"imgA_personId_0\.pkl.*'{field}'"):
        load_prediction(str(path))


def test_malformed_dataframe_names_file_and_field(tmp_path, scene):
    data = tmp_path / "data"
    (data / "gt_dataframe_smpl").mkdir(parents=True)
    (data / "utils").mkdir()
    np.save(data / "utils" / "body_verts_smpl.npy", BODY_VERTS)
    scene["frame"].drop(columns=["occlusion"]).to_pickle(data / "gt_dataframe_smpl" / "test_0_withjv.pkl")
    cfg = EvalConfig(benchmark="agora", predictions=str(scene["preds"]), data=str(data))
    with pytest.raises(EvalError, match=r"test_0_withjv\.pkl.*occlusion"):
        evaluate(cfg)
    frame = scene["frame"].copy()
    frame.at[1, "kid"] = [True, False]  # two kid flags for one person
    frame.to_pickle(data / "gt_dataframe_smpl" / "test_0_withjv.pkl")
    with pytest.raises(EvalError, match=r"test_0_withjv\.pkl \(imgPath imgB\.png\).*'kid'"):
        evaluate(cfg)


def test_kid_flag_without_11_betas_is_refused_officially(scene, tmp_path):
    preds = tmp_path / "preds"
    params = random_params(10)
    write_pred(preds, "imgB_personId_0.pkl", params, person_2d((1500, 1000), 80)[:24], kid_flag=True)
    with pytest.raises(EvalError, match=r"imgB_personId_0\.pkl.*params\.betas.*11"):
        run(scene, "official", str(preds))
    assert run(scene, "fixed", str(preds)).metrics["true_positives"] == 1.0  # padded with a zero 11th beta


# -- writing the official format -------------------------------------------------------------------

def write_results(path: Path, people: list[dict]) -> Path:
    """A meshfleet results dataset (one Parquet file) holding ``people``."""
    schema = results_schema(11)
    n = len(people)
    columns = {
        "source": pa.array([p["source"] for p in people]), "frame": pa.array([0] * n, pa.int64()),
        "timestamp": pa.nulls(n, pa.float64()), "person": pa.array([p["person"] for p in people], pa.int32()),
        "track_id": pa.nulls(n, pa.int64()), "model": pa.array(["bev"] * n),
        "center_conf": pa.array([0.9] * n, pa.float32()),
        "image_height": pa.array([720] * n, pa.int32()), "image_width": pa.array([1280] * n, pa.int32()),
        "error": pa.nulls(n, pa.string()),
    }
    for name, shape in (("cam", (3,)), ("joints", (71, 3))):
        columns[name] = array_column(np.zeros((n, *shape)), schema.field(name).type)
    for name in ("cam_trans", "smpl_thetas", "smpl_betas", "pj2d_org"):
        columns[name] = array_column(np.stack([p[name] for p in people]), schema.field(name).type)
    path.mkdir(parents=True)
    pq.write_table(pa.Table.from_arrays([columns[f] for f in schema.names], schema=schema), path / "part-0.parquet")
    return path


def bev_person(source: str, person: int, params: dict, joints_4k: np.ndarray) -> dict:
    pj2d = np.zeros((71, 2), np.float32)
    pj2d[:24] = joints_4k / 3.0 - 1.0  # BEV's script writes (pj2d_org + 1) * 3840 / 1280
    thetas = np.concatenate([params["global_orient"].reshape(3), params["body_pose"].reshape(69)])
    return {"source": source, "person": person, "smpl_thetas": thetas, "smpl_betas": params["betas"].reshape(11),
            "cam_trans": params["transl"].reshape(3), "pj2d_org": pj2d}


def test_write_predictions_and_evaluate_results(scene, tmp_path):
    a0 = scene["frame"].iloc[0]["gt_joints_2d"][0]
    b0 = scene["frame"].iloc[1]["gt_joints_2d"][0]
    people = [bev_person("s3dir/imgA_1280x720.png", 0, random_params(11, 0.0), a0[:24]),
              bev_person("s3dir/imgA_1280x720.png", 1, random_params(11, 0.0), person_2d((200, 200), 50)[:24]),
              bev_person("s3dir/imgB_1280x720.png", 0, random_params(11, 0.6), b0[:24])]
    results = write_results(tmp_path / "results", people)
    out, archive = tmp_path / "official", tmp_path / "predictions.zip"
    assert write_predictions(str(results), str(out), str(archive)) == 3
    names = sorted(p.name for p in out.iterdir())
    assert names == ["imgA_personId_0.pkl", "imgA_personId_1.pkl", "imgB_personId_0.pkl"]
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == [f"predictions/{n}" for n in names]
    written = pickle.loads((out / "imgB_personId_0.pkl").read_bytes())
    assert b"numpy._core" not in (out / "imgB_personId_0.pkl").read_bytes()  # readable by numpy 1.x
    pj2d = people[2]["pj2d_org"][:24]
    assert np.array_equal(written["joints"], (pj2d + 1) * 3840 / 1280.0)
    assert written["joints"].dtype == np.float32 and written["joints"] == pytest.approx(b0[:24], abs=1e-3)
    assert (written["num_betas"], written["age"], written["kid_flag"], written["gender"], written["pose2rot"]) == \
        (11, "kid", True, "neutral", True)
    assert written["params"]["betas"].shape == (1, 11) and written["params"]["global_orient"].shape == (1, 1, 3)
    assert written["params"]["body_pose"].shape == (1, 23, 3)
    assert np.array_equal(written["params"]["transl"], people[2]["cam_trans"][None])
    fixed_dir = tmp_path / "fixed"
    write_predictions(str(results), str(fixed_dir), protocol="fixed")
    fixed = pickle.loads((fixed_dir / "imgB_personId_0.pkl").read_bytes())
    assert fixed["joints"] == pytest.approx(pj2d * 3.0)  # no +1

    from_results = run(scene, "official", str(results))
    from_folder = run(scene, "official", str(out))
    assert from_results.metrics == from_folder.metrics
    assert from_results.params["prediction_format"] == "meshfleet-results"
    assert (from_results.metrics["true_positives"], from_results.metrics["false_positives"]) == (2.0, 1.0)


def test_zip_of_predictions_equals_the_folder(scene, tmp_path):
    archive = tmp_path / "submission.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(scene["preds"].iterdir()):
            zf.write(path, f"predictions/{path.name}")
        zf.writestr("predictions/readme.txt", "not a prediction")
        zf.writestr("other/imgA_personId_9.pkl", b"outside predictions/: ignored")
    for protocol in ("official", "fixed"):
        from_zip, from_folder = run(scene, protocol, str(archive)), run(scene, protocol, str(scene["preds"]))
        assert from_zip.metrics == from_folder.metrics
        assert from_zip.params["prediction_format"] == "official-zip"
        assert from_zip.rows["prediction"].tolist() == from_folder.rows["prediction"].tolist()


def test_bad_zip_members_name_the_zip_and_member(scene, tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("imgA_personId_0.pkl", pickle.dumps({"params": {}, "joints": np.zeros((24, 2))}))
    with pytest.raises(EvalError, match=r"bad\.zip#imgA_personId_0\.pkl: missing field 'params\.global_orient'"):
        run(scene, "official", str(archive))
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(EvalError, match=r"broken\.zip: not a readable zip"):
        run(scene, "official", str(tmp_path / "broken.zip"))


def test_pa_mpjpe_is_the_mean_over_counted_matched_people_under_the_fixed_protocol_only():
    from eval.agora import summarize

    records = pd.DataFrame({"counted": [True, True, True, False], "missed": [False, False, True, False],
                            "kid": [False] * 4, "mpjpe": [10.0, 20.0, np.nan, 5.0], "mve": [1.0, 2.0, np.nan, 3.0],
                            "pa_mpjpe": [4.0, 8.0, np.nan, 100.0]})
    assert summarize(records, 0, "fixed")["pa_mpjpe"] == pytest.approx(6.0)
    assert "pa_mpjpe" not in summarize(records, 0, "official")  # the official table has no such key
