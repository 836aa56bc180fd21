"""CMU Panoptic: 14-joint MPJPE on Haggling, Mafia, Ultimatum and Pizza, as ROMP / BEV score it.

Reproduces ``simple_romp/evaluation/eval_cmu_panoptic.py`` of Arthur151/ROMP (``load_gts`` +
``evaluation_results``, itself following the CRMH evaluation of Jiang et al.) on the CRMH files
``<data>/panoptic_annot/<sequence>.pkl`` and a meshfleet results dataset (BEV or ROMP).

Pipeline, per annotated image:

1. ground truth: the 24 CRMH joints -> 14 (LSP-like order, last = pelvis); a person is kept if
   more than 5 of its 2D joints lie strictly inside the annotation's ``width`` x ``height``; 2D
   scaled by 1920/832 to the original image; 3D joints with confidence < 0.2 become -2, then
   (0, 0.06, 0.03) m is added to all but the pelvis; joints with x > -2 are "visible".
2. predictions: ``pj2d_org`` and ``joints`` columns 54-70 (H36M-17 in H36M_TO_J17 order) ->
   14 joints (indices 0-12 and 14 = pelvis); 3D made pelvis-relative.
3. greedy 2D matching (cost = largest singular value of the (K, 2) difference over the GT joints
   with x > -2; keypoint-box IoU >= 0.05, its low-IoU counter ending the loop early).
4. per matched person: mean over 14 joints of ||pred - gt|| x visible, in mm, pelvis-relative
   (no Procrustes, no scale); every unmatched kept GT person counts 150 mm.
5. per-sequence means (sequence = the name contained in the image name) and the mean over all
   person instances.

``protocol='official'`` is the code as it runs; ``'fixed'`` corrects exactly two quirks: (a) the
2D confidence > 0.2 test, passed as ``out`` of ``np.logical_and`` and so never applied, really
applies in the in-image count; (b) a person's error is averaged over its visible joints only,
instead of counting invisible joints as 0 mm in a mean over 14.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from eval.common import EvalConfig, EvalError, EvalResult, is_results_dataset, parallel_map, png, read_results
from eval.matching import greedy_official, keypoint_box_iou, spectral_cost
from eval.safe_pickle import load_pickle
from pipelines.schema import column_array
from pipelines.storage import join, list_files

log = logging.getLogger(__name__)

SEQUENCES = ("haggling", "mafia", "ultimatum", "pizza")
ANNOT_DIR = "panoptic_annot"
# The CRMH files hold only lists, dicts, str, int and numpy arrays: nothing beyond numpy and the
# inert builtins that the restricted unpickler always admits.
ANNOT_CLASSES: frozenset[tuple[str, str]] = frozenset()

# CRMH 24 joints -> H36M-17 -> 14 joints; composed, J24 indices [0..12, 14].
J24_TO_H36M = (14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6)
H36M_TO_J14 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 0)
J24_TO_J14 = tuple(J24_TO_H36M[i] for i in H36M_TO_J14)
# meshfleet joints 54-70 are H36M-17 in H36M_TO_J17 order: 14 joints = [0..12, 14], pelvis = 14.
H36M17_COLUMNS = slice(54, 71)
J17_TO_J14 = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14)
PRED_ROOT = 14
GT_ROOT = 13  # pelvis, the last of the 14

ANNOT_SCALE = 1920.0 / 832.0  # CRMH annotations are at 832 px wide; images at 1920
MIN_IN_IMAGE = 5  # a person needs MORE than this many 2D joints inside the image
CONF_THRESH = 0.2  # 2D (fixed protocol only) and 3D visibility threshold
INVALID = -2.0  # sentinel for invisible 3D joints; "visible" means x > INVALID
GT_OFFSET = np.array([0.0, 0.06, 0.03])  # metres, added to the 13 non-pelvis joints (float64)
IOU_THRESH = 0.05
MISS_MM = 150.0
MM = 1000.0


@dataclass(frozen=True)
class FrameGT:
    """One annotated image: ``image`` = ``<sequence>-<camera>_<frame>.jpg`` (the official key),
    ``width`` x ``height`` (annotation pixels, 832-wide scale), ``kpts2d`` (N, 24, 3) px + conf,
    ``kpts3d`` (N, 24, 4) metres + conf; ``source`` = the annotation file."""

    image: str
    source: str
    width: float
    height: float
    kpts2d: np.ndarray
    kpts3d: np.ndarray


@dataclass(frozen=True)
class FramePred:
    """Predicted people of one image, in ``person`` order: ``pj2d`` (P, 17, 2) original-image px,
    ``joints`` (P, 17, 3) metres (H36M-17, joints 54-70), ``person`` (P,) meshfleet ids."""

    pj2d: np.ndarray
    joints: np.ndarray
    person: np.ndarray


@dataclass(frozen=True)
class FrameTask:
    """One unit of per-image work for :func:`parallel_map` (picklable)."""

    gt: FrameGT
    pred: FramePred | None
    protocol: str


@dataclass(frozen=True)
class Matching:
    """Greedy matching result: ``pairs`` [(pred, gt)] in the order found; unmatched ids sorted."""

    pairs: list[tuple[int, int]]
    false_positives: list[int]
    misses: list[int]


@dataclass
class FrameScore:
    """``errors``: per-person MPJPE (mm) in the official order (matched, then missed at 150),
    the values that enter the means; ``rows``: per-person details."""

    image: str
    errors: list[float] = field(default_factory=list)
    matched: int = 0
    missed: int = 0
    false_positives: int = 0
    rows: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# loading


def _image_key(filename: object, uri: str, index: int) -> str:
    """``processed/<sequence>/<camera>/<name>.png`` -> ``<sequence>-<name>.jpg`` (the official
    key: path component 1, a dash, the last component with ``.png`` replaced by ``.jpg``)."""
    if not isinstance(filename, str) or filename.count("/") < 1:
        raise EvalError(f"{uri}: frame {index}: field 'filename' must be a path like "
                        f"'processed/<sequence>/<camera>/<image>.png', got {filename!r}")
    parts = filename.split("/")
    return parts[1] + "-" + parts[-1].replace(".png", ".jpg")


def _people_array(value: object, uri: str, index: int, name: str, width: int) -> np.ndarray:
    """A (N, 24, width) float array; an empty array (CRMH writes ``np.array([])`` for a frame
    without people) becomes (0, 24, width)."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
        raise EvalError(f"{uri}: frame {index}: field {name!r} must be a numeric numpy array, "
                        f"got {type(value).__name__}")
    if value.size == 0:
        return np.zeros((0, 24, width))
    if value.ndim != 3 or value.shape[1:] != (24, width):
        raise EvalError(f"{uri}: frame {index}: field {name!r} must have shape (N, 24, {width}), "
                        f"got {value.shape}")
    return value if value.dtype.kind == "f" else value.astype(np.float64)


