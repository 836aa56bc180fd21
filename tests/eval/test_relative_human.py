"""Relative Human evaluator: tiny hand-computed sets in the official npz layout, both protocols.

Every expected value below is worked out by hand from the scene geometry (see the comments); the
official code's behaviour it encodes is documented in ``eval/relative_human.py``.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.body_models import JOINT_NAMES
from core.smpl_pickle import UnsafePickleError
from eval.common import EvalConfig, EvalError
from eval.matching import keypoint_box_iou
from eval.metrics import precision_recall_f1
from eval.relative_human import (
    crowdpose_keypoints,
    evaluate,
    load_annots,
    load_official_results,
    match_2d_greedy,
    pckh_values,
)
from pipelines.schema import array_column, results_schema

# A 100 x 200 px body in CrowdPose-14 order (L/R shoulder, elbow, wrist, hip, knee, ankle, head top, neck).
BODY_X = np.array([0, 100, 0, 100, 0, 100, 0, 100, 0, 100, 0, 100, 50, 50], float)
BODY_Y = np.array([40, 40, 80, 80, 120, 120, 100, 100, 150, 150, 200, 200, 0, 20], float)
CROWDPOSE = ["L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip",
             "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "Head_top", "Neck_LSP"]
BK_19 = ["Head_top", "Nose", "Neck", "L_Eye", "R_Eye", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist",
         "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "L_BigToe", "R_BigToe"]
OCHUMAN_19 = ["R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Hip", "R_Knee", "R_Ankle",
              "L_Hip", "L_Knee", "L_Ankle", "Head_top", "Neck", "R_Ear", "L_Ear", "Nose", "R_Eye", "L_Eye"]
ADULT, TEEN, KID, BABY = 0, 1, 2, 3


def body(x0: float, y0: float, scale: float = 1.0) -> np.ndarray:
    return np.stack([x0 + BODY_X * scale, y0 + BODY_Y * scale], axis=1)


def gt_person(kp: np.ndarray, age: int, depth_id: int, flags: np.ndarray | None = None) -> dict:
    flags = np.ones(len(kp)) if flags is None else flags
    kp2d = np.concatenate([kp, flags[:, None]], axis=1).reshape(-1).tolist()  # flat (J*3,), as distributed
    return {"bbox": [0, 0, 1, 1], "kp2d": kp2d, "depth_id": depth_id, "age": age, "gender": 0, "body_type": 0,
            "occluded_by_others": 0}


def pred_person(kp: np.ndarray, z: float) -> dict:
    return {"kp2ds": kp.astype(np.float32), "trans": np.array([0.0, 0.0, z], np.float32),
            "global_orient": np.zeros(3, np.float32), "body_pose": np.zeros((23, 3), np.float32),
            "smpl_betas": np.zeros(11, np.float32)}


def write_set(tmp_path: Path, annots: dict, results: dict, split: str = "test") -> tuple[str, str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    annots_path, results_path = tmp_path / f"{split}_annots.npz", tmp_path / f"{split}_results.npz"
    np.savez(annots_path, annots=annots)  # a 0-d object array holding the dict, as the official files
    np.savez(results_path, results=results)
    return str(annots_path), str(results_path)


def run(annots: str, predictions: str, protocol: str = "official"):
    return evaluate(EvalConfig("relative-human", predictions, protocol=protocol, annots=annots))


def bk19_person() -> tuple[dict, np.ndarray]:
    """A BK-19 person (image stem of 7 characters) built from body(0, 0); L_Wrist and R_Knee unlabelled.
    Returns the annotation and a prediction in CrowdPose-14: +1 px in x, wild guesses at the three
    keypoints without GT (L_Wrist, R_Knee and Neck_LSP, which BK-19 lacks)."""
    cp = body(0, 0)
    kp = np.array([cp[CROWDPOSE.index(n)] if n in CROWDPOSE else (50.0, 10.0) for n in BK_19])
    flags = np.array([0.0 if n in ("L_Wrist", "R_Knee") else 1.0 for n in BK_19])
    pred = cp + [1, 0]
    pred[CROWDPOSE.index("L_Wrist")] = (90, 10)
    pred[CROWDPOSE.index("R_Knee")] = (10, 10)
    pred[CROWDPOSE.index("Neck_LSP")] = (51, 21)
    return gt_person(kp, TEEN, 0, flags), pred


def scene() -> tuple[dict, dict]:
    """Six images; see test_official_scene for the hand computation."""
    a1_pred = body(300, 0) + [0, 3]
    a1_pred[[0, 2]] += [40, 0]  # two keypoints 40.1 px off: wrong for PCKh (limit 0.143 * 223.6 = 32.0 px)
    e_gt, e_pred = bk19_person()
    annots = {
        "crowd_a.jpg": [gt_person(body(0, 0), ADULT, 0), gt_person(body(300, 0), KID, 1),
                        gt_person(body(600, 0), TEEN, 1)],
        "crowd_b.jpg": [gt_person(body(0, 0), BABY, 0), gt_person(body(400, 0), ADULT, 0)],
        "crowd_c.jpg": [gt_person(body(0, 0), ADULT, 1), gt_person(body(300, 0), TEEN, 0),
                        gt_person(body(600, 0), ADULT, -1), gt_person(body(900, 0), BABY, 2)],
        "lonely_d.jpg": [gt_person(body(0, 0), ADULT, 0), gt_person(body(300, 0), KID, 1, np.zeros(14)),
                         {"bbox": [0, 0, 1, 1], "kp2d": None, "depth_id": 0, "age": ADULT}],
        "0000005.jpg": [e_gt],
        "shifted_f.jpg": [gt_person(body(0, 0), TEEN, 0)],
    }
    results = {
        "crowd_a.jpg": [pred_person(body(600, 0) + [1, 1], 3.1), pred_person(body(0, 0) + [2, 0], 2.0),
                        pred_person(a1_pred, 3.0)],
        "crowd_b.jpg": [pred_person(body(0, 0) + [1, 0], 5.0), pred_person(body(400, 0) + [0, 1], 5.5),
                        pred_person(body(1000, 600), 1.0)],
        "crowd_c.jpg": [pred_person(body(0, 0), 4.0), pred_person(body(300, 0) + [2, 2], 3.0),
                        pred_person(body(600, 0) + [3, 0], 10.0)],
        "0000005.jpg": [pred_person(e_pred, 2.0)],
        "shifted_f.jpg": [pred_person(body(97, 0), 2.0)],
        "not_in_annots.jpg": [pred_person(body(0, 0), 1.0)],
    }
    return annots, results


def test_official_scene(tmp_path):
    annots, results = scene()
    result = run(*write_set(tmp_path, annots, results))
    m = result.metrics
    # Matching: A 3/3, B 2/3 (+1 far false positive), C 3/4 (C3 missed), D no predictions (D0 and D1 missed:
    # official counts people with kp2d but no valid keypoint too; D2 has no kp2d), E 1/1, F 0/1 (IoU 0.0202
    # < 0.05: boxes 101 x 201 px overlap 4 x 201 -> 804 / (2 * 20301 - 804)).
    # #pred = 11, misses = 1 + 2 + 1 = 4, FP = 2; official TP = #pred - misses = 7.
    assert (m["precision"], m["recall"], m["f1"]) == (round(7 / 9, 2), round(7 / 11, 2), round(7 / 10, 2))
    assert (m["precision"], m["recall"], m["f1"]) == (0.78, 0.64, 0.7)
    # Pairs (z_j - z_i, GT relation): A eq(kid, teen) |-0.1| ok, closer(adult in front of teen) ok,
    # farther ok; B eq(baby, adult) |0.5| wrong; C closer(adult behind teen) -1.0 ok, C2 at unknown depth
    # forms no pair. 5 pairs, 4 correct; 4 missed people (baby C3, adult D0, kid D1, teen F0).
    assert m["pcrd"] == pytest.approx(100 * 4 / (5 + 0.3 * 4), rel=1e-6)
    assert m["pcrd_adult"] == pytest.approx(100 * 3 / (4 + 0.3), rel=1e-6)  # A(x2), B, C; D0 missed
    assert m["pcrd_teen"] == pytest.approx(100 * 3 / (3 + 0.3), rel=1e-6)  # A(x2), C; F0 missed
    assert m["pcrd_kid"] == pytest.approx(100 * 2 / (2 + 0.3), rel=1e-6)  # A(x2); D1 missed
    assert m["pcrd_baby"] == 0.0  # B wrong; C3 missed
    # PCKh of the 9 matched people: A1 12/14 (two keypoints 40.1 px off), all others 1 (E: 11 labelled
    # keypoints, the three without GT are left out although predicted far away).
    assert m["mpckh"] == pytest.approx(100 * (8 + 12 / 14) / 9, rel=1e-6)
    rows = result.rows.set_index("image")
    assert list(rows.index) == list(annots)  # annotation order; predictions for unknown images ignored
    assert rows.loc["shifted_f.jpg", ["matched", "false_positives", "misses", "iou_rejected"]].tolist() == [0, 1, 1, 1]
    assert rows.loc["lonely_d.jpg", ["gt_people", "gt_valid_people", "misses"]].tolist() == [2, 1, 2]
    assert rows.loc["crowd_a.jpg", ["pairs_eq", "pairs_cd", "pairs_fd"]].sum() == 3
    assert rows["pairs_correct"].tolist() == [3, 0, 1, 0, 0, 0]
    assert result.plots["pcrd_per_age.png"].startswith(b"\x89PNG")
    assert result.params["split"] == "test" and result.params["corrections"] == "none"


def test_fixed_scene(tmp_path):
    annots, results = scene()
    m = run(*write_set(tmp_path, annots, results), protocol="fixed").metrics
    # TP = 9 matched; D1 (no valid keypoint) is no longer missed: misses 3, FP 2.
    assert (m["precision"], m["recall"], m["f1"]) == (round(9 / 11, 2), round(9 / 12, 2), round(9 / 11.5, 2))
    assert m["pcrd"] == pytest.approx(100 * 4 / (5 + 0.3 * 3))
    assert m["pcrd_adult"] == pytest.approx(100 * 3 / 4.3)
    assert m["pcrd_teen"] == pytest.approx(100 * 3 / 3.3)
    assert m["pcrd_kid"] == pytest.approx(100.0)
    assert m["pcrd_baby"] == 0.0
    assert m["mpckh"] == pytest.approx(100 * (8 + 12 / 14) / 9)


def test_dict_form_results_and_folder_predictions(tmp_path):
    """results[image] may also be {'kp2ds': (P, 14, 2), 'trans': (P, 3)}; --predictions may be the folder."""
    annots, results = scene()
    as_list = run(*write_set(tmp_path / "list", annots, results)).metrics
    packed = {name: {"kp2ds": np.stack([p["kp2ds"] for p in people]), "trans": np.stack([p["trans"] for p in people])}
              for name, people in results.items()}
    annots_path, _ = write_set(tmp_path / "dict", annots, packed)
    assert run(annots_path, str(tmp_path / "dict")).metrics == as_list


def test_unknown_depth_and_wrong_person_index(tmp_path):
    """A person without valid keypoints first in the list: official looks up depth_id / age with indices
    into the people that do have valid keypoints, i.e. one person too early."""
    annots = {"shift.jpg": [gt_person(body(0, 0), ADULT, 0, np.zeros(14)), gt_person(body(0, 0), KID, 1),
                            gt_person(body(300, 0), BABY, 0), gt_person(body(600, 0), TEEN, -1)]}
    results = {"shift.jpg": [pred_person(body(0, 0) + [1, 0], 2.0), pred_person(body(300, 0) + [2, 0], 1.0),
                             pred_person(body(600, 0) + [3, 0], 0.5)]}
    paths = write_set(tmp_path, annots, results)
    official, fixed = run(*paths).metrics, run(*paths, protocol="fixed").metrics
    # Official: matches 0, 1, 2 of the valid people read as the adult (layer 0), the kid (layer 1), the baby
    # (layer 0): pairs (adult, kid) farther with dz = 1 - 2 < 0.2 wrong, (adult, baby) eq with |0.5 - 2| wrong,
    # (kid, baby) closer with 0.5 - 1 = -0.5 ok. No misses.
    assert official["pcrd"] == pytest.approx(100 / 3, rel=1e-6)
    assert official["pcrd_adult"] == 0.0
    assert official["pcrd_kid"] == pytest.approx(50.0, rel=1e-6)
    assert official["pcrd_baby"] == pytest.approx(50.0, rel=1e-6)
    assert np.isnan(official["pcrd_teen"])
    # Fixed: kid (layer 1, z 2), baby (layer 0, z 1), teen at unknown depth (no pair): baby closer, 1 - 2 ok.
    assert fixed["pcrd"] == fixed["pcrd_kid"] == fixed["pcrd_baby"] == pytest.approx(100.0)
    assert np.isnan(fixed["pcrd_adult"]) and np.isnan(fixed["pcrd_teen"])


def test_partial_person_far_from_origin(tmp_path):
    """Official GT boxes include unlabelled keypoints stored as (-2, -2): a person at (1000, 800) with an
    unlabelled neck gets a 1103 x 1003 px box, IoU with a good prediction 20000 / (1106309 + 20301 - 20000)."""
    flags = np.ones(14)
    flags[13] = 0
    annots = {"far.jpg": [gt_person(body(1000, 800), ADULT, 0, flags)]}
    results = {"far.jpg": [pred_person(body(1000, 800) + [1, 1], 3.0)]}
    paths = write_set(tmp_path, annots, results)
    gt = load_annots(paths[0])["far.jpg"].kp2d[0, :, :2]
    assert keypoint_box_iou(body(1000, 800) + [1, 1], gt) == pytest.approx(20000 / (1103 * 1003 + 20301 - 20000))
    official, fixed = run(*paths).metrics, run(*paths, protocol="fixed").metrics
    # Official: 1 prediction, 1 miss, 1 FP -> TP = 1 - 1 = 0. Fixed: matched (IoU 20000 / 20602).
    assert (official["precision"], official["recall"], official["f1"]) == (0.0, 0.0, 0.0)
    assert (fixed["precision"], fixed["recall"], fixed["f1"]) == (1.0, 1.0, 1.0)


def test_matcher_counter_stops_early():
    """Official: an IoU rejection counts toward #predictions, so matching stops before P1 meets G1."""
    g1 = body(300, 0)
    p1 = g1 + [0, 150]  # box 300..400 x 150..350
    g0 = body(340, 230, 0.2)  # a 20 x 40 px person inside P1's box: 340..360 x 230..270
    p0 = g0 + [1, 0]
    pred, gt, valid = np.stack([p0, p1]), np.stack([g0, g1]), np.ones((2, 14), bool)
    assert keypoint_box_iou(p1, g0) == pytest.approx(21 * 41 / (101 * 201))  # 0.042 < 0.05
    assert keypoint_box_iou(p1, g1) == pytest.approx(101 * 51 / (2 * 101 * 201 - 101 * 51))  # 0.145
    assert np.linalg.norm(p1 - g0, 2) < np.linalg.norm(p1 - g1, 2) == pytest.approx(150 * np.sqrt(14))
    official = match_2d_greedy(pred, gt, valid)
    assert official.pairs.tolist() == [[0, 0]] and official.iou_rejected == 1
    assert match_2d_greedy(pred, gt, valid, fixed=True).pairs.tolist() == [[0, 0], [1, 1]]


