"""3DPW: the protocol behind ROMP's published 3DPW test numbers, from the official sequence files.

ROMP's 3DPW test numbers come from ``python -m romp.test --configs_yml=configs/eval_3dpw_test.yml``
("pw3d_test" -> dataset "pw3d_vibe"): ``romp/test.py`` -> ``romp/eval.py`` (``val_result``,
``calc_outputs_evaluation_matrix``) -> ``romp/lib/loss_funcs/keypoints_loss.py`` (``calc_mpjpe``,
``calc_pampjpe``) -> ``romp/lib/evaluation/evaluation_matrix.py``
(``batch_compute_similarity_transform_torch``, ``compute_error_verts``). Reproduced here:

* Frames (VIBE's ``threedpw_utils.read_data``, which built the db ROMP's loader reads):
  ``campose_valid`` and more than 6 of the 12 body keypoints of ``poses2d`` with confidence > 0.3.
* Ground truth: SMPL_NEUTRAL with ``betas[:10]`` and ``poses``, the global orientation turned
  into the camera by ``cam_poses[t, :3, :3]``, as VIBE's ``read_data`` built the db ROMP reads
  (``smpl = SMPL(SMPL_MODEL_DIR, ...)``: the neutral model, whatever the person's gender); the
  camera translation cancels in every root-aligned metric.
* Joints: LSP-14 regressed from the mesh by ``J_regressor_h36m.npy`` (``H36M_TO_J14``); the
  predictions' same rows are ``joints[:, 54:68]`` (ROMP: ``joints_h36m17[:, :14]``).
* Root: the midpoint of LSP R_Hip / L_Hip for both (``align_inds``); MPJPE x1000 = mm.
* Matching (``match_gt_pred``, ``romp/lib/maps_utils/result_parser.py``, issue #471): each GT
  person takes the prediction of its image whose body centre is nearest; a prediction may serve
  two GT people; GT people of an image without predictions are skipped, not penalised. Centres:
  mean of the visible torso keypoints (``_calc_center_``); predictions: projected shoulders and
  hips (``pj2d_org`` joints 17, 16, 45, 46).
* PVE (``compute_error_verts`` / ``get_verts`` of ROMP 1.0's ``eval.py``): mean vertex distance
  between the GT params with the hands zeroed and the predicted params, both meshed without
  translation; ``get_verts`` always meshes with SMPL_NEUTRAL, whatever the GT gender.
* PA-MPJPE (``calc_pampjpe``): one Procrustes call per loader batch of 16 images on (B, 14, 3)
  (B = matched people in the batch; GT root-aligned, predictions as output). It transposes to
  (B, 3, 14) only when ``S1.shape[0] not in (2, 3)``, so a batch of exactly 2 or 3 matched people
  gets a 14-dimensional fit over the x, y, z columns (the VIBE quirk). Batch size, not people per
  frame, decides: on the real test set (24423 images, >= 7 per batch) it practically never fires,
  unlike TRACE's per-frame evaluator, where every 2-person frame hit it.

``official``: all of the above. ``fixed``: per-person Procrustes (:func:`eval.metrics.pa_mpjpe`)
and the ground truth (joints and PVE mesh) from the person's gendered model ('m'/'f'), the
official 3DPW ground truth.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from core.body_models import BodyModelSet
from core.smpl_pickle import BodyModelFileError
from eval.common import EvalConfig, EvalError, EvalResult, parallel_map, png, read_results, unique_by_name
from eval.metrics import MM, align_root, mpjpe, pa_mpjpe, procrustes_align
from eval.safe_pickle import load_pickle
from pipelines.body_model_sets import load_body_model_set
from pipelines.schema import column_array

log = logging.getLogger(__name__)

SPLITS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
ALLOWED_CLASSES: frozenset[tuple[str, str]] = frozenset()  # numpy arrays, lists, dicts and str only
LSP14 = slice(54, 68)  # H36M-regressed joints in H36M_TO_J17 order; the first 14 are LSP-14
LSP_HIPS = [2, 3]  # R_Hip, L_Hip within LSP-14
PRED_TORSO = [17, 16, 45, 46]  # R/L shoulder (SMPL), R/L hip (LSP) in the 71-joint set
GT_TORSO = [2, 5, 8, 11]  # RShoulder, LShoulder, RHip, LHip in 3DPW's COCO-18 poses2d
GT_BODY = [10, 9, 8, 11, 12, 13, 4, 3, 2, 5, 6, 7]  # VIBE's 12 "common" body joints
VIS_THRESH = 0.3
MIN_KEYPOINTS = 6  # a frame needs strictly more visible body keypoints
BATCH_IMAGES = 16  # val_batch_size of configs/eval_3dpw_test.yml
QUIRK_BATCH_SIZES = (2, 3)
SOURCE_RE = re.compile(r"(?:^|/)([^/]+)/image_(\d+)\.(?:jpg|jpeg|png)$", re.IGNORECASE)
GT_GENDERS = {"m": "male", "f": "female"}
PRED_COLUMNS = ["source", "person", "joints", "pj2d_org", "smpl_thetas", "smpl_betas"]


@dataclass(frozen=True)
class Protocol:
    """What differs between ``official`` and ``fixed``."""

    name: str
    batch_procrustes_quirk: bool  # reproduce the shape[0] in (2, 3) transpose test per 16-image batch
    gt_gendered: bool  # GT joints and PVE mesh from the gendered model (official: neutral, as VIBE's db)


PROTOCOLS = {"official": Protocol("official", True, False), "fixed": Protocol("fixed", False, True)}


@dataclass(frozen=True)
class Sequence:
    """One ``sequenceFiles`` pickle. P people, T frames.

    genders (P,) 'm'/'f'; betas (P, 10); poses (P, T, 72) axis-angle, world frame;
    keypoints (P, T, 18, 3) COCO-18 x, y px and confidence; cam_rot (T, 3, 3) world -> camera;
    campose_valid (P, T) bool.
    """

    name: str
    genders: tuple[str, ...]
    betas: np.ndarray
    poses: np.ndarray
    keypoints: np.ndarray
    cam_rot: np.ndarray
    campose_valid: np.ndarray


@dataclass(frozen=True)
class FramePredictions:
    """The predicted people of one image: person (N,), joints (N, 14, 3) m as output (LSP-14),
    centers (N, 2) px, thetas (N, 72), betas (N, 10 or 11)."""

    person: np.ndarray
    joints: np.ndarray
    centers: np.ndarray
    thetas: np.ndarray
    betas: np.ndarray


@dataclass(frozen=True)
class SequenceTask:
    """One unit of parallel work: a sequence file and the predictions of its images."""

    path: str
    body_models: str
    predictions: dict[int, FramePredictions]
    gt_gendered: bool


@dataclass
class SequenceOutcome:
    """Per GT person-frame rows (loader order), matched people per image (loader order), and for
    the matched rows: predicted LSP-14 as output and root-aligned GT LSP-14 (M, 14, 3) metres."""

    rows: list[dict[str, Any]]
    image_matches: list[int]
    pred_joints: np.ndarray
    gt_joints: np.ndarray


# ----------------------------------------------------------------------------------- loading


def _field(data: dict, name: str, path: str) -> Any:
    if name not in data:
        raise EvalError(f"{path}: missing field {name!r}")
    return data[name]


def _per_person(data: dict, name: str, path: str, people: int, shape: tuple[int | None, ...]) -> np.ndarray:
    """A per-person list of equally shaped arrays -> (P, *shape) float array; None = any size."""
    value = _field(data, name, path)
    try:
        items = [np.asarray(v, dtype=np.float64) for v in value]
        stacked = np.stack(items) if items else np.zeros((0, *[s or 0 for s in shape]))
    except (TypeError, ValueError) as err:
        raise EvalError(f"{path}: field {name!r} is not a list of equally shaped arrays ({err})") from err
    ok = stacked.ndim == len(shape) + 1
    ok = ok and all(s is None or a == s for a, s in zip(stacked.shape[1:], shape, strict=True))
    if len(stacked) != people or not ok:
        want = "x".join("?" if s is None else str(s) for s in shape)
        raise EvalError(f"{path}: field {name!r} has shape {stacked.shape}, expected {people} people of {want}")
    return stacked


def _genders(data: dict, path: str) -> tuple[str, ...]:
    raw = _field(data, "genders", path)
    if not isinstance(raw, (list, tuple)):
        raise EvalError(f"{path}: field 'genders' must be a list of 'm'/'f', not {type(raw).__name__}")
    genders = tuple(g.decode("latin1") if isinstance(g, bytes) else str(g) for g in raw)
    bad = [g for g in genders if g not in GT_GENDERS]
    if bad:
        raise EvalError(f"{path}: field 'genders' holds {bad!r}; expected 'm' or 'f'")
    return genders


def load_sequence(path: str) -> Sequence:
    """Read one official sequence pickle (Python-2 era, read as latin1) through the allow-list."""
    data = load_pickle(path, ALLOWED_CLASSES)
    if not isinstance(data, dict):
        raise EvalError(f"{path}: expected a dict of 3DPW fields, got {type(data).__name__}")
    genders = _genders(data, path)
    people = len(genders)
    try:
        cam_poses = np.asarray(_field(data, "cam_poses", path), dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise EvalError(f"{path}: field 'cam_poses' is not a numeric array ({err})") from err
    if cam_poses.ndim != 3 or cam_poses.shape[1:] != (4, 4):
        raise EvalError(f"{path}: field 'cam_poses' has shape {cam_poses.shape}, expected (T, 4, 4)")
    frames = len(cam_poses)
    betas = _per_person(data, "betas", path, people, (None,))
    if betas.shape[1] < 10:
        raise EvalError(f"{path}: field 'betas' has {betas.shape[1]} coefficients, expected at least 10")
    return Sequence(
        name=Path(path).stem,
        genders=genders,
        betas=betas[:, :10],
        poses=_per_person(data, "poses", path, people, (frames, 72)),
        keypoints=_per_person(data, "poses2d", path, people, (frames, 3, 18)).transpose(0, 1, 3, 2),
        cam_rot=cam_poses[:, :3, :3],
        campose_valid=_per_person(data, "campose_valid", path, people, (frames,)).astype(bool),
    )


def sequence_files(data_dir: str, split: str | None) -> list[str]:
    """``<data>/sequenceFiles/<split>/*.pkl`` in name order (``split`` default: test)."""
    folder = SPLITS.get(split or "test")
    if folder is None:
        raise EvalError(f"split must be one of {sorted(SPLITS)}, not {split!r}")
    root = Path(data_dir) / "sequenceFiles" / folder
    files = sorted(str(p) for p in root.glob("*.pkl"))
    if not files:
        raise EvalError(f"{root}: no 3DPW sequence files (*.pkl)")
    return files


def read_predictions(uri: str) -> dict[str, dict[int, FramePredictions]]:
    """meshfleet results -> {sequence: {frame: people}} from ``source`` = .../<sequence>/image_<n>.jpg."""
    table, _ = read_results(uri, PRED_COLUMNS)
    try:
        joints = column_array(table, "joints", (71, 3)).astype(np.float64)
        pj2d = column_array(table, "pj2d_org", (71, 2)).astype(np.float64)
        thetas = column_array(table, "smpl_thetas", (72,)).astype(np.float64)
        betas = column_array(table, "smpl_betas").astype(np.float64)
    except ValueError as err:
        raise EvalError(f"{uri}: malformed results column ({err})") from err
    if betas.shape[1] not in (10, 11):
        raise EvalError(f"{uri}: field 'smpl_betas' has {betas.shape[1]} values, expected 10 or 11")
    person = np.asarray(table.column("person").to_numpy(zero_copy_only=False), dtype=np.int64)
    sources = table.column("source").to_pylist()
    unique_by_name(sources, _image_key, uri, "3DPW image (sequence, frame)")
    keys = [_image_key(s) for s in sources]
    if table.num_rows and all(k is None for k in keys):
        raise EvalError(f"{uri}: field 'source' does not follow .../imageFiles/<sequence>/image_<frame>.jpg")
    groups: dict[tuple[str, int], list[int]] = {}
    for row, key in enumerate(keys):
        if key is not None:
            groups.setdefault(key, []).append(row)
    if None in keys:
        log.warning("%s: %d result rows are not .../<sequence>/image_<n>.jpg images; ignored", uri, keys.count(None))
    out: dict[str, dict[int, FramePredictions]] = {}
    for (seq, frame), rows in groups.items():
        idx = np.array(sorted(rows, key=lambda r: person[r]))
        out.setdefault(seq, {})[frame] = FramePredictions(
            person=person[idx], joints=joints[idx, LSP14], centers=pj2d[idx][:, PRED_TORSO].mean(axis=1),
            thetas=thetas[idx], betas=betas[idx],
        )
    return out


def _image_key(source: str | None) -> tuple[str, int] | None:
    match = SOURCE_RE.search(source or "")
    return (match.group(1), int(match.group(2))) if match else None


# ----------------------------------------------------------------------- frames and matching


def valid_frames(seq: Sequence) -> np.ndarray:
    """(P, T) bool: campose_valid and > 6 of the 12 body keypoints with confidence > 0.3."""
    visible = (seq.keypoints[:, :, GT_BODY, 2] > VIS_THRESH).sum(axis=-1)
    return seq.campose_valid & (visible > MIN_KEYPOINTS)


def loader_order(valid: np.ndarray) -> list[int]:
    """Frames in the order ROMP's loader meets them: person 0's valid frames, then frames first
    valid for person 1, ... (``load_vibe_annots`` keeps first-seen image names)."""
    seen: dict[int, None] = {}
    for person in valid:
        seen.update(dict.fromkeys(np.flatnonzero(person).tolist()))
    return list(seen)


def gt_center(keypoints: np.ndarray) -> np.ndarray:
    """(18, 3) COCO-18 -> (2,) px: mean of the visible torso keypoints, else of the visible body ones."""
    torso = keypoints[GT_TORSO]
    visible = torso[:, 2] > VIS_THRESH
    if visible.any():
        return torso[visible, :2].mean(axis=0)
    body = keypoints[GT_BODY]
    return body[body[:, 2] > VIS_THRESH, :2].mean(axis=0)


def match_nearest(gt_centers: np.ndarray, pred_centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each GT (G, 2) takes the nearest prediction (N, 2), N >= 1: (G,) indices, (G,) px distances.
    Not exclusive, first index on ties (``torch.argmin``)."""
    dist = np.linalg.norm(gt_centers[:, None] - pred_centers[None], axis=-1)
    best = dist.argmin(axis=1)
    return best, dist[np.arange(len(best)), best]


# ------------------------------------------------------------------------------ body models


@lru_cache(maxsize=8)
def _models(directory: str, gender: str, for_bev: bool = False) -> BodyModelSet:
    try:
        return load_body_model_set(directory, gender=gender, for_bev=for_bev).eval()
    except (BodyModelFileError, ValueError) as err:
        raise EvalError(f"{directory}: cannot load the {gender} body model ({err})") from err


def _forward(fn: Callable, betas: np.ndarray, thetas: np.ndarray, chunk: int = 512,
             num_verts: int = 6890) -> tuple[np.ndarray, np.ndarray]:
    """Body-frame joints (N, 71, 3) and vertices (N, num_verts, 3) in metres, no translation."""
    joints, verts = [], []
    with torch.inference_mode():
        for i in range(0, len(betas), chunk):
            out = fn(torch.from_numpy(betas[i:i + chunk]).float(), torch.from_numpy(thetas[i:i + chunk]).float())
            joints.append(out.joints.numpy())
            verts.append(out.verts.numpy())
    if not joints:
        return np.zeros((0, 71, 3)), np.zeros((0, num_verts, 3))
    return np.concatenate(joints).astype(np.float64), np.concatenate(verts).astype(np.float64)


def to_camera(points: np.ndarray, root: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Rotate body-frame points (N, K, 3) about the SMPL root (N, 3) by rot (N, 3, 3): the mesh of
    the same pose with global orientation ``rot @ R(pose[:3])`` (LBS turns everything about J0)."""
    return np.einsum("nij,nkj->nki", rot, points - root[:, None]) + root[:, None]


def hands_zeroed(poses: np.ndarray) -> np.ndarray:
    """(N, 72) -> the same with the two hand joints (22, 23) zeroed, as ROMP's PVE target."""
    out = poses.copy()
    out[:, 66:] = 0.0
    return out


# ------------------------------------------------------------------------------ per sequence


def _match_sequence(seq: Sequence, valid: np.ndarray, order: list[int],
                    preds: dict[int, FramePredictions]) -> list[dict[str, Any]]:
    """One row per valid GT person-frame in loader order, with its match (pred index or -1)."""
    rows = []
    for frame in order:
        people = np.flatnonzero(valid[:, frame])
        pred = preds.get(frame)
        if pred is None or not len(pred.person):
            best, dist = np.full(len(people), -1), np.full(len(people), np.nan)
        else:
            centers = np.stack([gt_center(seq.keypoints[p, frame]) for p in people])
            best, dist = match_nearest(centers, pred.centers)
        for p, b, d in zip(people, best, dist, strict=True):
            rows.append({"sequence": seq.name, "frame": int(frame), "gt_person": int(p),
                         "gender": seq.genders[p], "matched": bool(b >= 0), "pred_index": int(b),
                         "pred_person": int(pred.person[b]) if pred is not None and b >= 0 else -1,
                         "shared": bool(b >= 0 and (best == b).sum() > 1), "center_dist_px": float(d)})
    return rows


def _gt_meshes(seq: Sequence, rows: list[dict], task: SequenceTask) -> tuple[np.ndarray, np.ndarray]:
    """Root-aligned GT LSP-14 (M, 14, 3) and the PVE target vertices (M, 6890, 3) of matched rows."""
    joints = np.zeros((len(rows), 14, 3))
    verts = np.zeros((len(rows), 6890, 3))
    for gender in sorted({r["gender"] for r in rows}):
        sel = np.array([i for i, r in enumerate(rows) if r["gender"] == gender])
        people = np.array([rows[i]["gt_person"] for i in sel])
        frames = np.array([rows[i]["frame"] for i in sel])
        betas, poses, rot = seq.betas[people], seq.poses[people, frames], seq.cam_rot[frames]
        model = _models(task.body_models, GT_GENDERS[gender] if task.gt_gendered else "neutral")
        if verts.shape[1] != model.num_verts:  # another body-model set than SMPL (e.g. the open model)
            verts = np.zeros((len(rows), model.num_verts, 3))
        body_joints, _ = _forward(model.smpl_forward, betas, poses, num_verts=model.num_verts)
        joints[sel] = align_root(np.einsum("nij,nkj->nki", rot, body_joints[:, LSP14]), LSP_HIPS)
        pve_joints, pve_verts = _forward(model.smpl_forward, betas, hands_zeroed(poses), num_verts=model.num_verts)
        verts[sel] = to_camera(pve_verts, pve_joints[:, 0], rot)
    return joints, verts


def _pred_meshes(task: SequenceTask, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Predicted LSP-14 as output (M, 14, 3) and the vertices of the predicted params (no translation)."""
    picked = [(task.predictions[r["frame"]], r["pred_index"]) for r in rows]
    joints = np.stack([p.joints[i] for p, i in picked])
    betas = np.stack([p.betas[i] for p, i in picked])
    thetas = np.stack([p.thetas[i] for p, i in picked])
    bev = betas.shape[1] == 11
    models = _models(task.body_models, "neutral", bev)
    _, verts = _forward(models.smpla_forward if bev else models.smpl_forward, betas, thetas, num_verts=models.num_verts)
    return joints, verts


def evaluate_sequence(task: SequenceTask, chunk: int = 256) -> SequenceOutcome:
    """Match, build the ground truth and score MPJPE / PVE of one sequence (PA is per batch, later)."""
    seq = load_sequence(task.path)
    valid = valid_frames(seq)
    order = loader_order(valid)
    rows = _match_sequence(seq, valid, order, task.predictions)
    matched = [r for r in rows if r["matched"]]
    pred_joints, gt_joints = np.zeros((len(matched), 14, 3)), np.zeros((len(matched), 14, 3))
    for start in range(0, len(matched), chunk):
        part = slice(start, start + chunk)
        gt_joints[part], gt_verts = _gt_meshes(seq, matched[part], task)
        pred_joints[part], pred_verts = _pred_meshes(task, matched[part])
        errors = mpjpe(align_root(pred_joints[part], LSP_HIPS), gt_joints[part])
        pves = np.linalg.norm(pred_verts - gt_verts, axis=-1).mean(axis=-1) * MM
        for row, error, pve in zip(matched[part], errors, pves, strict=True):
            row.update(mpjpe=float(error), pve=float(pve))
    per_image = dict.fromkeys(order, 0)
    for row in matched:
        per_image[row["frame"]] += 1
    return SequenceOutcome(rows, list(per_image.values()), pred_joints, gt_joints)


# ---------------------------------------------------------------------------------- PA-MPJPE


def procrustes_unpermuted(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """What ``batch_compute_similarity_transform_torch`` returns when it skips the transpose:
    each (J, 3) person read as 3 points (the x, y, z columns) in J dimensions, aligned by a
    J-dimensional similarity (means over the 3 columns, J x J rotation with the det sign fix)."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"expected matching (N, J, 3) arrays, got {pred.shape} and {gt.shape}")
    out = np.empty_like(gt)
    for n, (p, g) in enumerate(zip(pred, gt, strict=True)):
        mu_p, mu_g = p.mean(axis=1, keepdims=True), g.mean(axis=1, keepdims=True)
        x1, x2 = p - mu_p, g - mu_g
        u, _, vt = np.linalg.svd(x1 @ x2.T)
        z = np.eye(len(u))
        z[-1, -1] = np.sign(np.linalg.det(u @ vt))
        rot = vt.T @ z @ u.T
        scale = np.trace(rot @ x1 @ x2.T) / max(float((x1 ** 2).sum()), 1e-12)
        out[n] = scale * rot @ x1 + mu_g
    return out


def official_batch_pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, bool]:
    """PA-MPJPE (B,) mm of one loader batch as ROMP computes it, and whether the quirk applied."""
    quirk = len(pred) in QUIRK_BATCH_SIZES
    aligned = procrustes_unpermuted(pred, gt) if quirk else procrustes_align(pred, gt)
    return mpjpe(aligned, gt), quirk


def batch_ids(image_matches: list[int], batch_images: int = BATCH_IMAGES) -> np.ndarray:
    """Loader batch of every matched person: images are batched ``batch_images`` at a time."""
    image_batch = np.arange(len(image_matches)) // batch_images
    return np.repeat(image_batch, image_matches).astype(np.int64)


def pa_errors(outcomes: list[SequenceOutcome], protocol: Protocol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PA-MPJPE (M,) mm of all matched people (sequence order), their batch ids and quirk flags."""
    pred = np.concatenate([o.pred_joints for o in outcomes])
    gt = np.concatenate([o.gt_joints for o in outcomes])
    batches = batch_ids([n for o in outcomes for n in o.image_matches])
    if not protocol.batch_procrustes_quirk:
        return pa_mpjpe(pred, gt), batches, np.zeros(len(pred), bool)
    errors, quirks = np.zeros(len(pred)), np.zeros(len(pred), bool)
    for batch in np.unique(batches):
        sel = batches == batch
        errors[sel], quirks[sel] = official_batch_pa_mpjpe(pred[sel], gt[sel])
    return errors, batches, quirks


# ---------------------------------------------------------------------------------- evaluate


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Score meshfleet results on a 3DPW split (see the module docstring for the protocol)."""
    if not cfg.data or not cfg.body_models:
        raise EvalError("3dpw needs --data (the folder holding sequenceFiles/) and --body-models")
    protocol = PROTOCOLS[cfg.protocol]
    files = sequence_files(cfg.data, cfg.split)
    predictions = read_predictions(cfg.predictions)
    tasks = [SequenceTask(f, cfg.body_models, predictions.get(Path(f).stem, {}), protocol.gt_gendered)
             for f in files]
    unseen = [Path(t.path).stem for t in tasks if not t.predictions]
    if unseen:
        log.warning("3dpw: no predictions for %d of %d sequences: %s", len(unseen), len(tasks), ", ".join(unseen))
    outcomes = parallel_map(evaluate_sequence, tasks, chunk=1)
    rows = pd.DataFrame([r for o in outcomes for r in o.rows])
    if rows.empty:
        raise EvalError(f"{cfg.data}: no valid ground-truth person-frames in split {cfg.split or 'test'}")
    matched = rows["matched"].to_numpy()
    if not matched.any():
        raise EvalError(f"{cfg.predictions}: no prediction lies in an image of the split (field 'source')")
    errors, batches, quirks = pa_errors(outcomes, protocol)
    rows.loc[matched, "pa_mpjpe"] = errors
    rows.loc[matched, "batch"] = batches
    rows.loc[matched, "pa_quirk"] = quirks
    rows = rows.drop(columns="pred_index")
    return EvalResult(metrics=_metrics(rows, quirks), rows=rows, plots={"per_sequence.png": _plot(rows)},
                      params=_params(protocol, cfg, len(files)))


def _metrics(rows: pd.DataFrame, quirks: np.ndarray) -> dict[str, float]:
    scored = rows[rows["matched"]]
    return {
        "mpjpe": float(scored["mpjpe"].mean()),
        "pa_mpjpe": float(scored["pa_mpjpe"].mean()),
        "pve": float(scored["pve"].mean()),
        "gt_people": float(len(rows)),
        "matched": float(len(scored)),
        "missed": float((~rows["matched"]).sum()),
        "shared": float(scored["shared"].sum()),
        "pa_quirk_people": float(quirks.sum()),
    }


def _params(protocol: Protocol, cfg: EvalConfig, sequences: int) -> dict[str, Any]:
    return {
        "pw3d_split": SPLITS[cfg.split or "test"],
        "pw3d_sequences": sequences,
        "pw3d_joints": "lsp14_h36m_regressor",
        "pw3d_root": "lsp_hip_midpoint",
        "pw3d_matching": "nearest_torso_center_non_exclusive",
        "pw3d_frames": f"campose_valid_and_>{MIN_KEYPOINTS}_keypoints_conf>{VIS_THRESH}",
        "pw3d_pa": f"batch_of_{BATCH_IMAGES}_images_quirk" if protocol.batch_procrustes_quirk else "per_person",
        "pw3d_gt_model": "gendered" if protocol.gt_gendered else "neutral",
        "pw3d_pve_gt_model": "gendered" if protocol.gt_gendered else "neutral",
    }


def _plot(rows: pd.DataFrame) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = rows[rows["matched"]].groupby("sequence")[["mpjpe", "pa_mpjpe", "pve"]].mean()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(means) + 2), 4))
    width = 0.27
    x = np.arange(len(means))
    for k, name in enumerate(means.columns):
        ax.bar(x + (k - 1) * width, means[name].to_numpy(), width, label=name)
    ax.set_xticks(x, means.index, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("mm")
    ax.set_title("3DPW per-sequence errors")
    ax.legend()
    return png(fig)