def _frame_from_record(record: object, uri: str, index: int) -> FrameGT:
    if not isinstance(record, dict):
        raise EvalError(f"{uri}: frame {index} must be a dict, got {type(record).__name__}")
    for name in ("filename", "width", "height", "kpts2d", "kpts3d"):
        if name not in record:
            raise EvalError(f"{uri}: frame {index}: missing field {name!r}")
    size = {}
    for name in ("width", "height"):
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise EvalError(f"{uri}: frame {index}: field {name!r} must be a number, got {value!r}")
        size[name] = float(value)
    kpts2d = _people_array(record["kpts2d"], uri, index, "kpts2d", 3)
    kpts3d = _people_array(record["kpts3d"], uri, index, "kpts3d", 4)
    if len(kpts2d) != len(kpts3d):
        raise EvalError(f"{uri}: frame {index}: field 'kpts3d' has {len(kpts3d)} people but "
                        f"'kpts2d' has {len(kpts2d)}")
    return FrameGT(_image_key(record["filename"], uri, index), uri, size["width"], size["height"],
                   kpts2d, kpts3d)


def load_annotation_file(uri: str) -> list[FrameGT]:
    """One CRMH ``<sequence>.pkl``: a list of per-frame dicts -> frames (EvalError if malformed)."""
    records = load_pickle(uri, ANNOT_CLASSES)
    if not isinstance(records, (list, tuple)):
        raise EvalError(f"{uri}: expected a list of per-frame dicts, got {type(records).__name__}")
    return [_frame_from_record(record, uri, i) for i, record in enumerate(records)]


def load_annotations(data: str) -> list[FrameGT]:
    """All frames of ``<data>/panoptic_annot/*.pkl`` (files in name order). An image present in
    several files keeps its last annotation, as the official dict does."""
    folder = join(data, ANNOT_DIR)
    files = list_files(folder, ".pkl")
    if not files:
        raise EvalError(f"{folder}: no CMU Panoptic annotation files (panoptic_annot/*.pkl)")
    frames: dict[str, FrameGT] = {}
    for uri in files:
        for frame in load_annotation_file(uri):
            if frame.image in frames:
                log.warning("%s: image %s also in %s; the later annotation is used",
                            uri, frame.image, frames[frame.image].source)
            frames[frame.image] = frame
    return list(frames.values())