def test_matching_cost_is_the_matrix_2_norm():
    """Official cost = np.linalg.norm(diff, 2) of the (14, 2) difference = its largest singular value:
    half the rows (10, 0) and half (0, 10) give sqrt(7) * 10 = 26.5 (Frobenius sqrt(14) * 10 = 37.4), a
    uniform (8.5, 0) shift gives 8.5 * sqrt(14) = 31.8 under both norms."""
    p0 = body(0, 0)
    g_shift = p0 - [8.5, 0]
    g_mixed = p0 - np.where(np.arange(14)[:, None] % 2 == 0, [10.0, 0.0], [0.0, 10.0])
    pred, gt, valid = p0[None], np.stack([g_shift, g_mixed]), np.ones((2, 14), bool)
    assert np.linalg.norm(p0 - g_mixed, 2) == pytest.approx(10 * np.sqrt(7))
    assert match_2d_greedy(pred, gt, valid).pairs.tolist() == [[0, 1]]
    assert match_2d_greedy(pred, gt, valid, fixed=True).pairs.tolist() == [[0, 0]]


def test_pckh_visibility_and_tiny_people():
    """Person 0: keypoint 0 labelled at x = -5 (official: not visible, coordinates <= -1), head top and neck
    unlabelled, keypoint 1 off by 40.1 px. Person 1: 2 labelled keypoints, one at x = -3. Person 2: 2
    labelled keypoints at the same place (zero-size box)."""
    g0 = body(0, 0)
    g0[0] = (-5, 40)
    g0[12:] = -2
    g1 = np.full((14, 2), -2.0)
    g1[10], g1[11] = (-3, 200), (100, 200)
    g2 = np.full((14, 2), -2.0)
    g2[12] = g2[13] = (50, 0)
    gt = np.stack([g0, g1, g2])
    pred = gt + [3, 0]
    pred[0, 1] += [0, 40]
    valid = ~(gt == -2).all(axis=-1)
    # Official: person 0 has 11 visible keypoints, box 0..100 x 40..200 (diagonal 188.7, limit 27.0 px):
    # 10/11; person 1 one visible -> -1; person 2 box of size 0 -> 3 / 0 = inf -> 0/2.
    official = pckh_values(gt, pred, valid, fixed=False)
    assert official.dtype == np.float32
    assert official.tolist() == pytest.approx([10 / 11, -1.0, 0.0])
    # Fixed (flags): person 0 has 12, box -5..100 x 40..200 (limit 27.4 px): 11/12; person 1: 2/2;
    # person 2 left out.
    assert pckh_values(gt, pred, valid, fixed=True).tolist() == pytest.approx([11 / 12, 1.0])


