"""Logging evaluation runs to MLflow (embedded sqlite store by default)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<cwd>/mlflow.db`` (the embedded default)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def artifact_location(tracking_uri: str) -> str | None:
    """For an embedded sqlite store, artifacts go next to the database (not into the working
    directory, MLflow's default); servers manage their own artifact store."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return None


def log_run(experiment: str, run_name: str, params: dict, metrics: dict[str, float],
            artifacts: dict[str, dict | str], tracking_uri: str | None = None, tags: dict | None = None,
            binary_artifacts: dict[str, bytes] | None = None) -> str:
    """One MLflow run with params, metrics, JSON/text and binary (e.g. PNG) artifacts; returns the
    run id."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=artifact_location(uri))
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})  # NaN is not loggable
        if tags:
            mlflow.set_tags(tags)
        with tempfile.TemporaryDirectory() as tmp:
            for name, content in artifacts.items():
                path = Path(tmp) / name
                path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2, default=str))
                mlflow.log_artifact(str(path))
            for name, blob in (binary_artifacts or {}).items():
                path = Path(tmp) / name
                path.write_bytes(blob)
                mlflow.log_artifact(str(path))
        return run.info.run_id


def log_artifact_bytes(run_id: str, name: str, data: bytes, tracking_uri: str | None = None) -> None:
    """Add the file ``name`` holding ``data`` to the existing run ``run_id`` (e.g. a render thumbnail)."""
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        MlflowClient(tracking_uri or default_tracking_uri()).log_artifact(run_id, str(path))
