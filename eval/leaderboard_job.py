"""``meshfleet leaderboard``: MLflow runs + the reported-results registry -> leaderboard.md and index.html."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eval.leaderboard import Row, Table, build_tables, load_registry, to_markdown
from eval.leaderboard_html import to_html
from eval.leaderboard_io import DEFAULT_EXPERIMENTS, RENDER_THUMBNAIL, fetch_artifact, load_runs

REGISTRY = Path(__file__).with_name("reported_results.yaml")


@dataclass(frozen=True)
class LeaderboardJob:
    output: Path
    tracking_uri: str | None = None
    experiments: tuple[str, ...] = DEFAULT_EXPERIMENTS
    registry: Path = REGISTRY
    run_url: str | None = None  # e.g. "http://mlflow:5000/#/experiments/1/runs/{run_id}"


def run_leaderboard(job: LeaderboardJob) -> list[Table]:
    reported = load_registry(job.registry)
    tables = build_tables(load_runs(job.tracking_uri, job.experiments), reported)

    def charts(table: Table) -> list[tuple[str, bytes]]:
        """The plots logged by the table's best meshfleet run (its first row that is a run)."""
        best = next((r for r in table.rows if r.kind == "run" and r.run_id), None)
        if best is None:
            return []
        assert best.run_id is not None
        return [(name, fetch_artifact(best.run_id, name, job.tracking_uri))
                for name in best.artifacts if name.endswith(".png")]

    def thumbnail(row: Row) -> bytes | None:
        """The render thumbnail a run logged, if any."""
        if row.kind != "run" or not row.run_id or RENDER_THUMBNAIL not in row.artifacts:
            return None
        return fetch_artifact(row.run_id, RENDER_THUMBNAIL, job.tracking_uri)

    from pipelines.jobstate import claim_output
    from pipelines.storage import write_bytes_atomic

    pages = {"leaderboard.md": to_markdown(tables, job.run_url),
             "index.html": to_html(tables, job.run_url, charts, thumbnail)}
    ledger = claim_output(str(job.output), "leaderboard", {}, on_existing="replace")  # never a folder of others
    ledger.declare(units={name: {} for name in pages})
    for name, text in pages.items():
        write_bytes_atomic(str(job.output / name), text.encode())
    return tables