def test_pckh_minus_one_is_averaged_in(tmp_path):
    """One matched person with a single labelled keypoint: official mPCKh = mean(1, -1) = 0."""
    flags = np.zeros(14)
    flags[11] = 1  # only the right ankle (100, 500); the official GT box spans (-2, -2)..(100, 500)
    annots = {"two.jpg": [gt_person(body(0, 0), ADULT, 0), gt_person(body(0, 300), ADULT, 0, flags)]}
    results = {"two.jpg": [pred_person(body(0, 0) + [1, 0], 2.0), pred_person(body(0, 300) + [1, 0], 2.05)]}
    m = run(*write_set(tmp_path, annots, results)).metrics
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0)
    assert m["mpckh"] == 0.0
    assert m["pcrd"] == m["pcrd_adult"] == pytest.approx(100.0)  # eq pair, |0.05| < 0.2


@pytest.mark.parametrize("protocol", ["official", "fixed"])
def test_inputs_the_official_code_crashes_on(tmp_path, protocol):
    """An empty prediction list counts as no predictions (the adult is missed); predictions on an image
    whose only person has no labelled keypoint are false positives. 1 prediction, 1 miss, 1 FP: TP = 0
    either way; no depth pair, so PCRD = 0 / (0.3 * 1) and the per-age values and mPCKh are NaN."""
    annots = {"empty.jpg": [gt_person(body(0, 0), ADULT, 0)],
              "unlabelled.jpg": [gt_person(body(0, 0), KID, 0, np.zeros(14))]}
    results = {"empty.jpg": [], "unlabelled.jpg": [pred_person(body(0, 0), 2.0)]}
    m = run(*write_set(tmp_path, annots, results), protocol).metrics
    assert (m["precision"], m["recall"], m["f1"], m["pcrd"]) == (0.0, 0.0, 0.0, 0.0)
    assert all(np.isnan(m[k]) for k in ("pcrd_adult", "pcrd_teen", "pcrd_kid", "pcrd_baby", "mpckh"))