def _joint_column(table: pa.Table, uri: str, name: str, width: int) -> np.ndarray:
    """A (N, J, width) joint column: nested fixed-size lists, or flat lists of J * width values."""
    nested = pa.types.is_fixed_size_list(table.schema.field(name).type)
    try:
        return column_array(table, name, None if nested else (-1, width))
    except ValueError as err:
        raise EvalError(f"{uri}: field {name!r} unreadable ({err})") from err


def load_predictions(uri: str) -> dict[str, FramePred]:
    """meshfleet results -> {image file name: predicted people}. Keyed by the basename of
    ``source``, as the official results are keyed by ``osp.basename(image_path)``."""
    table, _ = read_results(uri, ["source", "frame", "person", "joints", "pj2d_org"])
    if table.num_rows == 0:
        return {}
    joints, pj2d = _joint_column(table, uri, "joints", 3), _joint_column(table, uri, "pj2d_org", 2)
    for name, values, width in (("joints", joints, 3), ("pj2d_org", pj2d, 2)):
        if values.ndim != 3 or values.shape[1] < H36M17_COLUMNS.stop or values.shape[2] != width:
            raise EvalError(f"{uri}: field {name!r} must be (N, 71, {width}) (joints 54-70 = H36M-17), "
                            f"got {values.shape}")
    frame = pd.DataFrame({
        "source": table.column("source").to_pylist(),
        "frame": table.column("frame").to_pylist(),
        "person": table.column("person").to_pylist(),
    })
    frame["key"] = [posixpath.basename(s) for s in frame["source"]]
    preds: dict[str, FramePred] = {}
    for key, group in frame.groupby("key", sort=False):
        if group[["source", "frame"]].drop_duplicates().shape[0] > 1:
            raise EvalError(f"{uri}: field 'source': image name {key!r} comes from several inputs "
                            f"({sorted(set(group['source']))[:3]}...); CMU images are matched by file name")
        rows = group.sort_values("person", kind="stable").index.to_numpy()
        preds[str(key)] = FramePred(pj2d[rows, H36M17_COLUMNS], joints[rows, H36M17_COLUMNS],
                                    group.loc[rows, "person"].to_numpy(dtype=np.int64))
    return preds


# ---------------------------------------------------------------------------------------------
# ground truth, matching and errors


def in_image_joints(kp2d: np.ndarray, width: float, height: float, protocol: str) -> np.ndarray:
    """(N, 14, 3) px + conf at annotation scale -> (N,) number of joints strictly inside the image.

    ``official``: position only (the conf > 0.2 test lands in ``out`` of ``np.logical_and``);
    ``fixed``: position and conf > 0.2.
    """
    x, y = kp2d[..., 0], kp2d[..., 1]
    inside = (0 < x) & (x < width) & (0 < y) & (y < height)
    if protocol == "fixed":
        inside &= kp2d[..., 2] > CONF_THRESH
    return inside.sum(-1)


@dataclass(frozen=True)
class GTPeople:
    """Kept people: ``ids`` (M,) annotation indices, ``kp2d`` (M, 14, 2) original-image px,
    ``kp3d`` (M, 14, 3) metres (invisible joints at -2, offset added), ``in_image`` (N,) counts."""

    ids: np.ndarray
    kp2d: np.ndarray
    kp3d: np.ndarray
    in_image: np.ndarray


def prepare_gt(frame: FrameGT, protocol: str) -> GTPeople:
    """The official ``load_gts`` for one frame, in the annotation's float dtype like the original."""
    kp2d_all = frame.kpts2d[:, list(J24_TO_J14)]
    in_image = in_image_joints(kp2d_all, frame.width, frame.height, protocol)
    ids = np.flatnonzero(in_image > MIN_IN_IMAGE)
    kp2d = kp2d_all[ids][..., :2].copy()
    kp2d *= ANNOT_SCALE
    kp3d_conf = frame.kpts3d[:, list(J24_TO_J14)][ids]
    kp3d = kp3d_conf[..., :3].copy()
    kp3d[kp3d_conf[..., 3] < CONF_THRESH] = INVALID
    kp3d[:, :GT_ROOT] += GT_OFFSET  # float64 offset, added in place as the original does
    return GTPeople(ids, kp2d.astype(np.float64), kp3d.astype(np.float64), in_image)


