"""AGORA SMPL-track evaluation, reproducing ``pixelite1201/agora_evaluation`` (``--modeltype SMPL``).

Per image, predictions are matched greedily to ground-truth people on their projected 2D joints
(3840x2160 px), then each matched pair is scored after pelvis alignment: MPJPE over the 24 SMPL
joints and MVE over the SMPL body vertices, in mm. Detection scores (precision, recall, F1) and the
normalised errors NMJE = MPJPE / F1 and NMVE = MVE / F1 summarise everything; the same for kids.

Two protocols (see the README, "AGORA"):

* ``official`` -- as coded (matching.py, calculate_v2v_error.py, compute_average_error.py,
  get_joints_verts_from_dataframe.py), quirks included: matching cost = matrix 2-norm (largest
  singular value) of the 24x2 joint difference; keypoint-box IoU >= 0.1 between the box of all
  45 GT points and the box of the predicted points (+1 px box convention); invalid GT (occlusion
  outside [0, 90] or not isValid) consumed inside the greedy loop; the loop stops once
  #matched + #rejected-pairs reaches #predictions; GT counted in P/R/F1 by ``isValid`` alone (an
  isValid person with occlusion > 90 % counts as a miss); kid body model chosen by ``kid_flag``
  only; pelvis = midpoint of SMPL joints 1 and 2; errors rounded to 0.1 mm with numpy, P/R/F1
  to 0.01 with Python's ``round``, NMJE/NMVE from those rounded values; predictions in
  string-sorted file order; kid P/R/F1 charged with every false positive.
* ``fixed`` -- those quirks corrected: Frobenius cost; IoU between boxes of the same 24 SMPL
  joints; invalid GT removed before matching and never counted; greedy over every pair; kid
  model for ``kid_flag`` or ``age == 'kid'`` (missing 11th beta = 0); root = SMPL joint 0
  (the pelvis joint the protocol text names); no rounding; person files in personId order;
  ``_1280x720`` image names accepted. Kid P/R/F1 still use every false positive (a prediction
  carries no trustworthy age).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import smplx
import torch

from core.body_models import with_kid_shape
from core.open_body_model import SHIPPED_DIR, read_open_model, smplx_struct
from core.smpl_pickle import BodyModelFileError, load_model_pickle
from eval.agora_format import (
    IMG_WIDTH,
    NUM_BODY_JOINTS,
    PARAM_KEYS,
    GtImage,
    PredictedPerson,
    canonical_image,
    direct_children,
    frame_files,
    load_body_vertex_ids,
    load_gt_images,
    load_prediction,
    order_person_files,
    parse_prediction,
    person_file_key,
    results_to_dicts,
    write_predictions,
)
from eval.common import EvalConfig, EvalError, EvalResult, is_results_dataset, parallel_map, png
from eval.matching import frobenius_cost, greedy_fixed, greedy_official, keypoint_box_iou, spectral_cost
from eval.metrics import pa_mpjpe, precision_recall_f1
from eval.safe_pickle import loads_pickle
from pipelines.body_model_sets import is_open
from pipelines.storage import join, list_files, localize, read_bytes

__all__ = ["evaluate", "write_predictions", "match_official", "match_fixed", "keypoint_box_iou", "summarize"]

log = logging.getLogger(__name__)

IOU_THRESHOLD = 0.1
MM = 1e3
OCCLUSION_BINS = {"official": [-1, 10, 20, 30, 40, 50, 60, 70, 80],  # as coded: 80-90 % is dropped
                  "fixed": [-1, 10, 20, 30, 40, 50, 60, 70, 80, 90]}


# -- matching --------------------------------------------------------------------------------------

@dataclass
class Matching:
    """Result of matching one image: (pred, gt) pairs, unmatched prediction indices, and the GT
    indices the matcher set aside as invalid."""

    pairs: list[tuple[int, int]]
    false_positives: list[int]
    invalid: list[int] = field(default_factory=list)


def match_official(pred2d: Sequence[np.ndarray], gt2d: Sequence[np.ndarray], valid: np.ndarray,
                   iou_threshold: float = IOU_THRESHOLD) -> Matching:
    """``match_2d_greedy`` as coded (:func:`eval.matching.greedy_official`). pred2d: P arrays
    (>=24, >=2); gt2d: G arrays (45, 2); valid (G,). Cost: spectral norm of the (24, 2) difference;
    IoU: boxes of all GT points vs all predicted points; invalid GT consumed inside the loop."""
    cost = spectral_cost([p[:NUM_BODY_JOINTS] for p in pred2d], [g[:NUM_BODY_JOINTS] for g in gt2d])
    result = greedy_official(cost.reshape(len(pred2d), len(gt2d)),
                             lambda p, g: keypoint_box_iou(pred2d[p], gt2d[g]), iou_threshold, valid)
    return _finish(result.pairs, result.invalid, valid, len(pred2d), len(gt2d))


def _finish(pairs: list[tuple[int, int]], invalid: list[int], valid: np.ndarray, n_pred: int,
            n_gt: int) -> Matching:
    matched_pred = {p for p, _ in pairs}
    matched_gt = {g for _, g in pairs}
    leftover_invalid = [g for g in range(n_gt) if g not in matched_gt and not valid[g]]
    return Matching(pairs=pairs, false_positives=[p for p in range(n_pred) if p not in matched_pred],
                    invalid=sorted(set(invalid) | set(leftover_invalid)))


def match_fixed(pred2d: Sequence[np.ndarray], gt2d: Sequence[np.ndarray], valid: np.ndarray,
                iou_threshold: float = IOU_THRESHOLD) -> Matching:
    """Greedy matching with the quirks corrected (:func:`eval.matching.greedy_fixed`): invalid GT
    set aside first; every (pred, valid GT) pair visited by ascending Frobenius norm of the (24, 2)
    difference; accepted when both are free and the IoU of the boxes of their 24 SMPL joints is
    >= threshold."""
    pred = np.array([np.asarray(p[:NUM_BODY_JOINTS, :2], np.float64) for p in pred2d]).reshape(-1, NUM_BODY_JOINTS, 2)
    gt = np.array([np.asarray(g[:NUM_BODY_JOINTS, :2], np.float64) for g in gt2d]).reshape(-1, NUM_BODY_JOINTS, 2)
    result = greedy_fixed(frobenius_cost(pred, gt), lambda p, g: keypoint_box_iou(pred[p], gt[g]), iou_threshold,
                          valid)
    return _finish(result.pairs, [], valid, len(pred2d), len(gt2d))


MATCHERS: dict[str, Callable[..., Matching]] = {"official": match_official, "fixed": match_fixed}


def match_image(item: tuple[str, list[np.ndarray], list[np.ndarray], np.ndarray]) -> Matching:
    """Per-image task for :func:`parallel_map`: (protocol, pred2d, gt2d, valid) -> Matching."""
    protocol, pred2d, gt2d, valid = item
    return MATCHERS[protocol](pred2d, gt2d, valid)


# -- body models -----------------------------------------------------------------------------------

class AgoraBodyModels:
    """The neutral SMPL (10 betas) and AGORA's kid model (11: SMPL + a shape direction toward the
    kid template), as the official evaluator creates them: smplx's ``SMPL`` class, fed here with
    the arrays of meshfleet's chumpy-free, allow-list reader instead of ``pickle.load``.

    Why not meshfleet's own layers (``BodyModelSet.smpl`` / ``.smpla``): smplx keeps ``posedirs``
    as a transposed (column-major) tensor, and the pose-blend matmul then rounds differently
    (a few percent of the float32 vertices differ in the last bit); and SMPL-A's kid direction is
    computed from the float32 template as ROMP's packer does, smplx's from the float64 one (they
    differ by one ulp in about half of the entries). Exactness with the official numbers needs
    smplx's construction.
    """

    def __init__(self, body_models: str, kid_template: str):
        if is_open(body_models):  # meshfleet's open model: its own kid direction, no official numbers to match
            model = read_open_model(SHIPPED_DIR)
            kid = with_kid_shape(model.smpl, model.kid_template)
            with contextlib.redirect_stdout(io.StringIO()):
                self.adult = smplx.SMPL("", data_struct=smplx_struct(model.smpl), num_betas=10)
                self.kid = smplx.SMPL("", data_struct=smplx_struct(kid), num_betas=11)
            return
        smpl = Path(body_models).expanduser() / "SMPL_NEUTRAL.pkl"
        struct = smplx.utils.Struct(**load_model_pickle(smpl))  # raises BodyModelFileError if absent
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning for 10-beta files
            self.adult = smplx.SMPL(str(smpl.parent), data_struct=struct)
            self.kid = smplx.SMPL(str(smpl.parent), data_struct=struct, age="kid",
                                  kid_template_path=localize(kid_template))
        if self.kid.shapedirs.shape[-1] != 11:
            raise EvalError(f"{kid_template}: kid model has {self.kid.shapedirs.shape[-1]} shape directions, not 11")

    @torch.inference_mode()
    def forward(self, person: PredictedPerson, kid: bool) -> tuple[np.ndarray, np.ndarray]:
        """SMPL forward of a prediction's params as get_smpl_vertices runs it (batch of one, float32
        inputs, ``transl`` added) -> joints (24, 3), vertices (6890, 3), metres, float32."""
        assert person.params is not None
        layer, num_betas = (self.kid, 11) if kid else (self.adult, 10)
        betas = np.asarray(person.params["betas"])[:, :num_betas]
        if betas.shape[1] < num_betas:  # only under 'fixed' (official refuses, see _kid_model)
            betas = np.concatenate([betas, np.zeros((1, num_betas - betas.shape[1]), betas.dtype)], axis=1)
        shape = (1, -1) if person.pose2rot else (1, -1, 3, 3)
        tensor = {k: torch.tensor(np.asarray(person.params[k]), dtype=torch.float) for k in PARAM_KEYS}
        out = layer(betas=torch.tensor(betas, dtype=torch.float), global_orient=tensor["global_orient"].reshape(shape),
                    body_pose=tensor["body_pose"].reshape(shape), transl=tensor["transl"].reshape(1, 3),
                    pose2rot=person.pose2rot)
        return out.joints[0, :NUM_BODY_JOINTS].numpy(), out.vertices[0].numpy()


def _kid_model(person: PredictedPerson, protocol: str) -> bool:
    """official: ``kid_flag`` alone (its 11 betas must be there); fixed: ``kid_flag`` or age 'kid'."""
    if protocol == "official":
        if person.kid_flag and person.params is not None and np.asarray(person.params["betas"]).shape[1] < 11:
            raise EvalError(f"{person.source}: field 'params.betas' has "
                            f"{np.asarray(person.params['betas']).shape[1]} values; kid_flag needs 11")
        return person.kid_flag
    return person.kid_flag or person.age.lower() == "kid"


def predicted_body(person: PredictedPerson, models: Callable[[], AgoraBodyModels],
                   protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """(24, 3) joints and (6890, 3) vertices of a prediction: given arrays win over params, as in
    the official get_pred_joints."""
    joints = verts = None
    if person.joints3d is not None:
        joints = person.joints3d[:NUM_BODY_JOINTS]
    if person.verts is not None:
        verts = person.verts
    if joints is None or verts is None:
        model_joints, model_verts = models().forward(person, _kid_model(person, protocol))
        joints = model_joints if joints is None else joints
        verts = model_verts if verts is None else verts
    return joints, verts


# -- errors ----------------------------------------------------------------------------------------

def aligned_errors(pred_joints: np.ndarray, pred_verts: np.ndarray, gt_joints: np.ndarray, gt_verts: np.ndarray,
                   protocol: str) -> tuple[float, float]:
    """(MPJPE, MVE) in mm of one matched person: joints (24, 3), body vertices (K, 3), metres.

    official: root = midpoint of joints 1 and 2 (``align_by_pelvis``), numpy arithmetic in the
    arrays' own dtypes, then x 1000 in float64. fixed: root = joint 0, float64 throughout.
    """
    if protocol == "official":
        roots = [(a[1] + a[2]) / 2.0 for a in (gt_joints, pred_joints)]
    else:
        gt_joints, pred_joints, gt_verts, pred_verts = (np.asarray(a, np.float64) for a in
                                                        (gt_joints, pred_joints, gt_verts, pred_verts))
        roots = [gt_joints[0], pred_joints[0]]
    joint_err = np.sqrt(np.sum(((gt_joints - roots[0][None]) - (pred_joints - roots[1][None])) ** 2, axis=1))
    vert_err = np.sqrt(np.sum(((gt_verts - roots[0][None]) - (pred_verts - roots[1][None])) ** 2, axis=1))
    return float(np.mean(joint_err)) * MM, float(np.mean(vert_err)) * MM


# -- summary ---------------------------------------------------------------------------------------

def _ratio(error: float, f1: float) -> float:
    """error / f1 in float64 (inf or NaN when f1 is 0, as numpy divides)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(error) / np.float64(f1))


