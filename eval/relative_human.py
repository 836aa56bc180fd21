"""Relative Human (RH, BEV CVPR 2022): detection P/R/F1, relative depth (PCRD) and 2D pose (mPCKh).

``protocol="official"`` reproduces the official evaluator -- ``RH_evaluation/evaluation.py`` and
``RH_evaluation/matching.py`` of Arthur151/Relative_Human, the same files as Arthur151/ROMP
``simple_romp/evaluation/RH_evaluation/`` -- as coded, quirks included. ``protocol="fixed"`` corrects
the quirks listed in :data:`FIXED_CORRECTIONS`; both variants handle the inputs on which the official
code crashes as listed in :data:`CRASH_CASES`.

Inputs
  ``cfg.annots``: ``{split}_annots.npz``, member ``annots`` = {image name: [person dict]}. A person has
  ``bbox``; ``kp2d`` (flat (J, 3) x, y px and a visibility flag; J = 14 CrowdPose, or 19 = BK-19 when the
  image stem (name without ``.jpg``) has 7 characters, else OCHuman-19; absent / None = no 2D pose);
  ``depth_id`` (0 = front layer, 1, 2, ...; -1 unknown); ``age`` (0 adult, 1 teen, 2 kid, 3 baby, -1).
  ``cfg.predictions``: the official ``{split}_results.npz`` (member ``results`` = {image basename:
  [{'kp2ds': (14, 2) px, 'trans': (3,) m, ...}] or {'kp2ds': (P, 14, 2), 'trans': (P, 3)}}), a folder
  holding it, or a meshfleet results dataset (``kp2ds = pj2d_org[:, SMPL54_TO_CROWDPOSE14]``,
  ``trans = cam_trans``, images matched by basename).
  Both npz files hold pickled object arrays: their ``.npy`` members are parsed here and unpickled by
  the restricted unpickler of :mod:`eval.safe_pickle` (numpy and inert builtins only), never by
  ``np.load(allow_pickle=True)``.

Metrics, as the official code reports them: ``precision``, ``recall``, ``f1`` (fractions rounded to 2
decimals with Python ``round``); ``pcrd``, ``pcrd_adult``, ``pcrd_teen``, ``pcrd_kid``, ``pcrd_baby``
(percent; NaN where the official code prints no value) and ``mpckh`` (percent), unrounded (the official
script prints them with 2 decimals). Official values keep the code's float32 arithmetic; mPCKh takes the
float32 mean without torch's (device-dependent) summation order, so it agrees to float32 rounding of the
mean (~1e-7 relative), the other metrics bit for bit.
"""

from __future__ import annotations

import io
import logging
import posixpath
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from eval.common import (
    EvalConfig,
    EvalError,
    EvalResult,
    is_results_dataset,
    parallel_map,
    png,
    read_results,
    unique_by_name,
)
from eval.matching import frobenius_cost, greedy_fixed, greedy_official, keypoint_box_iou, spectral_cost
from eval.metrics import precision_recall_f1
from eval.safe_pickle import loads_pickle
from pipelines.schema import column_array
from pipelines.storage import list_files, read_bytes

log = logging.getLogger(__name__)

