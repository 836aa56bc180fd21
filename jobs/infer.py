"""``meshfleet infer``: claim the output, plan the run, run the Ray pipeline, summarise.

Runs on an embedded local Ray instance by default, or on the cluster at ``--address``. A rerun
grows the job: only inputs that are new or changed are planned (see :func:`pipelines.units.plan_run`),
units left unfinished are finished, and the job file records the run.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version

import torch

from core.checkpoints import file_sha256
from jobs.config import InferConfig
from jobs.track import TrackSummary, marker_name, settings_identity, track_in_place
from pipelines.jobstate import Ledger, check_overlap, claim_output, now
from pipelines.ray_job import ModelSpec, run_ray_pipeline
from pipelines.readers import expand_inputs
from pipelines.schema import CAMERA_CONVENTION, results_schema, with_metadata
from pipelines.stages import UnitStats, run_sequential, trim_unit
from pipelines.storage import localize
from pipelines.units import RunPlan, WorkUnit, plan_run

log = logging.getLogger(__name__)
SCHEMA_VERSION = 2  # 2: the job identity no longer holds the input list (incremental corpora)
SHOWN_FAILURES = 10


@dataclass
class RunSummary:
    inputs: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    units: int = 0
    skipped_units: int = 0
    frames: int = 0
    persons: int = 0
    errors: int = 0
    wall_s: float = 0.0
    tracking: TrackSummary | None = None
    failed_units: list[tuple[str, str]] = field(default_factory=list)  # (unit, transient reason)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def add(self, stats: UnitStats) -> None:
        if stats.failed:
            self.failed_units.append((stats.name, stats.failed))
            return
        self.frames += stats.frames
        self.persons += stats.persons
        self.errors += stats.errors

    def inputs_line(self) -> str:
        parts = [f"{self.added} new"] if self.added and self.added < self.inputs else []
        parts += [f"{self.changed} changed: their units redone"] if self.changed else []
        parts += [f"{self.removed} no longer given: their rows kept"] if self.removed else []
        return f"inputs {self.inputs}" + (f" ({', '.join(parts)})" if parts else "")

    def line(self) -> str:
        line = (f"{self.inputs_line()}  units {self.units} ({self.skipped_units} already done)  "
                f"frames {self.frames}  persons {self.persons}  errors {self.errors}  "
                f"wall {self.wall_s:.1f}s  {self.frames_per_s:.2f} frames/s")
        if self.failed_units:
            shown = "; ".join(f"{n}: {why}" for n, why in self.failed_units[:SHOWN_FAILURES])
            line += (f"\n{len(self.failed_units)} units not committed after transient failures (rerun the same "
                     f"command to retry them): {shown}")
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
        "meshfleet_version": meshfleet_version(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }


def job_identity(metadata: dict, cfg: InferConfig) -> dict:
    """What determines the rows -- the keys that must match for a rerun to continue an output.
    Not the inputs: a rerun with more inputs grows the job."""
    keys = ("model", "checkpoint_sha256", "bev_variant", "thresholds", "crowd", "root_align", "precision",
            "gender", "save_verts")
    tracking = settings_identity(cfg.track) if cfg.track else None
    return {**{k: metadata[k] for k in keys}, "schema_version": SCHEMA_VERSION,
            "images_per_unit": cfg.images_per_unit, "frames_per_chunk": cfg.frames_per_chunk, "tracking": tracking}


def plan_into(ledger: Ledger, items: list, cfg: InferConfig) -> RunPlan:
    """Plan this run against the output's ledger and record it there before any unit runs: stale
    units deleted, new units and input fingerprints declared, tracking marks of re-run videos dropped."""
    plan = plan_run(items, ledger.units, ledger.inputs, ledger.committed(), cfg.images_per_unit, cfg.frames_per_chunk)
    ledger.forget(plan.stale)
    trimmed = {name: trim_unit(cfg.output, WorkUnit.from_dict(ledger.units[name]), set(drop)).as_dict()
               for name, drop in plan.trim.items()}
    ledger.declare(units={**trimmed, **{u.name: u.as_dict() for u in plan.new}}, inputs=plan.fingerprints)
    ledger.remove_files({marker_name(u.uris[0]) for u in plan.todo if u.kind == "video"})
    ledger.record_run({"started": now(), "inputs": len(items), "inputs_added": len(plan.added),
                       "inputs_changed": len(plan.changed), "inputs_removed": len(plan.removed),
                       "units_planned": len(plan.todo)})
    if plan.changed:
        log.warning("%d inputs changed since the last run; their units are redone (e.g. %s)", len(plan.changed),
                    plan.changed[0])
    return plan


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
    """Run (or resume, or grow) the inference job ``cfg``; ``progress(summary, total_frames)`` per unit."""
    cfg.validate()
    start = time.perf_counter()
    digest = file_sha256(localize(cfg.checkpoint))
    spec = ModelSpec(cfg.model, cfg.checkpoint, cfg.body_models, cfg.gender, cfg.settings, digest)
    predictor = spec.build()  # fail early, naming a bad checkpoint or body-model file
    items = expand_inputs(cfg.inputs)
    check_overlap(cfg.output, [item.uri for item in items])  # manifest entries too
    metadata = run_metadata(cfg, digest)
    schema = with_metadata(results_schema(10 if cfg.model == "romp" else 11, with_verts=cfg.settings.save_verts,
                                          with_age=cfg.model == "bev", with_tracking=cfg.track is not None), metadata)
    ledger = claim_output(cfg.output, "infer", job_identity(metadata, cfg), cfg.overwrite)
    plan = plan_into(ledger, items, cfg)
    todo = plan.todo
    summary = RunSummary(inputs=len(items), added=len(plan.added), changed=len(plan.changed),
                         removed=len(plan.removed), units=len(ledger.units),
                         skipped_units=len(ledger.units) - len(todo))
    total = sum(u.frames for u in todo)
    log.info("%d units to run (%d already committed), %d frames", len(todo), summary.skipped_units, total)

    def on_unit(stats: UnitStats) -> None:
        summary.add(stats)
        summary.wall_s = time.perf_counter() - start
        if progress:
            progress(summary, total)

    status = "failed"
    try:
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
            summary.tracking = track_in_place(ledger, cfg.track)
        status = "completed"
    finally:
        done = len(todo) - len(summary.failed_units)
        ledger.record_run({"finished": now(), "status": status, "units_done": done if status == "completed" else None,
                           "units_failed": [n for n, _ in summary.failed_units]})
    summary.wall_s = time.perf_counter() - start
    return summary