def _group_metrics(counted: np.ndarray, missed: np.ndarray, mpjpe: np.ndarray, mve: np.ndarray,
                   false_positives: int, protocol: str) -> dict[str, float]:
    """f1, precision, recall, mpjpe, mve, nmje, nmve of one group of counted GT people."""
    count, miss = int(counted.sum()), int((counted & missed).sum())
    matched = counted & ~missed
    mean_j = float(pd.Series(mpjpe[matched], dtype=np.float64).mean())  # pandas' mean, as the official
    mean_v = float(pd.Series(mve[matched], dtype=np.float64).mean())
    if protocol == "official":
        # compute_prf1 as coded: rounded to 2 decimals, all zeros without GT. (Where the official code
        # would divide 0 by 0 -- no true and no false positives -- precision is 0.)
        precision, recall, f1 = (0.0, 0.0, 0.0) if count == 0 else \
            precision_recall_f1(count - miss, false_positives, miss, decimals=2)
        mean_j, mean_v = float(np.round(np.float64(mean_j), 1)), float(np.round(np.float64(mean_v), 1))
        nmje, nmve = float(np.round(_ratio(mean_j, f1), 1)), float(np.round(_ratio(mean_v, f1), 1))
    else:
        precision, recall, f1 = precision_recall_f1(count - miss, false_positives, miss)
        nmje, nmve = _ratio(mean_j, f1), _ratio(mean_v, f1)
    return {"f1": f1, "precision": precision, "recall": recall, "mpjpe": mean_j, "mve": mean_v,
            "nmje": nmje, "nmve": nmve}