def match_greedy(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray,
                 iou_thresh: float = IOU_THRESH) -> Matching:
    """Greedy 2D matching of predicted (P, J, 2) to GT (G, J, 2) people, as the official
    ``match_2d_greedy`` without a valid-people list (:func:`eval.matching.greedy_official`): cost =
    spectral norm over the GT's ``valid`` (G, J) joints, IoU of the boxes of all J points."""
    result = greedy_official(spectral_cost(pred, gt, valid), lambda p, g: keypoint_box_iou(pred[p], gt[g]), iou_thresh)
    matched_pred = {p for p, _ in result.pairs}
    matched_gt = {g for _, g in result.pairs}
    return Matching(result.pairs, [p for p in range(len(pred)) if p not in matched_pred],
                    [g for g in range(len(gt)) if g not in matched_gt])


def person_errors(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, protocol: str) -> np.ndarray:
    """Pelvis-relative (M, 14, 3) pred and GT (metres), (M, 14) visible -> (M,) mm.

    ``official``: mean over all 14 joints of error x visible (invisible joints count 0 mm);
    ``fixed``: mean over the visible joints (NaN for a person without any)."""
    weighted = (np.sqrt(((pred - gt) ** 2).sum(-1)) * visible) * MM
    if protocol == "official":
        return weighted.mean(-1)
    count = visible.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, weighted.sum(-1) / np.maximum(count, 1), np.nan)


def sequences_of(image: str) -> list[str]:
    """The sequence names contained in an image name (the official ``aname in basename``)."""
    return [name for name in SEQUENCES if name in posixpath.basename(image)]


def _row(image: str, status: str, gt: int, pred: int, mpjpe: float, visible: int, in_image: int) -> dict:
    return {"image": image, "sequence": ",".join(sequences_of(image)), "status": status,
            "gt_person": gt, "pred_person": pred, "mpjpe_mm": mpjpe, "visible_joints": visible,
            "in_image_joints": in_image}


@dataclass(frozen=True)
class FrameTargets:
    """GT people that enter matching: ``ids`` (M,) annotation indices, ``kp2d`` (M, 14, 2) px,
    ``kp3d`` (M, 14, 3) pelvis-relative metres, ``visible`` (M, 14) 3D, ``valid`` (M, 14) 2D."""

    ids: np.ndarray
    kp2d: np.ndarray
    kp3d: np.ndarray
    visible: np.ndarray
    valid: np.ndarray


def frame_targets(people: GTPeople) -> FrameTargets:
    """Visibility (x > -2) and validity masks, the official ``valid_ids`` filter (people with no
    2D joint at x > -2 px; never true for a kept person), then pelvis subtraction."""
    visible = people.kp3d[..., 0] > INVALID
    valid = people.kp2d[..., 0] > INVALID
    keep = valid.sum(-1) != 0
    kp3d = people.kp3d[keep] - people.kp3d[keep][:, [GT_ROOT]]
    return FrameTargets(people.ids[keep], people.kp2d[keep], kp3d, visible[keep], valid[keep])


def match_and_score(pred: FramePred | None, gt: FrameTargets, protocol: str) -> tuple[Matching, np.ndarray]:
    """Greedy 2D matching of one image's predictions to its GT, and the (len(pairs),) mm errors
    of the matched pairs (pelvis-relative predictions: H36M-17 index 14)."""
    if pred is None or len(pred.person) == 0:
        return Matching([], [], list(range(len(gt.ids)))), np.zeros(0)
    pred2d = pred.pj2d[:, list(J17_TO_J14)]
    pred3d = pred.joints[:, list(J17_TO_J14)] - pred.joints[:, [PRED_ROOT]]
    matching = match_greedy(pred2d, gt.kp2d, gt.valid)
    pids = [p for p, _ in matching.pairs]
    gids = [g for _, g in matching.pairs]
    return matching, person_errors(pred3d[pids], gt.kp3d[gids], gt.visible[gids], protocol)


