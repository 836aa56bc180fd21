"""``meshfleet eval BENCHMARK``: (optionally) infer, evaluate, write the metrics JSON, log to MLflow."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from eval.common import EvalConfig, EvalResult, is_results_dataset, read_results
from eval.mlflow_log import log_run
from eval.registry import evaluator, with_split

EVALUATOR_VERSION = "1.0"
EXPERIMENT = "meshfleet-eval"


@dataclass(frozen=True)
class EvalJob:
    """An evaluation and where its outputs go; ``infer`` (an InferConfig) runs the model first."""

    config: EvalConfig
    output_json: Path | None = None
    mlflow_uri: str | None = None
    use_mlflow: bool = True
    infer: object | None = None  # jobs.config.InferConfig (kept untyped: eval does not import jobs)


def _run_params(cfg: EvalConfig) -> dict:
    """Params of the run: benchmark, split, protocol, evaluator version and, for meshfleet results,
    the model, checkpoint digest and thresholds from the dataset metadata."""
    params = {"benchmark": cfg.benchmark, "split": cfg.split, "track": "smpl", "protocol": cfg.protocol,
              "evaluator_version": EVALUATOR_VERSION, "predictions": cfg.predictions}
    if is_results_dataset(cfg.predictions):
        _, meta = read_results(cfg.predictions, ["source"])
        keys = ("model", "checkpoint_sha256", "thresholds", "bev_variant", "crowd", "meshfleet_version")
        params.update({k: meta.get(k) for k in keys})
    return params


def run_eval(job: EvalJob, run_infer=None) -> tuple[dict, EvalResult]:
    """Evaluate; returns (metrics JSON payload, full result). ``run_infer`` runs ``job.infer``."""
    cfg = with_split(job.config)
    if job.infer is not None:
        assert run_infer is not None
        run_infer(job.infer)
        cfg = replace(cfg, predictions=str(job.infer.output))  # type: ignore[attr-defined]
    result = evaluator(cfg.benchmark)(cfg)
    # unknown values are left out: MLflow would store None as the string "None"
    params = {k: v for k, v in {**_run_params(cfg), **result.params}.items() if v is not None}
    payload = {**result.metrics, "protocol": cfg.protocol, "split": cfg.split, "evaluator_version": EVALUATOR_VERSION}
    if job.output_json:
        job.output_json.parent.mkdir(parents=True, exist_ok=True)
        job.output_json.write_text(json.dumps(payload, indent=2, default=float))
    if job.use_mlflow:
        artifacts: dict[str, dict | str] = {"metrics.json": payload, "config.json": asdict(cfg)}
        if len(result.rows):
            artifacts["per_item.csv"] = result.rows.to_csv(index=False)
        run_id = log_run(EXPERIMENT, f"{cfg.benchmark}-{cfg.protocol}", params,
                         {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}, artifacts,
                         job.mlflow_uri, tags={"benchmark": cfg.benchmark, "protocol": cfg.protocol},
                         binary_artifacts=result.plots)
        payload = {**payload, "mlflow_run_id": run_id}
    return payload, result
