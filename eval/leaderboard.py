"""Leaderboard tables from MLflow evaluation runs and a registry of published ("reported") results.

A table holds only comparable numbers: one per (benchmark, split, track, protocol, evaluator
version). Reported results carry no evaluator version; they appear in every table of their
(benchmark, split, track, protocol), marked "reported" with their citation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool
    digits: int = 2


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    metrics: tuple[Metric, ...]
    headline: str
    splits: tuple[str, ...]
    tracks: tuple[str, ...] = ("smpl",)

    def metric(self, key: str) -> Metric:
        return next(m for m in self.metrics if m.key == key)


def _lower(key: str, label: str, digits: int = 1) -> Metric:
    return Metric(key, label, False, digits)


def _higher(key: str, label: str, digits: int = 2) -> Metric:
    return Metric(key, label, True, digits)


BENCHMARKS = {
    b.name: b for b in (
        Benchmark("agora", "AGORA", (
            _lower("nmve", "NMVE"), _lower("nmje", "NMJE"), _lower("mve", "MVE"), _lower("mpjpe", "MPJPE"),
            _higher("f1", "F1"), _higher("precision", "Precision"), _higher("recall", "Recall"),
            _lower("kid_nmve", "kid NMVE"), _lower("kid_nmje", "kid NMJE"), _lower("kid_mve", "kid MVE"),
            _lower("kid_mpjpe", "kid MPJPE"), _higher("kid_f1", "kid F1"),
        ), "nmve", ("validation", "test"), ("smpl", "smplx")),
        Benchmark("relative-human", "Relative Human", (
            _higher("pcrd", "PCRD %"), _higher("pcrd_baby", "PCRD baby"), _higher("pcrd_kid", "PCRD kid"),
            _higher("pcrd_teen", "PCRD teen"), _higher("pcrd_adult", "PCRD adult"), _higher("mpckh", "mPCKh %", 1),
            _higher("f1", "F1"), _higher("precision", "Precision"), _higher("recall", "Recall"),
        ), "pcrd", ("val", "test")),
        Benchmark("cmu-panoptic", "CMU Panoptic", (
            _lower("mpjpe_mean", "Mean"), _lower("mpjpe_haggling", "Haggling"), _lower("mpjpe_mafia", "Mafia"),
            _lower("mpjpe_ultimatum", "Ultimatum"), _lower("mpjpe_pizza", "Pizza"),
        ), "mpjpe_mean", ("test",)),
        Benchmark("3dpw", "3DPW", (
            _lower("pa_mpjpe", "PA-MPJPE"), _lower("mpjpe", "MPJPE"), _lower("pve", "PVE"),
        ), "pa_mpjpe", ("test", "validation", "train")),
        Benchmark("tracking", "Tracking", (
            _higher("HOTA", "HOTA", 3), _higher("DetA", "DetA", 3), _higher("AssA", "AssA", 3),
            _higher("mota", "MOTA", 3), _higher("idf1", "IDF1", 3), _lower("num_switches", "ID switches", 0),
        ), "HOTA", ("posetrack21-val", "mupots", "dyna3dpw", "3dpw-test", "mot17-train", "custom")),
    )
}
PROTOCOLS = ("official", "fixed")
UNKNOWN = "–"  # shown for any value a run did not record


class RegistryError(ValueError):
    """A reported-results entry is malformed or names an unknown (benchmark, split, track, protocol)."""


@dataclass
class Row:
    """One line of a table: a meshfleet run or a reported result."""

    label: str
    metrics: dict[str, float]
    kind: str  # "run" or "reported"
    run_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)


@dataclass
class Table:
    benchmark: Benchmark
    split: str
    track: str
    protocol: str
    evaluator_version: str
    rows: list[Row]

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.benchmark.name, self.split, self.track, self.protocol, self.evaluator_version)

    @property
    def title(self) -> str:
        return (f"{self.benchmark.title} · {self.split} · {self.track.upper()} track · {self.protocol} protocol · "
                f"evaluator {self.evaluator_version}")

    def best(self, key: str) -> float | None:
        """Best value of ``key`` in this table, by the metric's direction."""
        values = [r.metrics[key] for r in self.rows if _finite(r.metrics.get(key))]
        if not values:
            return None
        return max(values) if self.benchmark.metric(key).higher_is_better else min(values)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def check_key(benchmark: str, split: str, track: str, protocol: str, where: str) -> Benchmark:
    if benchmark not in BENCHMARKS:
        raise RegistryError(f"{where}: unknown benchmark {benchmark!r} (known: {sorted(BENCHMARKS)})")
    b = BENCHMARKS[benchmark]
    if split not in b.splits:
        raise RegistryError(f"{where}: unknown split {split!r} for {benchmark} (known: {list(b.splits)})")
    if track not in b.tracks:
        raise RegistryError(f"{where}: unknown track {track!r} for {benchmark} (known: {list(b.tracks)})")
    if protocol not in PROTOCOLS:
        raise RegistryError(f"{where}: unknown protocol {protocol!r} (known: {list(PROTOCOLS)})")
    return b