@pytest.mark.parametrize("stem, source", [("0012345", BK_19), ("och_12345", OCHUMAN_19), ("abcdefg.png", OCHUMAN_19)])
def test_19_joint_sets_are_remapped(stem, source):
    """BK-19 if the name minus '.jpg' has 7 characters, else OCHuman-19 (so 'abcdefg.png' is OCHuman)."""
    kp = np.array([[10.0 * i + 1, i + 1.0, 1.0] for i in range(19)])
    kp[source.index("L_Knee"), 2] = 0
    name = stem if stem.endswith(".png") else f"{stem}.jpg"
    out = crowdpose_keypoints(kp.reshape(-1).tolist(), name)
    for j, joint in enumerate(CROWDPOSE):
        if joint == "Neck_LSP":  # absent from both 19-joint sets: -2 in all three columns
            assert out[j].tolist() == [-2, -2, -2]
        elif joint == "L_Knee":  # unlabelled: (-2, -2) and flag 0
            assert out[j].tolist() == [-2, -2, 0]
        else:
            i = source.index(joint)
            assert out[j].tolist() == [10.0 * i + 1, i + 1.0, 1.0]


def test_rounding_is_pythons_round():
    def prf1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
        return precision_recall_f1(tp, fp, fn, decimals=2)

    assert prf1(1, 7, 0) == (0.12, 1.0, 0.22)  # 1/8 = 0.125 -> 0.12 (round half to even), 1/4.5 -> 0.22
    assert prf1(2, 1, 1) == (0.67, 0.67, 0.67)
    assert prf1(0, 0, 0) == (0.0, 0.0, 0.0)


