"""Typed, frozen job configuration, built once at the CLI and validated before any work starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.settings import MODELS, PredictorSettings


class ConfigError(ValueError):
    """A job configuration names something missing or impossible; the message says which key."""


@dataclass(frozen=True)
class InferConfig:
    """``meshfleet infer``: what to read, which model, where to write, and predictor settings."""

    inputs: tuple[str, ...]
    model: str
    checkpoint: Path
    body_models: Path
    output: Path
    settings: PredictorSettings = field(default_factory=PredictorSettings)
    gender: str = "neutral"
    overwrite: bool = False

    def validate(self) -> InferConfig:
        if not self.inputs:
            raise ConfigError("inputs: give at least one image, folder, glob or video")
        if self.model not in MODELS:
            raise ConfigError(f"model: must be one of {MODELS}, not {self.model!r}")
        if not self.checkpoint.is_file():
            raise ConfigError(f"checkpoint: {self.checkpoint} not found")
        if not self.body_models.is_dir():
            raise ConfigError(f"body_models: {self.body_models} is not a directory")
        if self.gender not in ("neutral", "male", "female"):
            raise ConfigError(f"gender: must be neutral, male or female, not {self.gender!r}")
        if self.output.exists() and not self.output.is_dir():
            raise ConfigError(f"output: {self.output} exists and is not a directory")
        self.settings.thresholds(self.model)  # raises on inconsistent settings
        return self

    def as_dict(self) -> dict:
        """Plain JSON-able view, for logs, MLflow params and dataset metadata."""
        out = asdict(self)
        for key in ("checkpoint", "body_models", "output"):
            out[key] = str(out[key])
        out["inputs"] = list(self.inputs)
        return out