@dataclass(frozen=True)
class Reported:
    method: str
    benchmark: str
    split: str
    track: str
    protocol: str
    metrics: dict[str, float]
    source: str
    note: str = ""


REQUIRED = ("method", "benchmark", "split", "track", "protocol", "metrics", "source")


def load_registry(path: str | Path) -> list[Reported]:
    """Published results from the YAML registry; every entry is validated."""
    data = yaml.safe_load(Path(path).read_text())
    entries = data.get("results") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise RegistryError(f"{path}: expected a mapping with a 'results' list")
    out = []
    for i, entry in enumerate(entries):
        where = f"{path}: results[{i}]"
        if not isinstance(entry, dict):
            raise RegistryError(f"{where}: not a mapping")
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            raise RegistryError(f"{where}: missing {missing}")
        unknown = sorted(set(entry) - set(REQUIRED) - {"note"})
        if unknown:
            raise RegistryError(f"{where}: unknown keys {unknown}")
        bench = check_key(entry["benchmark"], str(entry["split"]), entry["track"], entry["protocol"], where)
        metrics = entry["metrics"]
        known = {m.key for m in bench.metrics}
        if not isinstance(metrics, dict) or not metrics or not set(metrics) <= known:
            raise RegistryError(f"{where}: metrics must be a non-empty mapping over {sorted(known)}")
        if not all(_finite(v) for v in metrics.values()):
            raise RegistryError(f"{where}: metric values must be numbers")
        out.append(Reported(entry["method"], entry["benchmark"], str(entry["split"]), entry["track"],
                            entry["protocol"], {k: float(v) for k, v in metrics.items()}, entry["source"],
                            entry.get("note", "")))
    return out


@dataclass(frozen=True)
class RunRecord:
    """What the leaderboard needs of one MLflow evaluation run."""

    run_id: str
    experiment_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    start_time_ms: int
    artifacts: list[str] = field(default_factory=list)


def known(value: Any) -> str | None:
    """A logged param as text, or None when unknown (MLflow stores a logged None as "None")."""
    text = "" if value is None else str(value).strip()
    return None if text in ("", "None", "null", "nan") else text


def build_tables(runs: list[RunRecord], reported: list[Reported]) -> list[Table]:
    """Group runs by (benchmark, split, track, protocol, evaluator version); add matching reported
    results to each group; sort rows by the headline metric (best first). A run that recorded no
    split is counted in the split its evaluator evaluates by default."""
    from eval.registry import default_split

    groups: dict[tuple[str, str, str, str, str], list[Row]] = {}
    for run in runs:
        p = {k: v for k, v in run.params.items() if known(v) is not None}
        benchmark = p.get("benchmark")
        if benchmark not in BENCHMARKS:
            continue
        key = (benchmark, p.get("split") or default_split(benchmark) or UNKNOWN, p.get("track") or "smpl",
               p.get("protocol") or "official", p.get("evaluator_version") or UNKNOWN)
        groups.setdefault(key, []).append(_run_row(run))
    with_runs = {k[:4] for k in groups}
    for r in reported:  # published numbers with no meshfleet run yet still get their table
        key4 = (r.benchmark, r.split, r.track, r.protocol)
        if key4 not in with_runs:
            groups.setdefault((*key4, UNKNOWN), [])
    tables = []
    for (benchmark, split, track, protocol, version), rows in sorted(groups.items()):
        rows = rows + [_reported_row(r) for r in reported
                       if (r.benchmark, r.split, r.track, r.protocol) == (benchmark, split, track, protocol)]
        table = Table(BENCHMARKS[benchmark], split, track, protocol, version, rows)
        table.rows.sort(key=lambda r: _sort_key(table, r))
        tables.append(table)
    return tables