def write_meshfleet_results(root: Path, results: dict) -> None:
    """The scene's predictions as a meshfleet results dataset: CrowdPose joints placed at the indices
    of the same-named joints of the 71-joint set, everything else noise; plus one error row."""
    smpl_index = [JOINT_NAMES.index(n) for n in CROWDPOSE]
    rng = np.random.default_rng(0)
    sources, persons, pj2d, trans = [], [], [], []
    for name, people in results.items():
        for k, person in enumerate(people):
            joints = rng.uniform(-500, 500, (71, 2)).astype(np.float32)
            joints[smpl_index] = person["kp2ds"]
            sources.append(f"s3://bucket/rh/images/{name}")
            persons.append(k)
            pj2d.append(joints)
            trans.append(person["trans"])
    schema = results_schema(11)
    n = len(sources) + 1
    columns = {"source": pa.array([*sources, "s3://bucket/rh/images/broken.jpg"]),
               "frame": pa.array(np.zeros(n, np.int64)), "person": pa.array(np.array([*persons, 0], np.int32)),
               "pj2d_org": array_column(np.stack([*pj2d, np.zeros((71, 2))]), schema.field("pj2d_org").type),
               "cam_trans": array_column(np.stack([*trans, np.zeros(3)]), schema.field("cam_trans").type),
               "error": pa.array([None] * (n - 1) + ["cannot decode"], pa.string())}
    table = pa.Table.from_arrays([columns.get(f.name, pa.nulls(n, f.type)) for f in schema], schema=schema)
    root.mkdir(parents=True)
    pq.write_table(table, root / "part-00000.parquet")


