"""Reading evaluation runs (params, metrics, plot artifacts) from MLflow for the leaderboard.

Reading never writes: a local store (sqlite database or file store) that does not exist is refused
rather than created, as MLflow's client would.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from eval.leaderboard import RunRecord
from eval.mlflow_log import default_tracking_uri

DEFAULT_EXPERIMENTS = ("meshfleet-eval",)


class StoreError(ValueError):
    """The MLflow store or experiments named hold no finished evaluation run (or cannot be read)."""


def local_store_path(uri: str) -> Path | None:
    """The file or folder of a local MLflow store (``sqlite:///x.db``, ``file:///d``, a path), else None."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else uri)
    return None


def load_runs(tracking_uri: str | None = None, experiments: tuple[str, ...] = DEFAULT_EXPERIMENTS) -> list[RunRecord]:
    """Finished runs of ``experiments``. StoreError naming the store and experiments when the store
    does not exist, none of the experiments does, or they hold no finished run."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri or default_tracking_uri()
    names = ", ".join(experiments)
    path = local_store_path(uri)
    if path is not None and not path.exists():
        raise StoreError(f"{uri}: no MLflow store there ({path} does not exist); give --mlflow-uri")
    client = MlflowClient(uri)
    try:
        found = [e for name in experiments if (e := client.get_experiment_by_name(name)) is not None]
    except (MlflowException, OSError) as err:
        raise StoreError(f"{uri}: cannot read the MLflow store ({str(err).splitlines()[0]})") from err
    if not found:
        known = sorted(e.name for e in client.search_experiments())
        raise StoreError(f"{uri}: no experiment {names} (the store holds: {', '.join(known) or 'none'})")
    ids = [e.experiment_id for e in found]
    records = []
    for run in client.search_runs(ids, filter_string="attributes.status = 'FINISHED'", max_results=50_000):
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id) if not a.is_dir]
        records.append(RunRecord(run.info.run_id, run.info.experiment_id, dict(run.data.params),
                                 dict(run.data.metrics), int(run.info.start_time or 0), artifacts))
    if not records:
        raise StoreError(f"{uri}: no finished evaluation run in experiment {names}")
    return records


def fetch_artifact(run_id: str, path: str, tracking_uri: str | None = None) -> bytes:
    """Bytes of one run artifact."""
    import tempfile

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri or default_tracking_uri())
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()
