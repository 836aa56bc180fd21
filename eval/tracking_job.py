"""``meshfleet eval tracking``: MOT metrics of a tracked results dataset against MOT ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import motmetrics as mm
import numpy as np

from eval.mot import FrameBoxes, HotaCounts, clear_mot, hota_counts
from eval.mot_format import MotSequence, read_ground_truth, tracks_from_results
from pipelines.results import read_results

RESULT_COLUMNS = ["source", "frame", "track_id", "pj2d_org", "image_height", "image_width", "error"]
CLEAR_KEYS = ("mota", "motp_iou", "idf1", "idp", "idr", "num_switches", "num_false_positives", "num_misses",
              "num_objects", "mostly_tracked", "mostly_lost", "num_fragmentations", "precision", "recall")


@dataclass
class TrackingEval:
    overall: dict[str, float]
    per_sequence: dict[str, dict[str, float]]
    missing: list[str]  # GT sequences without any prediction (scored as all misses)


def load_tracks(results: str) -> dict[str, MotSequence]:
    """MOT sequences of a tracked results dataset, one per video (named as :func:`sequence_names`)."""
    return tracks_from_results(read_results(results, RESULT_COLUMNS))


@dataclass(frozen=True)
class MotExportJob:
    """``meshfleet export mot``: one MOTChallenge ``<sequence>.txt`` per video of a tracked results
    dataset (``results``), written under ``output`` (a folder or ``s3://`` prefix)."""

    results: str
    output: str


def export_mot(job: MotExportJob) -> list[str]:
    """Write the MOT files (each atomically) into an owned output (regenerated as a whole on a rerun)
    and return their URIs, in sequence-name order."""
    from eval.mot_format import format_mot
    from pipelines.jobstate import check_overlap, claim_output
    from pipelines.storage import join, normalise, write_bytes_atomic

    results, output = normalise(job.results), normalise(job.output)
    check_overlap(output, [results])
    sequences = load_tracks(results)
    ledger = claim_output(output, "export-mot", {"results": results}, on_existing="replace")
    ledger.declare(units={f"{name}.txt": {"sequence": name} for name in sequences})
    written = []
    for name, seq in sorted(sequences.items()):
        uri = join(output, f"{name}.txt")
        write_bytes_atomic(uri, format_mot(seq).encode())
        written.append(uri)
    return written


def evaluate(gt: dict[str, MotSequence], pred: dict[str, MotSequence], iou: float = 0.5) -> TrackingEval:
    """Per sequence and overall (CLEAR-MOT + identity + HOTA) over the ground-truth sequences."""
    per_sequence, counts, accumulators = {}, [], []
    for name, truth in sorted(gt.items()):
        tracks = pred.get(name, MotSequence(name, {}))
        length = max(truth.last_frame, tracks.last_frame)
        g, p = truth.aligned(length), tracks.aligned(length)
        metrics = clear_mot(g, p, iou)
        part = hota_counts(g, p)
        metrics.update(part.metrics())
        per_sequence[name] = metrics
        counts.append(part)
        accumulators.append(_accumulator(g, p, iou))
    overall = _overall_clear(accumulators, list(per_sequence))
    overall.update(HotaCounts.combine(counts).metrics())
    return TrackingEval(overall, per_sequence, sorted(set(gt) - set(pred)))


def _accumulator(gt: list[FrameBoxes], pred: list[FrameBoxes], iou: float) -> mm.MOTAccumulator:
    from core.boxes import box_iou

    acc = mm.MOTAccumulator(auto_id=True)
    for g, p in zip(gt, pred, strict=True):
        sim = box_iou(g.boxes, p.boxes)
        acc.update(g.ids.tolist(), p.ids.tolist(), np.where(sim >= iou, 1.0 - sim, np.nan))
    return acc


def _overall_clear(accumulators: list[mm.MOTAccumulator], names: list[str]) -> dict[str, float]:
    """CLEAR-MOT / ID metrics over all sequences at once (motmetrics' OVERALL row)."""
    metrics = ["mota", "motp", "idf1", "idp", "idr", "num_switches", "num_false_positives", "num_misses",
               "num_objects", "mostly_tracked", "mostly_lost", "num_fragmentations", "precision", "recall"]
    summary = mm.metrics.create().compute_many(accumulators, metrics=metrics, names=names, generate_overall=True)
    row = summary.loc["OVERALL"]
    out = {k: float(row[k]) for k in metrics}
    out["motp_iou"] = 1.0 - out.pop("motp") if np.isfinite(out["motp"]) else float("nan")
    return out


def evaluate_dataset(gt_dir: str, results: str, iou: float = 0.5) -> TrackingEval:
    return evaluate(read_ground_truth(gt_dir), load_tracks(results), iou)


@dataclass(frozen=True)
class TrackingEvalJob:
    """``meshfleet eval tracking``: a tracked results dataset (``results``) against MOTChallenge
    ground truth (``gt``: ``<seq>/gt/gt.txt`` or ``<seq>.txt``); ``iou`` is the box IoU a match needs
    in CLEAR-MOT / ID metrics; ``split`` names the dataset on the leaderboard."""

    results: str
    gt: str
    output: Path | None = None
    iou: float = 0.5
    split: str = "custom"
    mlflow_uri: str | None = None
    use_mlflow: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], not {self.iou}")


def run_tracking_eval(job: TrackingEvalJob) -> tuple[dict, TrackingEval]:
    """Evaluate, log an MLflow run (experiment ``meshfleet-eval``) and write the JSON payload."""
    import json

    from eval.job import EVALUATOR_VERSION, EXPERIMENT
    from eval.mlflow_log import log_run

    report = evaluate_dataset(job.gt, job.results, job.iou)
    payload = {"benchmark": "tracking", "results": job.results, "gt": job.gt, "iou": job.iou,
               "overall": report.overall, "per_sequence": report.per_sequence,
               "sequences_without_predictions": report.missing}
    if job.use_mlflow:
        params = {"benchmark": "tracking", "split": job.split, "track": "smpl", "protocol": "official",
                  "evaluator_version": EVALUATOR_VERSION, "predictions": job.results, "gt": job.gt, "iou": job.iou}
        payload["mlflow_run_id"] = log_run(EXPERIMENT, "tracking", params, report.overall, {"metrics.json": payload},
                                           job.mlflow_uri, tags={"benchmark": "tracking"})
    if job.output:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        job.output.write_text(json.dumps(payload, indent=2))
    return payload, report