CROWDPOSE_14 = ("L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip",
                "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "Head_top", "Neck_LSP")
# Source index of each CrowdPose-14 joint; -1 = absent (both 19-joint sets have "Neck", not Neck_LSP).
BK19_TO_CROWDPOSE14 = np.array([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0, -1])
OCHUMAN19_TO_CROWDPOSE14 = np.array([3, 0, 4, 1, 5, 2, 9, 6, 10, 7, 11, 8, 12, -1])
# meshfleet's 71 joints share indices 0-53 with SMPL_ALL_54 (eval_Relative_Human.py's kp_mapper).
SMPL54_TO_CROWDPOSE14 = np.array([16, 17, 18, 19, 20, 21, 46, 45, 4, 5, 7, 8, 48, 47])

IOU_GATE = 0.05  # match_2d_greedy(iou_thresh=0.05)
DEPTH_THRESH = 0.2  # get_results(dr_thresh=0.2), metres
MISS_PENALTY = 0.3  # get_results(miss_fine=0.3), pairs per missed person
PCKH_THRESH = 0.143  # _calc_matched_PCKh_(error_thresh=0.143) = 1/7, head / body height
AGES = ("adult", "teen", "kid", "baby")  # age ids 0..3
RELATIONS = ("eq", "cd", "fd")  # same layer, j closer than i, j farther than i

FIXED_CORRECTIONS = {
    "true_positives": "TP = #matched pairs (official: #predictions - #misses, summed over images).",
    "matcher_counter": "the greedy matcher examines every pair in ascending cost until predictions or GT run out "
                       "(official: every IoU rejection, also of pairs whose prediction or GT is already matched, "
                       "increments a counter, and matching stops once #matched + counter >= #predictions).",
    "matching_cost": "cost = Frobenius norm of the (K, 2) keypoint difference over GT-valid keypoints "
                     "(official: np.linalg.norm(diff, 2) = its largest singular value).",
    "gt_box": "the GT box of the IoU gate spans the valid keypoints only (official: invalid keypoints, "
              "stored as (-2, -2), stretch it to the image corner).",
    "person_index": "matched / missed people are looked up among people with valid keypoints (official: "
                    "indices into that filtered list are used on the list of all people with kp2d, so a "
                    "person without valid keypoints shifts depth_id / age onto the wrong person).",
    "miss_without_predictions": "in images without predictions only people with a valid keypoint are missed "
                                "(official: every person with kp2d, unlike images with predictions).",
    "pckh_visibility": "mPCKh uses the GT visibility flag and leaves out people with < 2 visible keypoints or "
                       "a zero-size keypoint box (official: visible = both coordinates > -1; such people "
                       "score -1 and are averaged in).",
    "float64": "PCRD and mPCKh in float64 (official: torch float32).",
}
CRASH_CASES = {  # the official code raises here; both protocols go on as stated
    "empty_prediction_list": "an image with an empty prediction list counts as an image without predictions",
    "no_valid_gt": "predictions on an image without a GT person with a valid keypoint are all false positives",
    "degenerate_box": "a keypoint box of zero width or height is scored with the +1 px area (official: assert)",
    "empty_denominator": "PCRD / mPCKh with an empty denominator are NaN, P / R / F1 are 0 "
                         "(official: torch.cat / np.concatenate of nothing, or ZeroDivisionError)",
    "joint_count": "kp2d with other than 14 or 19 keypoints is refused with an EvalError (official: keeps the "
                   "previous person's keypoints, or NameError)",
    "non_finite_keypoints": "non-finite kp2d / kp2ds are refused with an EvalError (official: may loop forever)",
}


@dataclass(frozen=True)
class ImageGT:
    """People of one image that have ``kp2d`` (the official ``gt_inds``), in annotation order.

    kp2d (G, 14, 3): CrowdPose-14 x, y (px) and flag 0/1; invalid keypoints are -2 in x and y (dtype as
    stored). depth_id, age (G,) int64. index (G,): position in the image's annotation list.
    """

    kp2d: np.ndarray
    depth_id: np.ndarray
    age: np.ndarray
    index: np.ndarray


@dataclass(frozen=True)
class ImagePred:
    """Predicted people of one image: kp2ds (P, 14, 2) px and depth (P,) = trans[:, 2] m, dtypes as stored."""

    kp2ds: np.ndarray
    depth: np.ndarray


@dataclass(frozen=True)
class ImageTask:
    name: str
    gt: ImageGT
    pred: ImagePred | None
    fixed: bool


@dataclass(frozen=True)
class Match:
    """pairs (M, 2): (prediction, GT) indices in the order matched; iou_rejected: candidate pairs refused
    by the IoU gate (the official matcher's false-positive counter)."""

    pairs: np.ndarray
    iou_rejected: int


@dataclass
class ImageOutcome:
    """Per-image counts, depth pairs (delta z_j - z_i in m, ages (K, 2) = (age_j, age_i)) and PCKh values."""

    image: str
    n_gt: int
    n_gt_valid: int
    n_pred: int
    matched: int = 0
    misses: int = 0
    iou_rejected: int = 0
    missed_age: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    deltas: dict[str, np.ndarray] = field(default_factory=dict)
    pair_ages: dict[str, np.ndarray] = field(default_factory=dict)
    pckh: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    @property
    def false_positives(self) -> int:
        return self.n_pred - self.matched


# -- reading the npz files ---------------------------------------------------------------------
def read_npz_member(uri: str, name: str) -> Any:
    """The array stored as ``name`` in the npz file ``uri``; object arrays are unpickled by the restricted
    unpickler (numpy and inert builtins only) and a 0-d array gives its element."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(read_bytes(uri)))
    except OSError as err:
        raise EvalError(f"{uri}: cannot read ({err})") from err
    except zipfile.BadZipFile as err:
        raise EvalError(f"{uri}: not an .npz (zip) file") from err
    member = f"{name}.npy"
    if member not in archive.namelist():
        raise EvalError(f"{uri}: missing field {name!r} (has {[n.removesuffix('.npy') for n in archive.namelist()]})")
    array = _read_npy(io.BytesIO(archive.read(member)), f"{uri}:{member}")
    return array[()] if array.shape == () else array


def _read_npy(stream: io.BytesIO, source: str) -> np.ndarray:
    try:
        major, _ = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
    except ValueError as err:
        raise EvalError(f"{source}: not a .npy array ({err})") from err
    if not dtype.hasobject:
        stream.seek(0)
        return np.lib.format.read_array(stream, allow_pickle=False)
    array = loads_pickle(stream.read(), source)
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise EvalError(f"{source}: pickled payload is not the {shape} array its header announces")
    return array


# -- ground truth ------------------------------------------------------------------------------
def load_annots(uri: str) -> dict[str, ImageGT]:
    """``{split}_annots.npz`` -> {image name: ImageGT}, in file order."""
    annots = read_npz_member(uri, "annots")
    if not isinstance(annots, dict):
        raise EvalError(f"{uri}: field 'annots' must hold a dict of image name -> people, not {type(annots).__name__}")
    return {str(name): _image_gt(people, str(name), f"{uri}: annots[{name!r}]") for name, people in annots.items()}


def _image_gt(people: Any, name: str, where: str) -> ImageGT:
    if not isinstance(people, list | tuple):
        raise EvalError(f"{where}: expected a list of person dicts, got {type(people).__name__}")
    kp2d, depth_id, age, index = [], [], [], []
    for k, person in enumerate(people):
        at = f"{where}[{k}]"
        if not isinstance(person, dict):
            raise EvalError(f"{at}: expected a person dict, got {type(person).__name__}")
        if "bbox" not in person:  # read for every person by the official loader
            raise EvalError(f"{at}: missing field 'bbox'")
        if person.get("kp2d") is None:
            continue  # no 2D pose: never matched, never missed (official)
        kp2d.append(crowdpose_keypoints(person["kp2d"], name, f"{at}['kp2d']"))
        depth_id.append(_integer(person, "depth_id", at))
        age.append(_integer(person, "age", at))
        index.append(k)
    stacked = np.array(kp2d) if kp2d else np.zeros((0, 14, 3))
    return ImageGT(stacked, np.array(depth_id, np.int64), np.array(age, np.int64), np.array(index, np.int64))


def _integer(person: dict, key: str, at: str) -> int:
    if key not in person:
        raise EvalError(f"{at}: missing field {key!r}")
    value = person[key]
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(())[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer | float | np.floating) \
            or value != int(value):
        raise EvalError(f"{at}['{key}']: expected an integer, got {value!r}")
    return int(value)


def crowdpose_keypoints(kp2d: Any, image_name: str, where: str = "kp2d") -> np.ndarray:
    """A person's ``kp2d`` (flat (J, 3)) -> (14, 3) CrowdPose-14, as the official loader builds it:
    flag-0 keypoints become (-2, -2, 0), flags become 0/1, and 19-joint sets are remapped (BK-19 when the
    image stem has 7 characters, else OCHuman-19) with the missing Neck_LSP set to -2."""
    try:
        joint = np.array(kp2d)
        if joint.dtype.kind not in "if":
            joint = joint.astype(np.float64)
        joint = joint.reshape(-1, 3)
    except (ValueError, TypeError) as err:
        raise EvalError(f"{where}: expected (J, 3) numbers ({err})") from err
    if len(joint) not in (14, 19):
        raise EvalError(f"{where}: expected 14 (CrowdPose) or 19 (BK / OCHuman) keypoints, got {len(joint)}")
    if not np.isfinite(joint).all():
        raise EvalError(f"{where}: non-finite keypoint values")
    joint[joint[:, 2] == 0] = -2
    joint[:, 2] = joint[:, 2] > 0
    if len(joint) == 14:
        return joint
    is_bk = len(posixpath.basename(image_name).replace(".jpg", "")) == 7
    mapper = BK19_TO_CROWDPOSE14 if is_bk else OCHUMAN19_TO_CROWDPOSE14
    joints = joint[mapper]
    joints[mapper == -1] = -2  # official: BK's mask for both sets; the two masks are identical
    return joints


# -- predictions -------------------------------------------------------------------------------
def load_predictions(uri: str, split: str | None) -> tuple[dict[str, ImagePred], bool, str]:
    """(predictions by image key, whether keys are basenames to match on, format name)."""
    if is_results_dataset(uri):
        return load_meshfleet_results(uri), True, "meshfleet-results"
    if not uri.endswith(".npz"):
        name = f"{split}_results.npz" if split else "_results.npz"
        found = [f for f in list_files(uri, ".npz") if f.endswith(name)]
        if len(found) != 1:
            raise EvalError(f"{uri}: expected one {name} file or a meshfleet results dataset, found {found}")
        uri = found[0]
    return load_official_results(uri), False, "official-npz"


def load_official_results(uri: str) -> dict[str, ImagePred]:
    """``{split}_results.npz`` (member ``results``) -> {image key: ImagePred}."""
    results = read_npz_member(uri, "results")
    if not isinstance(results, dict):
        raise EvalError(f"{uri}: field 'results' must hold a dict of image name -> people, "
                        f"not {type(results).__name__}")
    return {str(name): _image_pred(value, f"{uri}: results[{name!r}]") for name, value in results.items()}


def _image_pred(value: Any, where: str) -> ImagePred:
    if isinstance(value, dict):  # {'kp2ds': (P, 14, 2), 'trans': (P, 3)}
        kp2ds = _numbers(value, "kp2ds", where)
        trans = _numbers(value, "trans", where)
        if kp2ds.ndim != 3 or kp2ds.shape[1:] != (14, 2) or trans.ndim != 2 or trans.shape[1] < 3 \
                or len(trans) != len(kp2ds):
            raise EvalError(f"{where}: expected 'kp2ds' (P, 14, 2) and 'trans' (P, 3), "
                            f"got {kp2ds.shape} and {trans.shape}")
        depth = trans[:, 2]
    elif isinstance(value, list | tuple):
        people = [_person_pred(person, f"{where}[{k}]") for k, person in enumerate(value)]
        kp2ds = np.array([p[0] for p in people]) if people else np.zeros((0, 14, 2), np.float32)
        depth = np.array([p[1] for p in people]) if people else np.zeros(0, np.float32)
    else:
        raise EvalError(f"{where}: expected a list of person dicts or a dict of arrays, got {type(value).__name__}")
    if not np.isfinite(kp2ds).all():
        raise EvalError(f"{where}: non-finite values in 'kp2ds'")
    return ImagePred(kp2ds, depth)


def _person_pred(person: Any, where: str) -> tuple[np.ndarray, Any]:
    if not isinstance(person, dict):
        raise EvalError(f"{where}: expected a person dict, got {type(person).__name__}")
    kp2ds, trans = _numbers(person, "kp2ds", where), _numbers(person, "trans", where)
    if kp2ds.shape != (14, 2):
        raise EvalError(f"{where}['kp2ds']: expected shape (14, 2), got {kp2ds.shape}")
    if trans.ndim != 1 or len(trans) < 3:
        raise EvalError(f"{where}['trans']: expected shape (3,), got {trans.shape}")
    return kp2ds, trans[2]


def _numbers(container: dict, key: str, where: str) -> np.ndarray:
    if key not in container:
        raise EvalError(f"{where}: missing field {key!r}")
    array = np.asarray(container[key])
    if array.dtype.kind not in "iuf":
        raise EvalError(f"{where}['{key}']: expected numbers, got dtype {array.dtype}")
    return array


def load_meshfleet_results(uri: str) -> dict[str, ImagePred]:
    """A meshfleet results dataset -> {image basename: ImagePred}: kp2ds = pj2d_org mapped to CrowdPose-14
    as eval_Relative_Human.py maps the official outputs, depth = cam_trans z; people in ``person`` order."""
    table, _ = read_results(uri, ["source", "frame", "person", "cam_trans", "pj2d_org"])
    if table.num_rows == 0:
        return {}
    kp2ds = column_array(table, "pj2d_org", (71, 2))[:, SMPL54_TO_CROWDPOSE14]
    depth = column_array(table, "cam_trans", (3,))[:, 2]
    frame = table.column("frame").to_numpy()
    person = table.column("person").to_numpy(zero_copy_only=False)
    sources = table.column("source").to_pylist()
    names = [posixpath.basename(s.replace("\\", "/")) for s in sources]
    unique_by_name(sources, lambda s: posixpath.basename(s.replace("\\", "/")), uri, "Relative Human image")
    rows: dict[str, list[int]] = {}
    for row, name in enumerate(names):
        rows.setdefault(name, []).append(row)
    out = {}
    for name, idx in rows.items():
        if len({int(frame[i]) for i in idx}) > 1:
            raise EvalError(f"{uri}: column 'frame': image {name!r} has several frames; expected still images")
        order = np.array(sorted(idx, key=lambda i: int(person[i])))
        out[name] = ImagePred(kp2ds[order], depth[order])
    return out


# -- matching ----------------------------------------------------------------------------------
def match_2d_greedy(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, fixed: bool = False,
                    iou_gate: float = IOU_GATE) -> Match:
    """Greedy matching of predicted (P, 14, 2) to GT (G, 14, 2) keypoints (px); ``valid`` (G, 14) marks
    the GT keypoints used in the cost. Pairs are taken in ascending cost (ties: prediction-major order);
    a pair is accepted when both are free and the keypoint-box IoU >= ``iou_gate``.

    Official (:func:`eval.matching.greedy_official`): cost = matrix 2-norm (largest singular value) of
    the difference, GT box over all 14 keypoints, and every IoU rejection counts toward stopping.
    Fixed (:func:`eval.matching.greedy_fixed`): Frobenius cost, GT box over its valid keypoints, all
    pairs examined (see :data:`FIXED_CORRECTIONS`)."""
    boxes = [gt[g][valid[g]] if fixed else gt[g] for g in range(len(gt))]

    def iou(p: int, g: int) -> float:
        return keypoint_box_iou(pred[p], boxes[g])

    if fixed:
        result = greedy_fixed(frobenius_cost(pred, gt, valid), iou, iou_gate)
    else:
        result = greedy_official(spectral_cost(pred, gt, valid), iou, iou_gate)
    return Match(np.array(result.pairs, np.int64).reshape(-1, 2), result.rejections)


# -- per image ---------------------------------------------------------------------------------
def evaluate_image(task: ImageTask) -> ImageOutcome:
    """Match one image and collect its counts, depth pairs and PCKh values."""
    gt, pred, fixed = task.gt, task.pred, task.fixed
    valid_kps = gt.kp2d[:, :, 2] > 0  # (G, 14)
    valid_people = np.flatnonzero(valid_kps.any(axis=1))
    out = ImageOutcome(task.name, len(gt.index), len(valid_people), 0 if pred is None else len(pred.kp2ds))
    if pred is None or out.n_pred == 0:
        missed = valid_people if fixed else np.arange(len(gt.index))
        out.misses, out.missed_age = len(missed), gt.age[missed]
        return out
    if len(valid_people) == 0:
        return out  # every prediction is a false positive
    gt_valid = gt.kp2d[valid_people]
    match = match_2d_greedy(pred.kp2ds, gt_valid[:, :, :2], valid_kps[valid_people], fixed)
    pred_ids, gt_ids = match.pairs[:, 0], match.pairs[:, 1]
    missed_ids = np.setdiff1d(np.arange(len(valid_people)), gt_ids)
    people = valid_people if fixed else np.arange(len(gt.index))  # official: filtered ids on the full list
    matched, missed = people[gt_ids], people[missed_ids]
    out.matched, out.iou_rejected = len(gt_ids), match.iou_rejected
    out.misses, out.missed_age = len(missed_ids), gt.age[missed]
    out.deltas, out.pair_ages = depth_pairs(pred.depth[pred_ids], gt.depth_id[matched], gt.age[matched])
    out.pckh = pckh_values(gt_valid[gt_ids, :, :2], pred.kp2ds[pred_ids], valid_kps[valid_people][gt_ids], fixed)
    return out


def depth_pairs(depth: np.ndarray, depth_id: np.ndarray, age: np.ndarray
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """All pairs i < j of matched people with known depth layer (depth_id != -1), by GT relation:
    'eq' (same layer), 'cd' (j in front of i), 'fd' (j behind i). Returns per relation the predicted
    depth differences z_j - z_i (K,) in the dtype of ``depth`` and the ages (K, 2) = (age_j, age_i)."""
    known = depth_id != -1
    z, layer, ages = depth[known], depth_id[known], age[known]
    i, j = np.triu_indices(len(z), k=1) if len(z) > 1 else (np.zeros(0, int), np.zeros(0, int))
    delta, relation = z[j] - z[i], layer[j] - layer[i]
    pair_age = np.stack([ages[j], ages[i]], axis=1)
    masks = {"eq": relation == 0, "cd": relation < 0, "fd": relation > 0}
    return {r: delta[m] for r, m in masks.items()}, {r: pair_age[m] for r, m in masks.items()}


def pckh_values(gt: np.ndarray, pred: np.ndarray, valid: np.ndarray, fixed: bool) -> np.ndarray:
    """PCKh of matched people: share of visible keypoints whose error / (diagonal of the visible GT
    keypoint box) < 0.143. gt, pred (M, 14, 2) px; valid (M, 14) GT flags. Official: float32, visible =
    both GT coordinates > -1, and people with < 2 visible keypoints give -1; fixed: float64, flags, and
    such people (or a zero-size box) are left out."""
    real: np.ndarray
    if fixed:
        real, visible = gt.astype(np.float64), np.asarray(valid, bool)
        error = np.sqrt(np.square(real - pred.astype(np.float64)).sum(axis=-1))
    else:
        real = gt.astype(np.float32)
        visible = np.asarray((real > -1).all(axis=-1))
        error = _norm_float32(real - pred.astype(np.float32))
    values: list[Any] = []
    for person in range(len(real)):
        v = visible[person]
        if v.sum() < 2:
            if not fixed:
                values.append(np.float32(-1))
            continue
        span = real[person, v].max(axis=0) - real[person, v].min(axis=0)
        scale = np.sqrt(span[0] ** 2 + span[1] ** 2)
        if fixed and scale == 0:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            correct = (error[person, v] / scale) < real.dtype.type(PCKH_THRESH)
        values.append(real.dtype.type(correct.sum()) / real.dtype.type(len(correct)))
    return np.array(values, dtype=real.dtype)


def _norm_float32(diff: np.ndarray) -> np.ndarray:
    """torch.norm(diff, p=2, dim=-1) of float32 (..., 2) as torch's CPU kernel rounds it: x*x rounded to
    float32, then y*y added in one fused multiply-add, then the float32 square root."""
    x2 = (diff[..., 0] * diff[..., 0]).astype(np.float64)
    y = diff[..., 1].astype(np.float64)
    return np.sqrt((y * y + x2).astype(np.float32))


# -- aggregation -------------------------------------------------------------------------------
def detection_metrics(outcomes: list[ImageOutcome], fixed: bool) -> dict[str, float]:
    n_pred = sum(o.n_pred for o in outcomes)
    misses = sum(o.misses for o in outcomes)
    fp = sum(o.false_positives for o in outcomes)
    if n_pred == 0:  # compute_prf1's count == 0 case
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    tp = sum(o.matched for o in outcomes) if fixed else n_pred - misses
    # compute_prf1: rounded to 2 decimals; an empty denominator gives 0 (the official code raises).
    precision, recall, f1 = precision_recall_f1(tp, fp, misses, decimals=2)
    return {"precision": precision, "recall": recall, "f1": f1}


def _concat(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
    return np.concatenate(parts) if parts else empty


def pcrd_metrics(outcomes: list[ImageOutcome], fixed: bool) -> dict[str, float]:
    """PCRD_0.2 = correct pairs / (#pairs + 0.3 #missed people), overall and per age (pairs with at least
    one person of that age; misses of that age), in percent. Official: float32 as torch computes it."""
    deltas = {r: _concat([o.deltas[r] for o in outcomes if r in o.deltas], np.zeros(0)) for r in RELATIONS}
    ages = np.concatenate([_concat([o.pair_ages[r] for o in outcomes if r in o.pair_ages], np.zeros((0, 2), np.int64))
                           for r in RELATIONS])
    correct = np.concatenate([np.abs(deltas["eq"]) < DEPTH_THRESH, deltas["cd"] < -DEPTH_THRESH,
                              deltas["fd"] > DEPTH_THRESH])
    missed = _concat([o.missed_age for o in outcomes], np.zeros(0, np.int64))
    counts = np.array([len(deltas["eq"]), len(deltas["cd"]), len(deltas["fd"]), len(missed) * MISS_PENALTY])
    metrics = {"pcrd": _percent(int(correct.sum()), counts.sum(), fixed)}
    for age_id, age in enumerate(AGES):
        involved = (ages == age_id).any(axis=1)
        if not involved.any():
            metrics[f"pcrd_{age}"] = float("nan")  # the official code reports no value
            continue
        penalty = int((missed == age_id).sum())
        den: Any = int(involved.sum()) + penalty * MISS_PENALTY
        if not fixed:  # torch: int64 sum + float32(n_missed) * float32(0.3)
            den = np.float32(involved.sum()) + np.float32(penalty) * np.float32(MISS_PENALTY)
        metrics[f"pcrd_{age}"] = _percent(int(correct[involved].sum()), den, fixed)
    return metrics


def _percent(num: int, den: Any, fixed: bool) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        if fixed:
            return float(np.float64(num) / np.float64(den)) * 100
        return float(np.float32(num) / np.float32(den)) * 100  # float(tensor.item()) * 100


def mpckh_metric(outcomes: list[ImageOutcome], fixed: bool) -> float:
    """Mean PCKh of all matched people, in percent (official: the float32 mean times 100 in float32)."""
    values = _concat([o.pckh for o in outcomes], np.zeros(0))
    if len(values) == 0:
        return float("nan")
    mean = values.astype(np.float64).sum() / len(values)
    if fixed:
        return float(mean * 100)
    return float(np.float32(mean) * np.float32(100))


# -- the job -----------------------------------------------------------------------------------
def split_name(cfg: EvalConfig) -> str | None:
    """``cfg.split``, else the ``{split}`` of ``{split}_annots.npz``, else the test split."""
    from eval.registry import default_split

    return cfg.split or default_split(cfg.benchmark, cfg.annots)


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Relative Human metrics of ``cfg.predictions`` against ``cfg.annots`` under ``cfg.protocol``."""
    if not cfg.annots:
        raise EvalError("relative-human: --annots {split}_annots.npz is required")
    split = split_name(cfg)
    gts = load_annots(cfg.annots)
    preds, by_basename, fmt = load_predictions(cfg.predictions, split)
    fixed = cfg.protocol == "fixed"
    tasks = [ImageTask(name, gt, preds.get(posixpath.basename(name) if by_basename else name), fixed)
             for name, gt in gts.items()]
    log.info("relative-human: %d images, %d with predictions (%s, protocol %s)", len(tasks),
             sum(t.pred is not None for t in tasks), fmt, cfg.protocol)
    outcomes = parallel_map(evaluate_image, tasks)
    metrics = {**detection_metrics(outcomes, fixed), **pcrd_metrics(outcomes, fixed),
               "mpckh": mpckh_metric(outcomes, fixed)}
    params = {"split": split, "predictions_format": fmt, "iou_threshold": IOU_GATE,
              "depth_threshold_m": DEPTH_THRESH, "miss_penalty": MISS_PENALTY, "pckh_threshold": PCKH_THRESH,
              "corrections": ",".join(FIXED_CORRECTIONS) if fixed else "none"}
    return EvalResult(metrics, image_rows(outcomes), {"pcrd_per_age.png": pcrd_plot(metrics, cfg.protocol)}, params)


def image_rows(outcomes: list[ImageOutcome]) -> pd.DataFrame:
    """One row per image: counts, depth pairs per relation, correct pairs, mean PCKh (-1 values included
    as the official mean includes them)."""
    rows = []
    for o in outcomes:
        pairs = {f"pairs_{r}": len(o.deltas.get(r, ())) for r in RELATIONS}
        correct = sum(int(c.sum()) for c in (np.abs(o.deltas.get("eq", np.zeros(0))) < DEPTH_THRESH,
                                                  o.deltas.get("cd", np.zeros(0)) < -DEPTH_THRESH,
                                                  o.deltas.get("fd", np.zeros(0)) > DEPTH_THRESH))
        rows.append({"image": o.image, "gt_people": o.n_gt, "gt_valid_people": o.n_gt_valid,
                     "predictions": o.n_pred, "matched": o.matched, "false_positives": o.false_positives,
                     "misses": o.misses, "iou_rejected": o.iou_rejected, **pairs, "pairs_correct": correct,
                     "pckh_mean": float(o.pckh.astype(np.float64).mean()) if len(o.pckh) else float("nan")})
    return pd.DataFrame(rows)


def pcrd_plot(metrics: dict[str, float], protocol: str) -> bytes:
    """Bar chart of PCRD per age group with the overall PCRD as a line."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    values = [metrics[f"pcrd_{age}"] for age in AGES]
    bars = ax.bar(AGES, [0.0 if np.isnan(v) else v for v in values], color="#4c72b0")
    for bar, value in zip(bars, values, strict=True):
        ax.annotate("n/a" if np.isnan(value) else f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    if not np.isnan(metrics["pcrd"]):
        ax.axhline(metrics["pcrd"], color="#c44e52", linestyle="--", label=f"all {metrics['pcrd']:.2f}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.set_ylabel("PCRD_0.2 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"Relative Human PCRD per age ({protocol})")
    return png(fig)
