"""``meshfleet infer``: claim the output, plan the run, stream it through the job skeleton, summarise.

Runs on an embedded local Ray instance by default (started in the background while the model is
checked and the units planned), on the cluster at ``--address``, or in this process (``--no-ray``).
A rerun grows the job: only inputs that are new or changed are planned (see
:func:`pipelines.units.plan_run`), units left unfinished are finished, and the job file records the run.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

import torch

from core.models import load_checkpoint
from core.predictor import Predictor
from jobs.config import InferConfig
from jobs.track import TrackSummary, marker_name, settings_identity, track_in_place
from pipelines.inference import CommitResults, ModelSpec, block_bytes, inference_stages, unit_of
from pipelines.jobstate import Ledger, check_overlap, claim_output, now, read_ledger
from pipelines.ray_runner import RayRunner, RayStarter, cluster_address, cluster_gpus, ensure_ray
from pipelines.readers import InputItem, expand_inputs
from pipelines.schema import CAMERA_CONVENTION, results_schema, with_metadata
from pipelines.skeleton import Interrupted, Job, LocalRunner, Progress, Runner, Stage, run_job
from pipelines.stages import trim_unit
from pipelines.storage import join, localize, write_bytes_atomic
from pipelines.units import RunPlan, WorkUnit, plan_run

log = logging.getLogger(__name__)
SCHEMA_VERSION = 2  # 2: the job identity no longer holds the input list (incremental corpora)
FAILED_FILE = "_meshfleet_failed.tsv"  # every input that failed in the last run: "input<TAB>reason"
__all__ = ["run_infer", "RunSummary", "ensure_ray", "Interrupted", "Steps"]  # ensure_ray: used by `eval`


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
    failed_inputs: list[tuple[str, str]] = field(default_factory=list)  # (input, reason): error rows
    failed_units: list[tuple[str, str]] = field(default_factory=list)  # (unit, reason): left for a rerun
    failed_list: str | None = None  # where every failed input of this run is listed

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def all_failed(self) -> bool:
        return self.frames > 0 and self.persons == 0 and self.errors >= self.frames or (
            bool(self.failed_units) and self.frames == 0)

    def inputs_line(self) -> str:
        parts = [f"{self.added} new"] if self.added and self.added < self.inputs else []
        parts += [f"{self.changed} changed: their units redone"] if self.changed else []
        parts += [f"{self.removed} no longer given: their rows kept"] if self.removed else []
        return f"inputs {self.inputs}" + (f" ({', '.join(parts)})" if parts else "")

    def line(self) -> str:
        line = (f"{self.inputs_line()}  units {self.units} ({self.skipped_units} already done)  "
                f"frames {self.frames}  persons {self.persons}  errors {self.errors}  "
                f"wall {self.wall_s:.1f}s  {self.frames_per_s:.2f} frames/s")
        return line + (f"\ntracking: {self.tracking.line()}" if self.tracking else "")

    def from_progress(self, progress: Progress) -> None:
        self.frames, self.persons, self.errors = progress.items_committed, progress.rows, progress.error_rows
        self.failed_inputs, self.failed_units = list(progress.failed), list(progress.failed_units)


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


def job_identity(metadata: dict, cfg: InferConfig) -> dict:
    """What determines the rows -- the keys that must match for a rerun to continue an output.
    Not the inputs: a rerun with more inputs grows the job."""
    keys = ("model", "checkpoint_sha256", "bev_variant", "thresholds", "crowd", "root_align", "precision",
            "gender", "save_verts", "body_model_set")
    tracking = settings_identity(cfg.track) if cfg.track else None
    flip = {"hflip": True} if metadata.get("hflip") else {}
    return {**{k: metadata[k] for k in keys}, **flip, "schema_version": SCHEMA_VERSION,
            "images_per_unit": cfg.images_per_unit, "frames_per_chunk": cfg.frames_per_chunk, "tracking": tracking}


def plan_into(ledger: Ledger, items: list[InputItem], cfg: InferConfig) -> RunPlan:
    """Plan this run against the output's ledger and record it there before any unit runs: stale
    units deleted, changed images trimmed out of their units, new units and input fingerprints
    declared, tracking marks of re-run videos dropped."""
    plan = plan_run(items, ledger.units, ledger.inputs, ledger.committed(), cfg.images_per_unit, cfg.frames_per_chunk)
    ledger.forget(plan.stale)
    trimmed = {name: trim_unit(cfg.output, WorkUnit.from_dict(ledger.units[name]), set(drop)).as_dict()
               for name, drop in plan.trim.items()}
    ledger.declare(units={**trimmed, **{u.name: u.as_dict() for u in plan.new}}, inputs=plan.fingerprints)
    ledger.remove_files({marker_name(u.uris[0]) for u in plan.todo if u.kind == "video"})
    ledger.record_run({"started": now(), "inputs": len(items), "inputs_added": len(plan.added),
                       "inputs_changed": len(plan.changed), "inputs_removed": len(plan.removed),
                       "units_planned": len(plan.todo)})
    return plan


class Steps(Protocol):
    """Where a run tells what it is doing: start-up steps, then progress (the CLI shows both)."""

    def step(self, text: str) -> None: ...

    def progress(self, progress: Progress) -> None: ...


class LoggedSteps:
    """Steps to the log (INFO), progress nowhere: the default outside the CLI."""

    def step(self, text: str) -> None:
        log.info(text)

    def progress(self, progress: Progress) -> None:
        pass


def run_infer(cfg: InferConfig, steps: Steps | None = None) -> RunSummary:
    """Run (or resume, or grow) the inference job ``cfg``. Raises :class:`Interrupted` (after
    recording the run) on Ctrl-C / SIGTERM; committed units stay, nothing partial is left."""
    cfg.validate()
    steps = steps or LoggedSteps()
    start = time.perf_counter()
    steps.step(f"planning {len(cfg.inputs)} input{'s' if len(cfg.inputs) != 1 else ''}")
    items = expand_inputs(cfg.inputs)
    check_overlap(cfg.output, [item.uri for item in items])  # manifest entries too
    use_ray = cfg.use_ray if cfg.use_ray is not None else ray_pays_off(cfg.address)
    if cfg.use_ray is None and not use_ray:
        steps.step(f"running in this process: on the embedded Ray of a {os.cpu_count()}-CPU machine without a GPU, "
                   "Ray adds start-up and scheduling and no parallelism (rows are identical; --ray uses it anyway)")
    starter = None
    if use_ray and _work_likely(cfg, items):
        where = f" (attaching to {cfg.address})" if cfg.address else ""
        steps.step(f"starting Ray{where} in the background")
        starter = RayStarter(cfg.address)  # meanwhile the model is loaded and the units planned
    try:
        steps.step("loading the model")
        # fail early, naming a bad checkpoint or body-model file; a meshfleet checkpoint brings its
        # input size and root alignment, recorded in the results like any other setting
        loaded = load_checkpoint(localize(cfg.checkpoint), cfg.model)
        spec = ModelSpec(cfg.model, cfg.checkpoint, cfg.body_models, cfg.gender, cfg.settings,
                         loaded.sha256).adopt(loaded)
        cfg = replace(cfg, settings=spec.settings)
        predictor = spec.build(loaded)
        metadata = {**run_metadata(cfg, loaded.sha256), "body_model_set": predictor.body_models.name}
        summary, ledger = _run(cfg, steps, starter, spec, predictor, items, metadata)
    finally:
        if starter is not None:
            starter.stop()
    if cfg.track is not None:
        steps.step("tracking people through the videos")
        summary.tracking = track_in_place(ledger, cfg.track)
    summary.wall_s = time.perf_counter() - start
    return summary


SMALL_MACHINE_CPUS = 4  # at most this many cores and no GPU: the in-process path is the faster one


def ray_pays_off(address: str | None) -> bool:
    """Whether ``infer`` should run on Ray when not told: always on a cluster (``--address``, inside
    a Ray job) or with a GPU; not on the embedded Ray of a small CPU-only machine, where the
    bench (README, *Performance*) measures Ray's start-up and scheduling as pure cost."""
    return cluster_address(address) is not None or torch.cuda.is_available() or \
        (os.cpu_count() or 1) > SMALL_MACHINE_CPUS


