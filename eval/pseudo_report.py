"""The report of ``meshfleet pseudo-label``: kept / dropped per filter, histograms, MLflow.

Built from the score tables (``OUTPUT/scores/``, one per results unit: every person's scores and
pass flags), so it always covers the whole dataset, including units labelled by earlier runs.
Per filter: ``applicable`` (people it tests), ``dropped_marginal`` (people failing it, whatever the
other filters say) and ``dropped_sequential`` (people it drops when the filters run in the order of
core.pseudo_filters.RULES, each seeing only the survivors of the previous ones), ``remaining_after``.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from core.pseudo_filters import RULES, FilterThresholds, Rule
from eval.common import png
from eval.mlflow_log import log_run
from pipelines.pseudo_label import SCORES
from pipelines.storage import join, list_files, read_parquet, write_bytes_atomic

REPORT = "report"


def read_scores(output: str, unit_names: list[str]) -> pa.Table:
    """The score tables of the current units (stale ones are ignored)."""
    wanted = set(unit_names)
    files = [f for f in list_files(join(output, SCORES), ".parquet") if f.rsplit("/", 1)[-1] in wanted]
    tables = [read_parquet(f) for f in files]
    tables = [t for t in tables if t.num_rows] or tables[:1]
    return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})


def _thresholds_of(rule: Rule, thresholds: FilterThresholds) -> dict[str, float]:
    return {name: getattr(thresholds, name) for name in (rule.low, rule.high) if name}


def summarise(scores: pa.Table, thresholds: FilterThresholds) -> dict:
    """Counts per filter and overall (see the module doc)."""
    n = scores.num_rows
    kept = scores.column("kept").to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
    weight = scores.column("weight").to_numpy(zero_copy_only=False)[kept] if n else np.zeros(0)
    first = scores.column("first_failed").to_pylist() if n else []
    remaining = n
    filters = []
    for rule in RULES:
        if f"pass_{rule.name}" not in scores.column_names:
            continue
        values = scores.column(rule.score).to_numpy(zero_copy_only=False)
        passed = scores.column(f"pass_{rule.name}").to_numpy(zero_copy_only=False)
        sequential = sum(1 for f in first if f == rule.name)
        remaining -= sequential
        filters.append({"name": rule.name, "score": rule.score, "thresholds": _thresholds_of(rule, thresholds),
                        "applicable": int((~np.isnan(values)).sum()), "dropped_marginal": int((~passed).sum()),
                        "dropped_sequential": sequential, "remaining_after": remaining})
    return {"persons": n, "kept": int(kept.sum()), "dropped": int(n - kept.sum()),
            "kept_fraction": float(kept.mean()) if n else 0.0,
            "weight_mean": float(weight.mean()) if len(weight) else 0.0,
            "weight_median": float(np.median(weight)) if len(weight) else 0.0,
            "thresholds": thresholds.as_dict(), "filters": filters}


def _histogram(values: np.ndarray, title: str, xlabel: str, lines: dict[str, float]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = values[np.isfinite(values)]
    span = np.concatenate([finite, list(lines.values())]) if len(finite) or lines else np.zeros(1)
    low, high = float(span.min()), float(span.max())
    bins = np.linspace(low, high if high > low else low + 1.0, 41)  # thresholds inside the axis, bars to scale
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(finite, bins=bins.tolist(), color="#4c72b0")
    for name, value in lines.items():
        ax.axvline(value, color="#c44e52", linestyle="--", label=f"{name} = {value:g}")
    infinite = len(values) - len(finite)
    ax.set_title(title + (f" ({infinite} without a match / infinite)" if infinite else ""), fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("people")
    if lines:
        ax.legend(fontsize=8, loc="upper right")
    return png(fig)


def plots(scores: pa.Table, report: dict) -> dict[str, bytes]:
    """``hist_<filter>.png`` of every filter's score over the people it applies to (thresholds dashed),
    and ``hist_weight.png`` of the kept people's weights."""
    out: dict[str, bytes] = {}
    for entry in report["filters"]:
        values = scores.column(entry["score"]).to_numpy(zero_copy_only=False).astype(np.float64)
        values = values[~np.isnan(values)]
        if len(values):
            title = f"{entry['name']}: drops {entry['dropped_marginal']} of {entry['applicable']}"
            out[f"hist_{entry['name']}.png"] = _histogram(values, title, entry["score"], entry["thresholds"])
    if scores.num_rows:
        kept = scores.column("kept").to_numpy(zero_copy_only=False)
        weight = scores.column("weight").to_numpy(zero_copy_only=False)[kept].astype(np.float64)
        out["hist_weight.png"] = _histogram(weight, f"confidence weight of the {int(kept.sum())} kept people",
                                            "weight", {})
    return out


def write_report(output: str, unit_names: list[str], thresholds: FilterThresholds,
                 provenance: dict) -> tuple[dict, dict[str, bytes]]:
    """Build the report, write ``OUTPUT/report/report.json`` and the PNGs; returns (report, PNGs)."""
    scores = read_scores(output, unit_names)
    report = {**summarise(scores, thresholds), "units": len(unit_names),
              "provenance": {k: v for k, v in provenance.items() if k != "thresholds"}}
    images = plots(scores, report)
    folder = join(output, REPORT)
    for name, blob in images.items():
        write_bytes_atomic(join(folder, name), blob)
    write_bytes_atomic(join(folder, "report.json"), json.dumps(report, indent=2, default=str).encode())
    return report, images


def log_report(experiment: str, report: dict, images: dict[str, bytes], tracking_uri: str | None,
               run_name: str) -> str:
    """One MLflow run: the thresholds and provenance as params, the counts as metrics, the report
    and histograms as artifacts; returns the run id."""
    params = {**{f"filter.{k}": v for k, v in report["thresholds"].items()}, **report["provenance"]}
    metrics = {k: report[k] for k in ("persons", "kept", "dropped", "kept_fraction", "weight_mean", "units")}
    for entry in report["filters"]:
        for key in ("applicable", "dropped_marginal", "dropped_sequential"):
            metrics[f"{key}.{entry['name']}"] = entry[key]
    return log_run(experiment, run_name, params, metrics, {"report.json": report}, tracking_uri,
                   tags={"job": "pseudo-label"}, binary_artifacts=images)