def _sort_key(table: Table, row: Row) -> tuple[int, float]:
    metric = table.benchmark.metric(table.benchmark.headline)
    value = row.metrics.get(metric.key)
    if value is None or not _finite(value):
        return (1, 0.0)
    return (0, -float(value) if metric.higher_is_better else float(value))


def _run_row(run: RunRecord) -> Row:
    """A run's line: ``meshfleet <model> (<sha>)``, or, for predictions made elsewhere (no model
    recorded), the predictions' file or folder name; unknown details are left out."""
    p = {k: known(v) for k, v in run.params.items()}
    sha = (p.get("checkpoint_sha256") or "")[:12]
    predictions = (p.get("predictions") or "").rstrip("/").rsplit("/", 1)[-1]
    if p.get("model"):
        label = f"meshfleet {p['model']}" + (f" ({sha})" if sha else "")
    else:
        label = predictions or f"run {run.run_id[:8]}"
    date = datetime.fromtimestamp(run.start_time_ms / 1000, tz=UTC).strftime("%Y-%m-%d") if run.start_time_ms else ""
    details = {"model": p.get("model"), "checkpoint": sha or None, "thresholds": p.get("thresholds"),
               "meshfleet": p.get("meshfleet_version"), "date": date, "predictions": p.get("predictions")}
    return Row(label, dict(run.metrics), "run", run.run_id, {k: v for k, v in details.items() if v},
               list(run.artifacts))


def _reported_row(r: Reported) -> Row:
    details = {"source": r.source} | ({"note": r.note} if r.note else {})
    return Row(r.method, dict(r.metrics), "reported", details=details)


def format_value(metric: Metric, value: float | None) -> str:
    return UNKNOWN if value is None or not _finite(value) else f"{value:.{metric.digits}f}"


def to_markdown(tables: list[Table], run_url: str | None = None) -> str:
    """All tables as Markdown; the best value of each column in bold."""
    lines = ["# meshfleet leaderboard", "",
             "One table per benchmark, split, track, protocol and evaluator version: numbers in different "
             "tables are not comparable. *reported* rows are published numbers (source cited); the others are "
             "meshfleet runs, each linked to the MLflow run that reproduces it.", ""]
    for table in tables:
        metrics = table.benchmark.metrics
        lines += [f"## {table.title}", "",
                  "| # | method | kind | " + " | ".join(m.label + (" ↑" if m.higher_is_better else " ↓")
                                                       for m in metrics) + " | reproduce / source |",
                  "|---|---|---|" + "---|" * len(metrics) + "---|"]
        for rank, row in enumerate(table.rows, start=1):
            cells = []
            for m in metrics:
                text = format_value(m, row.metrics.get(m.key))
                best = table.best(m.key)
                cells.append(f"**{text}**" if best is not None and row.metrics.get(m.key) == best else text)
            if row.kind == "run":
                link = f"[run {row.run_id[:8]}]({run_url.format(run_id=row.run_id)})" if run_url and row.run_id \
                    else f"run {row.run_id}"
                where = "; ".join([link] + [f"{k} {v}" for k, v in row.details.items() if k != "predictions"])
            else:
                where = row.details.get("source", "")
            lines.append(f"| {rank} | {row.label} | {row.kind} | " + " | ".join(cells) + f" | {where} |")
        lines.append("")
    if not tables:
        lines.append("_No evaluation runs found._")
    return "\n".join(lines) + "\n"