def _work_likely(cfg: InferConfig, items: list[InputItem]) -> bool:
    """Whether this run will have units to run, guessed cheaply before the model loads (Ray is
    started only then): not if the output holds an infer job that has every input with the same
    content and every unit committed, nor if it holds another kind of job (refused). The identity
    is checked once the model is loaded (it depends on what the checkpoint records)."""
    ledger = read_ledger(cfg.output)
    if cfg.overwrite or ledger is None:
        return True
    if ledger.kind != "infer":
        return False
    if any(ledger.inputs.get(item.uri) != item.fingerprint for item in items):
        return True
    return not set(ledger.units) <= ledger.committed()


def _run(cfg: InferConfig, steps: Steps, starter: RayStarter | None, spec: ModelSpec, predictor: Predictor,
         items: list[InputItem], metadata: dict) -> tuple[RunSummary, Ledger]:
    schema = with_metadata(results_schema(10 if cfg.model == "romp" else 11, with_verts=cfg.settings.save_verts,
                                          with_age=cfg.model == "bev", with_tracking=cfg.track is not None,
                                          num_verts=predictor.body_models.num_verts), metadata)
    ledger = claim_output(cfg.output, "infer", job_identity(metadata, cfg), cfg.overwrite)
    plan = plan_into(ledger, items, cfg)
    summary = RunSummary(inputs=len(items), added=len(plan.added), changed=len(plan.changed),
                         removed=len(plan.removed), units=len(ledger.units),
                         skipped_units=len(ledger.units) - len(plan.todo))
    units = [unit_of(u) for u in plan.todo]
    steps.step(f"{len(units)} units to run ({summary.skipped_units} already done), "
               f"{sum(u.items for u in units)} frames")
    runner: Runner
    if starter is not None and units:
        del predictor  # the actors load their own
        steps.step("waiting for Ray")
        starter.wait()
        gpus = cluster_gpus()
        stages = inference_stages(spec, cfg.resources, gpus)
        runner = RayRunner(restart_actors=not starter.embedded,
                           block_bytes=block_bytes(cfg.resources, gpus, spec.input_size))
    else:
        stages = inference_stages(spec, cfg.resources, float(torch.cuda.device_count()))
        stages[-1] = _with_predictor(stages[-1], predictor)
        runner = LocalRunner()
    job = Job(ledger, units, stages, CommitResults(schema, cfg.model))
    status = "failed"
    try:
        progress = run_job(job, runner, steps.progress)
        status = "completed"
    except Interrupted as stop:
        status = "interrupted"
        progress = stop.progress
        raise
    finally:
        if isinstance(runner, RayRunner) and runner.stats:
            log.info("Ray Data execution:\n%s", runner.stats)
        summary.from_progress(progress if status != "failed" else Progress())
        _record(ledger, summary, status, len(units))
    return summary, ledger


def _with_predictor(stage: Stage, predictor: Predictor) -> Stage:
    """The predict stage of an in-process run reuses the predictor the driver already built."""
    return replace(stage, kwargs={**stage.kwargs, "predictor": predictor})


def _record(ledger: Ledger, summary: RunSummary, status: str, planned: int) -> None:
    failures = [*summary.failed_inputs, *summary.failed_units]
    if failures:
        ledger.declare(files=[FAILED_FILE])
        text = "".join(f"{what}\t{why}\n" for what, why in failures)
        write_bytes_atomic(join(ledger.output, FAILED_FILE), text.encode())
        summary.failed_list = join(ledger.output, FAILED_FILE)
    else:
        ledger.remove_files([FAILED_FILE])
    ledger.record_run({"finished": now(), "status": status, "units_done": planned - len(summary.failed_units)
                       if status == "completed" else None, "units_failed": [n for n, _ in summary.failed_units],
                       "inputs_failed": len(summary.failed_inputs)})

