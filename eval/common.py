"""What every benchmark evaluator shares: its config, its result, errors, parallel map, results I/O.

An evaluator is a function ``evaluate(cfg: EvalConfig) -> EvalResult`` registered in
:mod:`eval.registry`; :mod:`eval.job` runs it (after inference, if asked), writes the metrics JSON and
logs the MLflow run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa

from pipelines.results import ResultsSchemaError, results_files, results_metadata
from pipelines.results import read_results as read_results_dataset

PROTOCOLS = ("official", "fixed")
T = TypeVar("T")
R = TypeVar("R")


class EvalError(ValueError):
    """Malformed or missing benchmark data or predictions; the message names the file and field."""


@dataclass(frozen=True)
class EvalConfig:
    """Inputs of one evaluation.

    ``predictions``: a meshfleet results dataset (folder / s3:// prefix) or, where the benchmark has
    one, a folder in the official prediction format. ``data``: the benchmark folder as distributed;
    ``annots``: an annotation file (Relative Human); ``body_models``: SMPL files (AGORA, 3DPW).
    """

    benchmark: str
    predictions: str
    protocol: str = "official"
    data: str | None = None
    annots: str | None = None
    body_models: str | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise EvalError(f"protocol must be one of {PROTOCOLS}, not {self.protocol!r}")


@dataclass
class EvalResult:
    """``metrics``: flat, lowercase snake_case keys, unrounded unless the protocol rounds.
    ``rows``: per-image / per-person details (CSV artifact). ``plots``: name -> PNG bytes."""

    metrics: dict[str, float]
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    plots: dict[str, bytes] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def parallel_map(fn: Callable[[T], R], items: Sequence[T], chunk: int = 64) -> list[R]:
    """``[fn(x) for x in items]``, in chunks of Ray tasks when Ray is initialised (per-image work in
    parallel across the cluster), in this process otherwise. Order is preserved."""
    import ray

    if not ray.is_initialized() or len(items) <= chunk:
        return [fn(x) for x in items]

    @ray.remote
    def run(part: Sequence[T]) -> list[R]:
        return [fn(x) for x in part]

    refs = [run.remote(items[i:i + chunk]) for i in range(0, len(items), chunk)]
    return [r for part in ray.get(refs) for r in part]


def is_results_dataset(uri: str) -> bool:
    """True if ``uri`` holds meshfleet Parquet results (vs an official prediction format)."""
    return bool(results_files(uri))


def read_results(uri: str, columns: list[str]) -> tuple[pa.Table, dict]:
    """Good rows (``error`` null) of a results dataset (through :mod:`pipelines.results`, the one
    reader), and its metadata."""
    try:
        table = read_results_dataset(uri, columns, good_only=True)
    except FileNotFoundError as err:
        raise EvalError(str(err)) from err
    except ResultsSchemaError as err:
        raise EvalError(str(err)) from err
    return table, results_metadata(uri)


def unique_by_name(sources: Sequence[str], key: Callable[[str], Any], uri: str, what: str) -> None:
    """Refuse results whose sources collide once reduced to what the benchmark matches on
    (``key``: e.g. the file name): two inputs must never be merged into one benchmark image."""
    owner: dict[Any, str] = {}
    for source in dict.fromkeys(sources):
        name = key(source)
        if name is not None and owner.setdefault(name, source) != source:
            raise EvalError(f"{uri}: field 'source': {owner[name]} and {source} are both matched to {what} "
                            f"{name!r}; evaluate them from separate results datasets")


def png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (closes it)."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