def summarize(records: pd.DataFrame, false_positives: int, protocol: str) -> dict[str, float]:
    """Metrics from per-GT-person records and the number of false positives.

    records: columns ``counted`` (enters P/R/F1), ``missed``, ``kid`` (bool) and ``mpjpe``, ``mve``
    (mm, NaN when missed). official (compute_avg_error): mean errors over counted, matched people
    rounded with numpy to 0.1 mm; P/R/F1 rounded with Python to 0.01; NMJE = round(MPJPE_rounded /
    F1_rounded, 1); kid scores over kids, charged with every false positive, NaN without kids.
    fixed: the same quantities, unrounded, plus ``pa_mpjpe`` (mm, after a similarity Procrustes
    alignment of the 24 body joints; not in the official table).
    """
    def column(name: str, dtype: type) -> np.ndarray:
        return records[name].to_numpy(dtype) if len(records) else np.zeros(0, dtype)

    counted, missed, kid = column("counted", bool), column("missed", bool), column("kid", bool)
    mpjpe, mve = column("mpjpe", float), column("mve", float)
    out = _group_metrics(counted, missed, mpjpe, mve, false_positives, protocol)
    count, miss = int(counted.sum()), int((counted & missed).sum())
    out.update({"true_positives": float(count - miss), "false_negatives": float(miss),
                "false_positives": float(false_positives)})
    if protocol == "fixed" and "pa_mpjpe" in records:  # meshfleet's addition: MPJPE after Procrustes
        out["pa_mpjpe"] = float(pd.Series(column("pa_mpjpe", float)[counted & ~missed], dtype=np.float64).mean())
    kids = _group_metrics(counted & kid, missed, mpjpe, mve, false_positives, protocol)
    if not (counted & kid).any():  # the official code reports the string 'nan'
        kids = dict.fromkeys(kids, math.nan)
    out.update({f"kid_{k}": v for k, v in kids.items()})
    return out


