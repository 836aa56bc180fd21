"""The streaming Ray Data inference pipeline.

    units (driver) -> decode + pre-process (CPU tasks) -> Predictor (actor pool, one model per GPU)
                   -> commit one Parquet file per unit (CPU tasks) -> per-unit stats (driver)

Rows carry whole work units (a group of images or a chunk of video frames), so each unit is
committed by exactly one task, atomically; Ray Data streams them with backpressure. GPUs are
requested only when the cluster has some: asking for one on a CPU-only cluster hangs forever.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pyarrow as pa

from core.body_models import BodyModelSet
from core.checkpoints import CheckpointError, file_sha256
from core.models import load_network
from core.predictor import ImagePreparer, Predictor
from core.settings import PredictorSettings
from pipelines.stages import UnitStats, commit_unit, decode_unit, predict_unit
from pipelines.storage import TransientError, localize
from pipelines.units import WorkUnit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """What an inference actor loads: paths or URIs of the model files, and predictor settings.
    ``checkpoint_sha256``: the digest the job recorded; a worker refuses weights that differ."""

    model: str
    checkpoint: str
    body_models: str
    gender: str
    settings: PredictorSettings
    checkpoint_sha256: str | None = None

    def build(self) -> Predictor:
        """Load the model files (downloading remote ones to a local cache) into a Predictor."""
        body_dir = localize(self.body_models, directory=True)
        body_models = BodyModelSet.from_dir(body_dir, self.gender, for_bev=self.model == "bev")
        path = localize(self.checkpoint)
        if self.checkpoint_sha256 and (found := file_sha256(path)) != self.checkpoint_sha256:
            raise CheckpointError(f"{self.checkpoint}: sha256 {found[:12]}... differs from the job's "
                                  f"{self.checkpoint_sha256[:12]}... (the file changed during the job?); refusing it")
        network, _ = load_network(self.model, path)
        return Predictor(network, body_models, self.settings)


@dataclass(frozen=True)
class Resources:
    """Ray resources of the stages. ``actors`` None = one per GPU (or 1 without GPUs)."""

    actors: int | None = None
    gpus_per_actor: float = 1.0
    cpus_per_actor: float = 1.0
    cpus_per_task: float = 0.5
    torch_threads: int | None = None


def _decode_row(row: dict[str, Any], preparer: ImagePreparer) -> dict[str, Any]:
    unit = WorkUnit.from_json(row["unit"])
    try:
        return {"unit": row["unit"], "decoded": pickle.dumps(decode_unit(unit, preparer), protocol=5), "failed": ""}
    except TransientError as err:  # left uncommitted, reported; the rerun retries it
        return {"unit": row["unit"], "decoded": b"", "failed": str(err)}


class InferenceActor:
    """Loads one Predictor per actor (one per GPU) and runs it on decoded units."""

    def __init__(self, spec: ModelSpec, schema: pa.Schema, torch_threads: int | None):
        import torch

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.predictor = spec.build()
        self.schema = schema

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        tables = []
        for blob, failed in zip(batch["decoded"], batch["failed"], strict=True):
            if failed:
                tables.append(b"")
                continue
            decoded = pickle.loads(blob)
            tables.append(pickle.dumps(predict_unit(decoded, self.predictor, self.schema), protocol=5))
        return {"unit": list(batch["unit"]), "table": tables, "failed": list(batch["failed"])}


def _commit_row(row: dict[str, Any], output: str) -> dict[str, Any]:
    unit = WorkUnit.from_json(row["unit"])
    if row["failed"]:
        return {"name": unit.name, "frames": 0, "persons": 0, "errors": 0, "failed": row["failed"]}
    stats = commit_unit(pickle.loads(row["table"]), output, unit)
    return {"name": stats.name, "frames": stats.frames, "persons": stats.persons, "errors": stats.errors,
            "failed": ""}


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def run_ray_pipeline(
    units: list[WorkUnit],
    spec: ModelSpec,
    schema: pa.Schema,
    output: str,
    resources: Resources,
    on_unit: Callable[[UnitStats], None] | None = None,
) -> list[UnitStats]:
    """Run all ``units`` on the current Ray cluster (``ray.init`` must have been called)."""
    import ray

    if not units:
        return []
    gpus = cluster_gpus()
    num_gpus = resources.gpus_per_actor if gpus > 0 else 0.0
    actors = resources.actors or (max(1, int(gpus // max(num_gpus, 1e-9))) if num_gpus else 1)
    preparer = ImagePreparer.for_model(spec.model, spec.settings)
    torch_threads = resources.torch_threads or (None if num_gpus else os.cpu_count())
    log.info("ray pipeline: %d units, %d actor(s), %.2f GPU / %.2f CPU per actor", len(units), actors, num_gpus,
             resources.cpus_per_actor)

    rows = [{"unit": u.to_json()} for u in units]
    ds: ray.data.Dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
    ds = ds.map(partial(_decode_row, preparer=preparer), num_cpus=resources.cpus_per_task)
    ds = ds.map_batches(
        InferenceActor,
        fn_constructor_kwargs={"spec": spec, "schema": schema, "torch_threads": torch_threads},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=num_gpus,
        num_cpus=resources.cpus_per_actor,
    )
    ds = ds.map(partial(_commit_row, output=output), num_cpus=resources.cpus_per_task)
    return list(_collect(ds.iter_rows(), on_unit))


def _collect(rows: Iterable[dict[str, Any]], on_unit: Callable[[UnitStats], None] | None) -> Iterator[UnitStats]:
    for row in rows:
        stats = UnitStats(row["name"], int(row["frames"]), int(row["persons"]), int(row["errors"]),
                          row["failed"] or None)
        if on_unit:
            on_unit(stats)
        yield stats
