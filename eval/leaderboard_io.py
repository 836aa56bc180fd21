"""Reading evaluation runs (params, metrics, plot artifacts) from MLflow for the leaderboard."""

from __future__ import annotations

import os
from pathlib import Path

from eval.leaderboard import RunRecord
from eval.mlflow_log import default_tracking_uri

DEFAULT_EXPERIMENTS = ("meshfleet-eval",)


def load_runs(tracking_uri: str | None = None, experiments: tuple[str, ...] = DEFAULT_EXPERIMENTS) -> list[RunRecord]:
    """Finished runs of ``experiments`` (missing experiments are skipped)."""
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    client = MlflowClient(tracking_uri or default_tracking_uri())
    ids = [e.experiment_id for name in experiments if (e := client.get_experiment_by_name(name)) is not None]
    if not ids:
        return []
    records = []
    for run in client.search_runs(ids, filter_string="attributes.status = 'FINISHED'", max_results=50_000):
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id) if not a.is_dir]
        records.append(RunRecord(run.info.run_id, run.info.experiment_id, dict(run.data.params),
                                 dict(run.data.metrics), int(run.info.start_time or 0), artifacts))
    return records


def fetch_artifact(run_id: str, path: str, tracking_uri: str | None = None) -> bytes:
    """Bytes of one run artifact."""
    import tempfile

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri or default_tracking_uri())
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()