# -- predictions source ----------------------------------------------------------------------------

class PredictionSource:
    """Predictions per ground-truth image, from an official folder or a meshfleet results dataset
    (converted in memory by the writer's logic)."""

    def __init__(self, uri: str, protocol: str):
        self.uri, self.protocol = uri, protocol
        self.results = results_to_dicts(uri, protocol) if is_results_dataset(uri) else None
        self.files: dict[str, list[str]] = {}
        self.members: dict[str, bytes] | None = None  # zip member name -> bytes (a zip input)
        if self.results is None and uri.lower().endswith(".zip"):
            self._index_zip()
        elif self.results is None:
            self._index_folder()
        self.used: set[str] = set()

    @property
    def kind(self) -> str:
        if self.results is not None:
            return "meshfleet-results"
        return "official-zip" if self.members is not None else "official-folder"

    def _index_zip(self) -> None:
        """The zip the AGORA server takes: person files at its top level or under ``predictions/``."""
        try:
            archive = zipfile.ZipFile(io.BytesIO(read_bytes(self.uri)))
        except (OSError, zipfile.BadZipFile) as err:
            raise EvalError(f"{self.uri}: not a readable zip ({err})") from err
        with archive:
            members = {}
            for info in archive.infolist():
                folder, _, name = info.filename.rstrip("/").rpartition("/")
                if info.is_dir() or not name.endswith(".pkl") or folder not in ("", "predictions"):
                    continue
                if name in members:
                    raise EvalError(f"{self.uri}: {name} is in the zip twice")
                try:
                    members[name] = archive.read(info)
                except (zipfile.BadZipFile, OSError, EOFError) as err:
                    raise EvalError(f"{self.uri}#{info.filename}: cannot read ({err})") from err
        if not members:
            raise EvalError(f"{self.uri}: no predictions (*.pkl at the top or under predictions/)")
        self.members = members
        self._group(list(members), self.uri + "#")

    def _group(self, names: list[str], prefix: str) -> None:
        grouped: dict[str, list[str]] = {}
        for name in names:
            key = person_file_key(name, self.protocol)
            if key is None:
                log.warning("%s%s: not a <image>_personId_<k>.pkl file; ignored", prefix, name)
                continue
            grouped.setdefault(key[0], []).append(name)
        self.files = {img: [prefix + n for n in order_person_files(ns, self.protocol)] for img, ns in grouped.items()}

    def _index_folder(self) -> None:
        files = direct_children(list_files(self.uri, ".pkl"), self.uri)
        if not files:
            raise EvalError(f"{self.uri}: no predictions (*.pkl files, their zip, or meshfleet results)")
        self._group([uri.replace("\\", "/").rsplit("/", 1)[-1] for uri in files], join(self.uri.rstrip("/"), ""))

    def for_image(self, img_path: str) -> list[PredictedPerson]:
        """The predictions of one ground-truth image, in the protocol's order."""
        if self.results is not None:
            key = canonical_image(img_path)
            self.used.add(key)
            named = {f"{key}_personId_{k}.pkl": d for k, d in enumerate(self.results.get(key, []))}
            order = order_person_files(list(named), self.protocol)
            return [parse_prediction(named[n], f"{self.uri}#{n}") for n in order]
        key = img_path if self.protocol == "official" else canonical_image(img_path) + ".png"
        self.used.add(key)
        if self.members is not None:
            return [parse_prediction(loads_pickle(self.members[uri.rsplit("#", 1)[1]], uri), uri)
                    for uri in self.files.get(key, [])]
        return [load_prediction(uri) for uri in self.files.get(key, [])]

    def unused(self) -> int:
        """Number of images with predictions but no ground truth (ignored, as officially)."""
        keys = self.results.keys() if self.results is not None else self.files.keys()
        return len(set(keys) - self.used)


