"""Typed, frozen job configuration, built once at the CLI and validated before any work starts."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from core.settings import MODELS, PredictorSettings
from pipelines.inference import Resources
from pipelines.jobstate import OutputOverlapError, check_overlap
from pipelines.storage import is_local, normalise
from pipelines.tracking import TrackingSettings


class ConfigError(ValueError):
    """A job configuration names something missing or impossible; the message says which key."""


@dataclass(frozen=True)
class InferConfig:
    """``meshfleet infer``: inputs, model files, output, predictor settings and how to run.

    Paths are URIs (local paths or ``s3://...``). ``address`` None runs an embedded local Ray;
    ``use_ray`` False runs the same stages in this process; None (the default) picks: Ray, except on
    the embedded Ray of a small machine without a GPU (:func:`jobs.infer.ray_pays_off`).
    ``track`` (settings or None) tracks and smooths every video after inference, in place.
    """

    inputs: tuple[str, ...]
    model: str
    checkpoint: str
    body_models: str
    output: str
    settings: PredictorSettings = field(default_factory=PredictorSettings)
    gender: str = "neutral"
    overwrite: bool = False
    images_per_unit: int = 32
    frames_per_chunk: int = 128
    address: str | None = None
    resources: Resources = field(default_factory=Resources)
    use_ray: bool | None = None
    track: TrackingSettings | None = None

    def __post_init__(self) -> None:
        for key in ("checkpoint", "body_models", "output"):
            object.__setattr__(self, key, normalise(str(getattr(self, key))))

    def validate(self) -> InferConfig:
        if not self.inputs:
            raise ConfigError("inputs: give at least one image, folder, glob, manifest or video")
        if self.model not in MODELS:
            raise ConfigError(f"model: must be one of {MODELS}, not {self.model!r}")
        if is_local(self.checkpoint) and not os.path.isfile(self.checkpoint):
            raise ConfigError(f"checkpoint: {self.checkpoint} not found")
        if is_local(self.body_models) and not os.path.isdir(self.body_models):
            raise ConfigError(f"body_models: {self.body_models} is not a directory")
        if self.gender not in ("neutral", "male", "female"):
            raise ConfigError(f"gender: must be neutral, male or female, not {self.gender!r}")
        if is_local(self.output) and os.path.exists(self.output) and not os.path.isdir(self.output):
            raise ConfigError(f"output: {self.output} exists and is not a directory")
        try:
            check_overlap(self.output, self.inputs)
        except OutputOverlapError as err:
            raise ConfigError(str(err)) from err
        if self.images_per_unit < 1 or self.frames_per_chunk < 1:
            raise ConfigError("images_per_unit / frames_per_chunk: must be >= 1")
        r = self.resources
        if (r.actors is not None and r.actors < 1) or r.gpus_per_actor <= 0 or r.cpus_per_actor < 0:
            raise ConfigError("actors >= 1, gpus_per_actor > 0 and cpus_per_actor >= 0 are required")
        self.settings.thresholds(self.model)  # raises on inconsistent settings
        return self

    def as_dict(self) -> dict:
        """Plain JSON-able view, for logs and MLflow params."""
        out = asdict(self)
        out["inputs"] = list(self.inputs)
        return out
