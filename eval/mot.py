"""Multi-object tracking metrics: CLEAR-MOT and identity metrics (via ``motmetrics``) and HOTA.

Inputs are per-frame lists of ids and boxes; similarity is box IoU, and a detection can match a
ground-truth object only at IoU >= 0.5 for CLEAR-MOT / ID metrics (the MOTChallenge convention).
HOTA follows Luiten et al. (IJCV 2020) exactly as TrackEval computes it: averaged over the IoU
thresholds alpha = 0.05, 0.10, ..., 0.95, with the "global alignment score" weighting of the
per-frame Hungarian matching.
"""

from __future__ import annotations

from dataclasses import dataclass

import motmetrics as mm
import numpy as np
from scipy.optimize import linear_sum_assignment

from core.boxes import box_iou

ALPHAS = np.arange(0.05, 0.99, 0.05)
EPS = np.finfo(float).eps


@dataclass
class FrameBoxes:
    """Objects of one frame: (K,) integer ids and (K, 4) boxes (left, top, width, height)."""

    ids: np.ndarray
    boxes: np.ndarray

    @classmethod
    def empty(cls) -> FrameBoxes:
        return cls(np.zeros(0, np.int64), np.zeros((0, 4)))


def clear_mot(gt: list[FrameBoxes], pred: list[FrameBoxes], iou_threshold: float = 0.5) -> dict[str, float]:
    """MOTA, MOTP, IDF1, IDP, IDR, ID switches, FP, FN, ... of one sequence (frames aligned)."""
    acc = mm.MOTAccumulator(auto_id=True)
    for g, p in zip(gt, pred, strict=True):
        iou = box_iou(g.boxes, p.boxes)  # (motmetrics' own iou_matrix uses np.asfarray, gone in numpy 2)
        acc.update(g.ids.tolist(), p.ids.tolist(), np.where(iou >= iou_threshold, 1.0 - iou, np.nan))
    names = ["mota", "motp", "idf1", "idp", "idr", "num_switches", "num_false_positives", "num_misses",
             "num_objects", "num_predictions", "num_unique_objects", "mostly_tracked", "mostly_lost",
             "num_fragmentations", "precision", "recall"]
    row = mm.metrics.create().compute(acc, metrics=names, name="seq").iloc[0]
    out = {name: float(row[name]) for name in names}
    out["motp_iou"] = 1.0 - out.pop("motp") if np.isfinite(out["motp"]) else float("nan")
    return out


@dataclass
class HotaCounts:
    """Per-alpha accumulators of one or more sequences (TrackEval's combinable quantities)."""

    tp: np.ndarray
    fn: np.ndarray
    fp: np.ndarray
    loc: np.ndarray  # sum of matched similarities
    ass_a: np.ndarray  # per-alpha association scores (weighted by tp when combining)
    ass_re: np.ndarray
    ass_pr: np.ndarray

    def metrics(self) -> dict[str, float]:
        tp = self.tp
        det_a = tp / np.maximum(1, tp + self.fn + self.fp)
        out = {
            "HOTA": np.sqrt(det_a * self.ass_a), "DetA": det_a, "AssA": self.ass_a,
            "DetRe": tp / np.maximum(1, tp + self.fn), "DetPr": tp / np.maximum(1, tp + self.fp),
            "AssRe": self.ass_re, "AssPr": self.ass_pr,
            "LocA": np.maximum(1e-10, self.loc) / np.maximum(1e-10, tp),
        }
        return {k: float(np.mean(v)) for k, v in out.items()}

    @staticmethod
    def combine(parts: list[HotaCounts]) -> HotaCounts:
        """Sequences combined as TrackEval does: counts summed, association scores tp-weighted."""
        def total(name: str) -> np.ndarray:
            return np.sum([getattr(p, name) for p in parts], axis=0)

        tp = total("tp")

        def weighted(name: str) -> np.ndarray:
            return np.sum([getattr(p, name) * p.tp for p in parts], axis=0) / np.maximum(1e-10, tp)

        return HotaCounts(tp, total("fn"), total("fp"), total("loc"), weighted("ass_a"), weighted("ass_re"),
                          weighted("ass_pr"))


def hota(gt: list[FrameBoxes], pred: list[FrameBoxes]) -> dict[str, float]:
    """HOTA, DetA, AssA, DetRe, DetPr, AssRe, AssPr, LocA (means over alpha) of one sequence."""
    return hota_counts(gt, pred).metrics()


def hota_counts(gt: list[FrameBoxes], pred: list[FrameBoxes]) -> HotaCounts:
    """The per-alpha HOTA accumulators of one sequence."""
    gt_ids = np.unique(np.concatenate([g.ids for g in gt] or [np.zeros(0, np.int64)]))
    pr_ids = np.unique(np.concatenate([p.ids for p in pred] or [np.zeros(0, np.int64)]))
    gt_index = {int(v): i for i, v in enumerate(gt_ids)}
    pr_index = {int(v): i for i, v in enumerate(pr_ids)}
    frames = [(np.array([gt_index[int(i)] for i in g.ids], np.int64),
               np.array([pr_index[int(i)] for i in p.ids], np.int64), box_iou(g.boxes, p.boxes))
              for g, p in zip(gt, pred, strict=True)]

    potential = np.zeros((len(gt_ids), len(pr_ids)))
    gt_count = np.zeros((len(gt_ids), 1))
    pr_count = np.zeros((1, len(pr_ids)))
    for g, p, sim in frames:
        denom = sim.sum(0, keepdims=True) + sim.sum(1, keepdims=True) - sim
        sim_iou = np.zeros_like(sim)
        mask = denom > 0 + EPS
        sim_iou[mask] = sim[mask] / denom[mask]
        potential[g[:, None], p[None, :]] += sim_iou
        gt_count[g] += 1
        pr_count[0, p] += 1
    global_alignment = potential / (gt_count + pr_count - potential)  # ids occur at least once: > 0

    tp, fn, fp = (np.zeros(len(ALPHAS)) for _ in range(3))
    loc = np.zeros(len(ALPHAS))
    matches = np.zeros((len(ALPHAS), len(gt_ids), len(pr_ids)))
    for g, p, sim in frames:
        if len(g) == 0:
            fp += len(p)
            continue
        if len(p) == 0:
            fn += len(g)
            continue
        rows, cols = linear_sum_assignment(-(global_alignment[g[:, None], p[None, :]] * sim))
        for a, alpha in enumerate(ALPHAS):
            ok = sim[rows, cols] >= alpha - EPS
            r, c = rows[ok], cols[ok]
            tp[a] += len(r)
            fn[a] += len(g) - len(r)
            fp[a] += len(p) - len(r)
            loc[a] += sim[r, c].sum()
            matches[a, g[r], p[c]] += 1

    ass_a, ass_re, ass_pr = (np.zeros(len(ALPHAS)) for _ in range(3))
    for a in range(len(ALPHAS)):
        m = matches[a]
        ass_a[a] = (m * m / np.maximum(1, gt_count + pr_count - m)).sum() / max(1.0, tp[a])
        ass_re[a] = (m * m / np.maximum(1, gt_count)).sum() / max(1.0, tp[a])
        ass_pr[a] = (m * m / np.maximum(1, pr_count)).sum() / max(1.0, tp[a])
    return HotaCounts(tp, fn, fp, loc, ass_a, ass_re, ass_pr)