@pytest.mark.parametrize("protocol", ["official", "fixed"])
def test_meshfleet_results_match_the_official_npz(tmp_path, protocol):
    annots, results = scene()
    annots_path, results_path = write_set(tmp_path, annots, results)
    write_meshfleet_results(tmp_path / "meshfleet", results)
    from_npz = run(annots_path, results_path, protocol)
    from_parquet = run(annots_path, str(tmp_path / "meshfleet"), protocol)
    assert from_parquet.metrics == from_npz.metrics
    assert from_parquet.params["predictions_format"] == "meshfleet-results"


# -- malformed files ---------------------------------------------------------------------------
def test_missing_member_names_file_and_field(tmp_path):
    path = tmp_path / "val_annots.npz"
    np.savez(path, other=np.zeros(3))
    with pytest.raises(EvalError, match=r"val_annots\.npz.*'annots'"):
        load_annots(str(path))


@pytest.mark.parametrize("person, field", [
    ({"kp2d": body(0, 0).tolist(), "depth_id": 0, "age": 0}, "bbox"),
    ({"bbox": [0, 0, 1, 1], "kp2d": np.ones(42).tolist(), "age": 0}, "depth_id"),
    ({"bbox": [0, 0, 1, 1], "kp2d": np.ones(42).tolist(), "depth_id": 0, "age": "adult"}, "age"),
    ({"bbox": [0, 0, 1, 1], "kp2d": np.ones(45).tolist(), "depth_id": 0, "age": 0}, "kp2d"),
])
def test_malformed_person_names_file_and_field(tmp_path, person, field):
    path = tmp_path / "test_annots.npz"
    np.savez(path, annots={"a.jpg": [person]})
    with pytest.raises(EvalError, match=rf"test_annots\.npz.*a\.jpg.*{field}"):
        load_annots(str(path))


