"""``meshfleet infer`` on the job skeleton: the model it loads, its stages and how a unit is committed.

    work units -> read_frames (CPU tasks) -> PredictFrames (actors: one model per GPU) -> commit (driver)

See :mod:`pipelines.skeleton` for how the stages are streamed and units committed, and
:mod:`pipelines.stages` for the stage functions themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from core.checkpoints import CheckpointError, file_sha256
from core.models import LoadedNetwork, load_checkpoint
from core.predictor import ImagePreparer, Predictor
from core.preprocess import INPUT_SIZE
from core.settings import PredictorSettings
from pipelines.body_model_sets import load_body_model_set
from pipelines.schema import results_table
from pipelines.skeleton import Batch, Committed, Stage, Unit
from pipelines.stages import FRAMES_PER_BATCH, PredictFrames, read_frames
from pipelines.storage import localize, table_to_bytes
from pipelines.units import WorkUnit


@dataclass(frozen=True)
class ModelSpec:
    """What an inference worker loads: paths or URIs of the model files, and predictor settings.
    ``checkpoint_sha256``: the digest the job recorded; a worker refuses weights that differ.
    ``input_size`` is the network's (512 for the official models; a meshfleet checkpoint records
    its own -- :meth:`adopt` fills it in, and the ROMP root alignment it was trained with)."""

    model: str
    checkpoint: str
    body_models: str
    gender: str
    settings: PredictorSettings
    checkpoint_sha256: str | None = None
    input_size: int = INPUT_SIZE

    def build(self, loaded: LoadedNetwork | None = None) -> Predictor:
        """Load the model files (downloading remote ones to a local cache) into a Predictor;
        ``loaded`` reuses a network already read from ``checkpoint``."""
        body_models = load_body_model_set(self.body_models, self.gender, for_bev=self.model == "bev")
        if loaded is None:
            path = localize(self.checkpoint)
            if self.checkpoint_sha256 and (found := file_sha256(path)) != self.checkpoint_sha256:
                raise CheckpointError(f"{self.checkpoint}: sha256 {found[:12]}... differs from the job's "
                                      f"{self.checkpoint_sha256[:12]}... (the file changed during the job?); "
                                      "refusing it")
            loaded = load_checkpoint(path, self.model)
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
    """Ray resources of the stages. ``actors`` None = one per GPU (or 1 without GPUs);
    ``frames_per_call`` None = 4 frames per model call on CPU (progress every few seconds), 64 on GPU;
    ``torch_threads`` None = every core on a CPU-only node (the read tasks are light)."""

    actors: int | None = None
    gpus_per_actor: float = 1.0
    cpus_per_actor: float = 1.0
    cpus_per_task: float = 0.5
    torch_threads: int | None = None
    frames_per_call: int | None = None


def inference_stages(spec: ModelSpec, resources: Resources, gpus: float) -> list[Stage]:
    """read_frames -> PredictFrames, sized for a cluster with ``gpus`` GPUs."""
    on_gpu = gpus > 0
    actors = resources.actors or (max(1, int(gpus // max(resources.gpus_per_actor, 1e-9))) if on_gpu else 1)
    threads = resources.torch_threads or (None if on_gpu else os.cpu_count())
    frames = frames_per_call(resources, gpus)
    preparer = ImagePreparer.for_model(spec.model, spec.settings, spec.input_size)
    return [
        Stage("read", read_frames, kwargs={"preparer": preparer, "frames_per_batch": FRAMES_PER_BATCH},
              num_cpus=resources.cpus_per_task),
        Stage("predict", PredictFrames, actor=True, kwargs={"spec": spec, "torch_threads": threads},
              batch_size=frames, num_cpus=resources.cpus_per_actor,
              num_gpus=resources.gpus_per_actor if on_gpu else 0.0, concurrency=actors),
    ]


def frames_per_call(resources: Resources, gpus: float) -> int:
    return resources.frames_per_call or (64 if gpus > 0 else 4)


def block_bytes(resources: Resources, gpus: float, input_size: int = INPUT_SIZE) -> int:
    """Ray Data block size for one model call's frames (a 512 x 512 x 3 view each, +25 % for the
    rest of the row and crops), so that actors take -- and return -- one call at a time."""
    return int(frames_per_call(resources, gpus) * input_size * input_size * 3 * 1.25)


def unit_of(work: WorkUnit) -> Unit:
    return Unit(work.name, work.frames, work.to_json())


class CommitResults:
    """The rows of one unit -> its Parquet file (rows in frame order, people in official order)."""

    def __init__(self, schema: pa.Schema, model: str):
        self.schema, self.model = schema, model

    def __call__(self, unit: Unit, rows: Batch) -> Committed:
        if not rows:
            return Committed(table_to_bytes(self.schema.empty_table()), 0)
        order = np.lexsort((rows["person"], rows["item"]))
        rows = {k: np.asarray(v)[order] for k, v in rows.items()}
        errors = np.asarray(rows["error"]) != ""
        failed: dict[str, str] = {}
        for source, reason in zip(rows["source"][errors], rows["error"][errors], strict=True):
            failed.setdefault(str(source), str(reason))
        table = results_table(rows, self.schema, self.model)
        return Committed(table_to_bytes(table), int((~errors).sum()), tuple(failed.items()), int(errors.sum()))