def score_frame(task: FrameTask) -> FrameScore:
    """Match and score one image (the body of the official ``evaluation_results`` loop): errors
    of the matched people in match order, then 150 mm per missed person."""
    image = task.gt.image
    people = prepare_gt(task.gt, task.protocol)
    gt = frame_targets(people)
    matching, errors = match_and_score(task.pred, gt, task.protocol)
    score = FrameScore(image, matched=len(matching.pairs), missed=len(matching.misses),
                       false_positives=len(matching.false_positives))
    for i in np.setdiff1d(np.arange(len(task.gt.kpts2d)), gt.ids):
        score.rows.append(_row(image, "excluded", int(i), -1, np.nan, 0, int(people.in_image[i])))
    persons = task.pred.person if task.pred is not None else np.zeros(0, np.int64)
    for (p, g), error in zip(matching.pairs, errors, strict=True):
        score.rows.append(_row(image, "matched", int(gt.ids[g]), int(persons[p]), float(error),
                               int(gt.visible[g].sum()), int(people.in_image[gt.ids[g]])))
        if not np.isnan(error):  # fixed protocol: a person without visible joints has no error
            score.errors.append(float(error))
    for g in matching.misses:
        score.rows.append(_row(image, "missed", int(gt.ids[g]), -1, MISS_MM, int(gt.visible[g].sum()),
                               int(people.in_image[gt.ids[g]])))
        score.errors.append(MISS_MM)
    for p in matching.false_positives:
        score.rows.append(_row(image, "false_positive", -1, int(persons[p]), np.nan, 0, 0))
    return score


# ---------------------------------------------------------------------------------------------
# aggregation and the evaluator


def aggregate(scores: Sequence[FrameScore]) -> dict[str, float]:
    """Per-sequence means (``sum / len`` in frame order) and the mean over all person instances
    of the four sequences (an image in none of them counts in neither); NaN for an empty sequence
    (where the official script divides by zero)."""
    per_sequence: dict[str, list[float]] = {name: [] for name in SEQUENCES}
    for score in scores:
        for name in sequences_of(score.image):
            per_sequence[name].extend(score.errors)
    metrics: dict[str, float] = {}
    for name, values in per_sequence.items():
        if not values:
            log.warning("CMU Panoptic: no people of sequence %r; mpjpe_%s is NaN", name, name)
        metrics[f"mpjpe_{name}"] = sum(values) / len(values) if values else float("nan")
    everything = np.array([v for values in per_sequence.values() for v in values])
    metrics["mpjpe_mean"] = float(everything.mean()) if everything.size else float("nan")
    metrics["matched"] = sum(s.matched for s in scores)
    metrics["missed"] = sum(s.missed for s in scores)
    metrics["false_positives"] = sum(s.false_positives for s in scores)
    return metrics


def plot_sequences(metrics: dict[str, float], protocol: str) -> bytes:
    """Bar chart of the per-sequence and overall MPJPE (mm)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*SEQUENCES, "mean"]
    values = [metrics[f"mpjpe_{n}"] for n in names]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bars = ax.bar(names, values, color=["#4c72b0"] * len(SEQUENCES) + ["#dd8452"])
    ax.bar_label(bars, fmt="%.1f")
    ax.set_ylabel("MPJPE (mm, 150 per miss)")
    ax.set_title(f"CMU Panoptic per sequence ({protocol} protocol)")
    return png(fig)


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Score a meshfleet results dataset on CMU Panoptic (``cfg.data`` holds ``panoptic_annot/``)."""
    if not cfg.data:
        raise EvalError("cmu-panoptic needs --data DIR holding panoptic_annot/<sequence>.pkl")
    if not is_results_dataset(cfg.predictions):
        raise EvalError(f"{cfg.predictions}: cmu-panoptic scores meshfleet results (*.parquet); none found")
    frames = load_annotations(cfg.data)
    preds = load_predictions(cfg.predictions)
    unused = set(preds) - {f.image for f in frames}
    if unused:
        log.warning("CMU Panoptic: %d predicted images have no annotation and are ignored", len(unused))
    tasks = [FrameTask(f, preds.get(f.image), cfg.protocol) for f in frames]
    scores = parallel_map(score_frame, tasks)
    metrics = aggregate(scores)
    rows = pd.DataFrame([row for score in scores for row in score.rows],
                        columns=list(_row("", "", 0, 0, 0.0, 0, 0)))
    params = {"iou_thresh": IOU_THRESH, "miss_penalty_mm": MISS_MM, "in_image_joints_more_than": MIN_IN_IMAGE,
              "conf_thresh": CONF_THRESH, "annot_scale": "1920/832", "joints": "H36M-17 (54-70) -> 14, pelvis root",
              "images": len(frames)}
    return EvalResult(metrics, rows, {"mpjpe_per_sequence.png": plot_sequences(metrics, cfg.protocol)}, params)
