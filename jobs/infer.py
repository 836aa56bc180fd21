"""``meshfleet infer``: plan the units, claim the output, run the Ray pipeline, summarise.

Runs on an embedded local Ray instance by default, or on the cluster at ``--address``.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from importlib.metadata import PackageNotFoundError, version

import torch

from core.models import load_checkpoint
from jobs.config import InferConfig
from jobs.track import TrackSummary, settings_identity, track_in_place
from pipelines.jobstate import prepare_output
from pipelines.ray_job import ModelSpec, run_ray_pipeline
from pipelines.readers import expand_inputs
from pipelines.schema import CAMERA_CONVENTION, results_schema, with_metadata
from pipelines.stages import UnitStats, run_sequential
from pipelines.storage import localize
from pipelines.units import plan_digest, plan_units

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1


@dataclass
class RunSummary:
    inputs: int = 0
    units: int = 0
    skipped_units: int = 0
    frames: int = 0
    persons: int = 0
    errors: int = 0
    wall_s: float = 0.0
    tracking: TrackSummary | None = None

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def add(self, stats: UnitStats) -> None:
        self.frames += stats.frames
        self.persons += stats.persons
        self.errors += stats.errors

    def line(self) -> str:
        line = (f"inputs {self.inputs}  units {self.units} ({self.skipped_units} already done)  "
                f"frames {self.frames}  persons {self.persons}  errors {self.errors}  "
                f"wall {self.wall_s:.1f}s  {self.frames_per_s:.2f} frames/s")
        return line + (f"\ntracking: {self.tracking.line()}" if self.tracking else "")


def meshfleet_version() -> str:
    try:
        return version("meshfleet")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


def run_metadata(cfg: InferConfig, checkpoint_sha256: str) -> dict:
    """What makes this run reproducible; stored in every result file's schema."""
    bev = cfg.model == "bev"
    return {
        "model": cfg.model,
        "checkpoint": cfg.checkpoint,
        "checkpoint_sha256": checkpoint_sha256,
        "bev_variant": cfg.settings.bev_variant if bev else None,
        "thresholds": asdict(cfg.settings.thresholds(cfg.model)),
        "crowd": cfg.settings.crowd if bev else None,
        "root_align": bev or cfg.settings.root_align,
        "precision": cfg.settings.precision,
        "gender": cfg.gender,
        "save_verts": cfg.settings.save_verts,
        "camera": CAMERA_CONVENTION,
        **({"hflip": True} if cfg.settings.hflip else {}),  # absent unless set: older outputs keep their identity
        "meshfleet_version": meshfleet_version(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }


def job_identity(metadata: dict, cfg: InferConfig, digest: str) -> dict:
    """The keys that must match for a rerun to continue an existing output."""
    keys = ("model", "checkpoint_sha256", "bev_variant", "thresholds", "crowd", "root_align", "precision",
            "gender", "save_verts", "body_model_set")
    tracking = settings_identity(cfg.track) if cfg.track else None
    flip = {"hflip": True} if metadata.get("hflip") else {}
    return {**{k: metadata[k] for k in keys}, **flip, "schema_version": SCHEMA_VERSION,
            "images_per_unit": cfg.images_per_unit, "frames_per_chunk": cfg.frames_per_chunk, "plan": digest,
            "tracking": tracking}


def ensure_ray(address: str | None) -> bool:
    """Connect to ``address`` or start an embedded local Ray; True if this call started it.

    Inside a Ray job (``meshfleet submit``) the job's own cluster, given by ``RAY_ADDRESS``, is used.
    """
    import ray

    if ray.is_initialized():
        return False
    inherited = os.environ.get("RAY_ADDRESS", "")
    if not address and inherited and not inherited.startswith("http"):
        address = inherited
    if address:
        runtime_env = None
        if address.startswith("ray://"):  # client mode: ship our packages to the cluster
            import core
            import jobs
            import pipelines

            runtime_env = {"py_modules": [core, pipelines, jobs]}
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    return True


def run_infer(cfg: InferConfig, progress: Callable[[RunSummary, int], None] | None = None) -> RunSummary:
    """Run (or resume) the inference job ``cfg``; ``progress(summary, total_frames)`` per unit."""
    cfg.validate()
    start = time.perf_counter()
    # fail early, naming a bad checkpoint or body-model file; a meshfleet checkpoint brings its
    # input size and root alignment, recorded in the results like any other setting
    loaded = load_checkpoint(localize(cfg.checkpoint), cfg.model)
    spec = ModelSpec(cfg.model, cfg.checkpoint, cfg.body_models, cfg.gender, cfg.settings).adopt(loaded)
    cfg = replace(cfg, settings=spec.settings)
    predictor = spec.build(loaded)
    items = expand_inputs(cfg.inputs)
    units = plan_units(items, cfg.images_per_unit, cfg.frames_per_chunk)
    metadata = {**run_metadata(cfg, loaded.sha256), "body_model_set": predictor.body_models.name}
    schema = with_metadata(results_schema(10 if cfg.model == "romp" else 11, with_verts=cfg.settings.save_verts,
                                          with_age=cfg.model == "bev", with_tracking=cfg.track is not None,
                                          num_verts=predictor.body_models.num_verts), metadata)
    committed = prepare_output(cfg.output, job_identity(metadata, cfg, plan_digest(units)), cfg.overwrite)
    todo = [u for u in units if u.name not in committed]
    summary = RunSummary(inputs=len(items), units=len(units), skipped_units=len(units) - len(todo))
    total = sum(u.frames for u in todo)
    log.info("%d units to run (%d already committed), %d frames", len(todo), summary.skipped_units, total)

    def on_unit(stats: UnitStats) -> None:
        summary.add(stats)
        summary.wall_s = time.perf_counter() - start
        if progress:
            progress(summary, total)

    if todo and cfg.use_ray:
        del predictor  # the actors load their own
        started = ensure_ray(cfg.address)
        try:
            run_ray_pipeline(todo, spec, schema, cfg.output, cfg.resources, on_unit)
        finally:
            if started:
                import ray

                ray.shutdown()
    elif todo:
        run_sequential(todo, predictor, schema, cfg.output, on_unit)
    if cfg.track is not None:
        summary.tracking = track_in_place(cfg.output, cfg.track)
    summary.wall_s = time.perf_counter() - start
    return summary