# -- evaluation ------------------------------------------------------------------------------------

def _image_records(image: GtImage, preds: list[PredictedPerson], matching: Matching, body_ids: np.ndarray,
                   models: Callable[[], AgoraBodyModels], protocol: str) -> list[dict]:
    """One record per GT person (and per false positive) of an image."""
    pred_of = {g: p for p, g in matching.pairs}
    counted = image.is_valid if protocol == "official" else image.valid
    records = []
    for g in range(len(image.is_valid)):
        mpjpe = mve = pa_error = math.nan
        if g in pred_of:
            joints, verts = predicted_body(preds[pred_of[g]], models, protocol)
            mpjpe, mve = aligned_errors(joints, verts[body_ids], image.joints3d[g][:NUM_BODY_JOINTS],
                                        image.verts[g][body_ids], protocol)
            pa_error = float(pa_mpjpe(np.asarray(joints[None], np.float64),
                                      np.asarray(image.joints3d[g][:NUM_BODY_JOINTS][None], np.float64))[0])
        status = "matched" if g in pred_of else ("miss" if image.valid[g] else "excluded")
        records.append({
            "dataframe": image.frame_file.rsplit("/", 1)[-1], "image": image.img_path, "gt_person": g,
            "prediction": preds[pred_of[g]].source.rsplit("/", 1)[-1].rsplit("#", 1)[-1] if g in pred_of else "",
            "status": status, "counted": bool(counted[g]), "missed": bool(counted[g]) and g not in pred_of,
            "kid": bool(image.kid[g]), "occlusion": float(image.occlusion[g]),
            "orientation": float(image.orientation[g]),
            "x_location": abs(float(image.joints2d[g][0, 0]) - IMG_WIDTH / 2), "mpjpe": mpjpe, "mve": mve,
            "pa_mpjpe": pa_error,
        })
    for p in matching.false_positives:
        records.append({"dataframe": image.frame_file.rsplit("/", 1)[-1], "image": image.img_path, "gt_person": -1,
                        "prediction": preds[p].source.rsplit("/", 1)[-1].rsplit("#", 1)[-1], "status": "false_positive",
                        "counted": False, "missed": False, "kid": False, "occlusion": math.nan,
                        "orientation": math.nan, "x_location": math.nan, "mpjpe": math.nan, "mve": math.nan,
                        "pa_mpjpe": math.nan})
    return records


