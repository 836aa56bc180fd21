"""``meshfleet pseudo-label``: infer (the one inference pipeline), filter, write training shards, report.

    OUTPUT/results/        the inference results dataset (``meshfleet infer``'s, tracked for videos)
    OUTPUT/results-flip/   --flip-tta: the same pipeline over left-right mirrored frames
    OUTPUT/results-agree/  --agree-checkpoint: the same pipeline with the second checkpoint
    OUTPUT/labels/         the kept people, training annotation format, one shard per results unit
    OUTPUT/scores/         every person's filter scores, pass flags and weight, one table per unit
    OUTPUT/report/         report.json and histograms (also logged to MLflow)

Every stage resumes: inference skips committed units, labelling skips units whose inputs and
settings did not change (pipelines/pseudo_label.py), the report is rebuilt from the score tables.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from core.checkpoints import file_sha256
from core.pseudo_filters import FilterThresholds
from core.settings import PredictorSettings
from jobs.config import ConfigError, InferConfig, shipped_asset
from jobs.infer import RunSummary, ensure_ray, meshfleet_version, run_infer
from pipelines.annotations import ANNOTATION_VERSION
from pipelines.body_model_sets import is_open
from pipelines.inference import Resources
from pipelines.jobstate import claim_output
from pipelines.pseudo_label import GENERATOR, LabelContext, LabelSummary, label_results
from pipelines.skeleton import Progress
from pipelines.storage import is_local, join, localize, normalise
from pipelines.tracking import TrackingSettings

log = logging.getLogger(__name__)
OWNED_FOLDERS = ("results", "results-flip", "results-agree", "labels", "scores", "report")
EXPERIMENT = "meshfleet-pseudo-label"
PASSES = ("results", "results-flip", "results-agree")


@dataclass(frozen=True)
class PseudoLabelConfig:
    """``meshfleet pseudo-label``: inputs and model as ``infer``; ``filters`` the thresholds
    (core.pseudo_filters); ``flip_tta`` adds a pass over mirrored frames, ``agree_checkpoint`` (with
    ``agree_model``, default ``model``) a pass of a second checkpoint, each compared person by person;
    MLflow at ``mlflow_uri`` (default $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db) unless
    ``use_mlflow`` is false."""

    inputs: tuple[str, ...]
    checkpoint: str
    body_models: str
    output: str
    model: str = "romp"
    settings: PredictorSettings = field(default_factory=PredictorSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    filters: FilterThresholds = field(default_factory=FilterThresholds)
    flip_tta: bool = False
    agree_checkpoint: str | None = None
    agree_model: str | None = None
    gender: str = "neutral"
    images_per_unit: int = 32
    frames_per_chunk: int = 128
    address: str | None = None
    resources: Resources = field(default_factory=Resources)
    use_ray: bool = True
    overwrite: bool = False
    mlflow_uri: str | None = None
    use_mlflow: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoint", normalise(shipped_asset("checkpoint", str(self.checkpoint))))
        object.__setattr__(self, "output", normalise(str(self.output)))
        if not is_open(str(self.body_models)):
            object.__setattr__(self, "body_models", normalise(str(self.body_models)))
        if self.agree_checkpoint:
            object.__setattr__(self, "agree_checkpoint", normalise(shipped_asset("checkpoint", self.agree_checkpoint)))

    def passes(self) -> tuple[str, ...]:
        """The inference passes this job runs (sub-folders of ``output``)."""
        return tuple(p for p, on in zip(PASSES, (True, self.flip_tta, bool(self.agree_checkpoint)), strict=True) if on)

    def infer_config(self, name: str) -> InferConfig:
        """The ``meshfleet infer`` job of pass ``name``: videos are tracked in the main pass only."""
        base = InferConfig(
            inputs=self.inputs, model=self.model, checkpoint=self.checkpoint, body_models=self.body_models,
            output=join(self.output, name), settings=self.settings, gender=self.gender,
            images_per_unit=self.images_per_unit, frames_per_chunk=self.frames_per_chunk, address=self.address,
            resources=self.resources, use_ray=self.use_ray, track=self.tracking if name == "results" else None)
        if name == "results-flip":
            return replace(base, settings=replace(self.settings, hflip=True))
        if name == "results-agree":
            assert self.agree_checkpoint
            return replace(base, checkpoint=self.agree_checkpoint, model=self.agree_model or self.model)
        return base

    def validate(self) -> PseudoLabelConfig:
        if self.settings.hflip:
            raise ConfigError("settings.hflip: set --flip-tta instead (the main pass reads the frames as they are)")
        for name in self.passes():
            self.infer_config(name).validate()
        for uri in self.inputs:
            if is_local(uri) and _overlaps(normalise(uri), self.output):
                raise ConfigError(f"output: {self.output} overlaps the input {uri}; use another --output")
        return self


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


@dataclass
class PseudoSummary:
    inference: dict[str, RunSummary] = field(default_factory=dict)
    labels: LabelSummary = field(default_factory=LabelSummary)
    report: dict = field(default_factory=dict)
    mlflow_run_id: str | None = None
    wall_s: float = 0.0

    def line(self) -> str:
        lines = [f"{name}: {s.line()}" for name, s in self.inference.items()]
        lines.append(self.labels.line())
        if self.report:
            r = self.report
            lines.append(f"dataset: persons {r['persons']}  kept {r['kept']}  dropped {r['dropped']}  "
                         f"mean weight {r['weight_mean']:.3f}  wall {self.wall_s:.1f}s")
        return "\n".join(lines)


def job_identity(cfg: PseudoLabelConfig, body_model_set: str, checkpoint_sha256: str,
                 agree_sha256: str | None) -> dict:
    """What must match for a rerun to continue an output (the thresholds may change: labels are redone)."""
    return {"job": "pseudo-label", "annotation_version": ANNOTATION_VERSION, "model": cfg.model,
            "checkpoint_sha256": checkpoint_sha256, "body_model_set": body_model_set, "flip_tta": cfg.flip_tta,
            "agree_checkpoint_sha256": agree_sha256,
            "agree_model": (cfg.agree_model or cfg.model) if agree_sha256 else None}


class PassSteps:
    """What an inference pass reports (:class:`jobs.infer.Steps`): its start-up steps to the log,
    its progress to ``report(progress, frames_total)``."""

    def __init__(self, name: str, report: Callable[[Progress, int], None] | None):
        self.name, self.report = name, report

    def step(self, text: str) -> None:
        log.info("%s: %s", self.name, text)

    def progress(self, progress: Progress) -> None:
        if self.report:
            self.report(progress, progress.items_total)


def run_inference(cfg: InferConfig, progress: Callable[[Progress, int], None] | None, name: str = "results"
                  ) -> RunSummary:
    """The one call into the inference job (jobs/infer.py ``run_infer``) for every pass."""
    return run_infer(cfg, PassSteps(name, progress))


def run_pseudo_label(cfg: PseudoLabelConfig, progress: Callable[[str, object, int], None] | None = None
                     ) -> PseudoSummary:
    """Run (or resume) the job; ``progress(stage, summary, total)`` per unit of each stage."""
    from eval.pseudo_report import log_report, write_report
    from pipelines.body_model_sets import load_body_model_set

    cfg.validate()
    start = time.perf_counter()
    # loaded before inference: a bad body-model file fails the job early, naming the file
    body_models = load_body_model_set(cfg.body_models, cfg.gender, for_bev=cfg.model == "bev")
    body_model_set = body_models.name
    checkpoint_sha256 = file_sha256(localize(cfg.checkpoint))
    agree_sha256 = file_sha256(localize(cfg.agree_checkpoint)) if cfg.agree_checkpoint else None
    identity = job_identity(cfg, body_model_set, checkpoint_sha256, agree_sha256)
    ledger = claim_output(cfg.output, "pseudo-label", identity, cfg.overwrite)
    ledger.declare(folders=OWNED_FOLDERS)  # each inference pass keeps its own ledger in its folder
    summary = PseudoSummary()
    started = ensure_ray(cfg.address) if cfg.use_ray else False
    try:
        for name in cfg.passes():
            on_unit = partial(progress, name) if progress else None
            summary.inference[name] = run_inference(cfg.infer_config(name), on_unit, name)
    finally:
        if started:
            import ray

            ray.shutdown()
    provenance = {"generator": GENERATOR, "model": cfg.model, "checkpoint": cfg.checkpoint,
                  "checkpoint_sha256": checkpoint_sha256, "meshfleet_version": meshfleet_version(),
                  "thresholds": cfg.filters.as_dict(), "flip_tta": cfg.flip_tta,
                  "agree_checkpoint_sha256": agree_sha256}
    ctx = LabelContext(output=cfg.output, results=join(cfg.output, "results"), thresholds=cfg.filters,
                       body_models=body_models, body_model_set=body_model_set, provenance=provenance,
                       flip=join(cfg.output, "results-flip") if cfg.flip_tta else None,
                       agree=join(cfg.output, "results-agree") if cfg.agree_checkpoint else None)
    summary.labels = label_results(ctx, partial(progress, "labels") if progress else None)
    summary.report, plots = write_report(cfg.output, summary.labels.unit_names, cfg.filters, provenance)
    if cfg.use_mlflow:
        summary.mlflow_run_id = log_report(EXPERIMENT, summary.report, plots, cfg.mlflow_uri,
                                           run_name=os.path.basename(cfg.output.rstrip("/")) or "pseudo-label")
    summary.wall_s = time.perf_counter() - start
    return summary
