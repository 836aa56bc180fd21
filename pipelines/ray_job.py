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
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import pyarrow as pa

from core.models import LoadedNetwork, load_checkpoint
from core.predictor import ImagePreparer, Predictor
from core.preprocess import INPUT_SIZE
from core.settings import PredictorSettings
from pipelines.body_model_sets import load_body_model_set
from pipelines.stages import UnitStats, commit_unit, decode_unit, predict_unit
from pipelines.storage import localize
from pipelines.units import WorkUnit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """What an inference actor loads: paths or URIs of the model files, and predictor settings.

    ``input_size`` is the network's (512 for the official models; a meshfleet checkpoint records
    its own -- :meth:`adopt` fills it in, and the ROMP root alignment it was trained with).
    """

    model: str
    checkpoint: str
    body_models: str
    gender: str
    settings: PredictorSettings
    input_size: int = INPUT_SIZE

    def build(self, loaded: LoadedNetwork | None = None) -> Predictor:
        """Load the model files (downloading remote ones to a local cache) into a Predictor;
        ``loaded`` reuses a network already read from ``checkpoint``."""
        body_models = load_body_model_set(self.body_models, self.gender, for_bev=self.model == "bev")
        loaded = loaded or load_checkpoint(localize(self.checkpoint), self.model)
        return Predictor(loaded.network, body_models, self.settings)

    def adopt(self, loaded: LoadedNetwork) -> ModelSpec:
        """This spec with the input size of ``loaded`` and, for a meshfleet checkpoint trained on
        hip-centred joints, the root alignment it needs at inference."""
        settings = self.settings
        if loaded.info is not None and loaded.info.root_align and not settings.root_align:
            settings = replace(settings, root_align=True)
        return replace(self, settings=settings, input_size=loaded.network.input_size)


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
    return {"unit": row["unit"], "decoded": pickle.dumps(decode_unit(unit, preparer), protocol=5)}


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
        for blob in batch["decoded"]:
            decoded = pickle.loads(blob)
            tables.append(pickle.dumps(predict_unit(decoded, self.predictor, self.schema), protocol=5))
        return {"unit": list(batch["unit"]), "table": tables}


def _commit_row(row: dict[str, Any], output: str) -> dict[str, Any]:
    stats = commit_unit(pickle.loads(row["table"]), output, WorkUnit.from_json(row["unit"]))
    return {"name": stats.name, "frames": stats.frames, "persons": stats.persons, "errors": stats.errors}


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
    preparer = ImagePreparer.for_model(spec.model, spec.settings, spec.input_size)
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
        stats = UnitStats(row["name"], int(row["frames"]), int(row["persons"]), int(row["errors"]))
        if on_unit:
            on_unit(stats)
        yield stats