@pytest.mark.parametrize("people, field", [
    ([{"kp2ds": np.zeros((14, 2))}], "trans"),
    ([{"kp2ds": np.zeros((13, 2)), "trans": np.zeros(3)}], "kp2ds"),
    ([{"kp2ds": np.full((14, 2), np.nan), "trans": np.zeros(3)}], "kp2ds"),
    ({"kp2ds": np.zeros((2, 14, 2)), "trans": np.zeros((3, 3))}, "trans"),
])
def test_malformed_predictions_name_file_and_field(tmp_path, people, field):
    path = tmp_path / "test_results.npz"
    np.savez(path, results={"a.jpg": people})
    with pytest.raises(EvalError, match=rf"test_results\.npz.*a\.jpg.*{field}"):
        load_official_results(str(path))


def test_not_an_npz(tmp_path):
    path = tmp_path / "test_annots.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(EvalError, match="test_annots.npz"):
        load_annots(str(path))


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_naming_os_system_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "test_annots.npz"
    np.savez(path, annots={"a.jpg": [_Payload(marker)]})
    with pytest.raises(UnsafePickleError, match=r"test_annots\.npz.*system"):
        load_annots(str(path))
    assert not marker.exists()


def test_numpy_1_pickles_load(tmp_path):
    """Files written by numpy 1.x name numpy.core.multiarray (protocol 2 here, as Python 2-era files)."""
    annots = {"a.jpg": [gt_person(body(0, 0), ADULT, np.int64(0))]}
    array = np.empty((), dtype=object)
    array[()] = annots
    payload = pickle.dumps(array, protocol=2)
    assert b"numpy._core.multiarray\n" in payload
    payload = payload.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, np.lib.format.header_data_from_array_1_0(array))
    path = tmp_path / "test_annots.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("annots.npy", buffer.getvalue() + payload)
    gt = load_annots(str(path))["a.jpg"]
    assert gt.kp2d.shape == (1, 14, 3) and gt.depth_id.tolist() == [0] and gt.age.tolist() == [ADULT]