def _kid_template(cfg: EvalConfig) -> str:
    """AGORA's kid template: ``<data>/utils/smpl_kid_template.npy`` if there, else the one in
    ``--body-models`` (the same file ROMP ships)."""
    assert cfg.data is not None and cfg.body_models is not None
    in_data = list_files(join(cfg.data, "utils"), "smpl_kid_template.npy")
    return in_data[0] if in_data else join(cfg.body_models, "smpl_kid_template.npy")


def _body_models_loader(cfg: EvalConfig) -> Callable[[], AgoraBodyModels]:
    """Load the body models on first use (only predictions given as params need them)."""
    cache: list[AgoraBodyModels] = []

    def get() -> AgoraBodyModels:
        if not cache:
            if cfg.body_models is None:
                raise EvalError("AGORA predictions given as SMPL params need --body-models (SMPL_NEUTRAL.pkl, "
                                "smpl_kid_template.npy)")
            try:
                cache.append(AgoraBodyModels(cfg.body_models, _kid_template(cfg)))
            except (BodyModelFileError, OSError, ValueError) as err:
                raise EvalError(f"{cfg.body_models}: {err}") from err
        return cache[0]

    return get


def occlusion_plot(records: pd.DataFrame, protocol: str) -> bytes:
    """Mean MPJPE / MVE of matched people per 10 % occlusion bin (the official bins)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = OCCLUSION_BINS[protocol]
    matched = records[(records["status"] == "matched") & records["counted"].astype(bool)]
    groups = pd.cut(matched["occlusion"], bins)
    means = matched.groupby(groups, observed=False)[["mpjpe", "mve"]].mean()
    labels = [f"{max(lo, 0)}-{hi}" for lo, hi in zip(bins[:-1], bins[1:], strict=True)]
    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, means["mpjpe"].to_numpy(), 0.4, label="MPJPE")
    ax.bar(x + 0.2, means["mve"].to_numpy(), 0.4, label="MVE")
    ax.set_xticks(x, labels)
    ax.set_xlabel("occlusion (%)")
    ax.set_ylabel("error (mm)")
    ax.set_title(f"AGORA error vs occlusion ({protocol})")
    ax.legend()
    return png(fig)


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Evaluate predictions (official folder or meshfleet results) against AGORA ground truth."""
    if cfg.data is None:
        raise EvalError("AGORA needs --data DIR holding gt_dataframe_smpl/ and utils/body_verts_smpl.npy")
    protocol = cfg.protocol
    body_ids = load_body_vertex_ids(cfg.data)
    source = PredictionSource(cfg.predictions, protocol)
    models = _body_models_loader(cfg)
    records: list[dict] = []
    frames = frame_files(cfg.data)
    for frame in frames:
        images = load_gt_images(frame)
        preds = [source.for_image(image.img_path) for image in images]
        items = [(protocol, [p.joints2d for p in people], image.joints2d, image.valid)
                 for image, people in zip(images, preds, strict=True)]
        for image, people, matching in zip(images, preds, parallel_map(match_image, items), strict=True):
            records.extend(_image_records(image, people, matching, body_ids, models, protocol))
    if source.unused():
        log.warning("%d images have predictions but no ground truth; ignored", source.unused())
    table = pd.DataFrame.from_records(records)
    gt = table[table["status"] != "false_positive"] if len(table) else table
    fps = int((table["status"] == "false_positive").sum()) if len(table) else 0
    metrics = summarize(gt, fps, protocol)
    plots = {"agora_error_vs_occlusion.png": occlusion_plot(table, protocol)} if len(gt) else {}
    params = {"iou_threshold": IOU_THRESHOLD, "image_resolution": "3840x2160", "dataframes": len(frames),
              "prediction_format": source.kind, "body_vertices": int(len(body_ids)), "track": "SMPL"}
    return EvalResult(metrics=metrics, rows=table, plots=plots, params=params)

