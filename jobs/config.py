"""Typed, frozen job configuration, built once at the CLI and validated before any work starts.

:meth:`InferConfig.validate` checks everything that can be checked without loading a model or
starting Ray: the files named exist (checkpoint, body-model files, an output that can be created),
the numbers are in range, the device exists where the job runs. Names that depend on the checkpoint
(``model: auto``, ``bev_variant: auto``) are filled in by :func:`with_checkpoint_names`, and names of
assets shipped with meshfleet by :func:`shipped_asset`: one place each.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.body_models import BodyModelFiles
from core.checkpoints import recorded_model
from core.settings import MODELS, PredictorSettings, bev_variant_for, check_range, model_for
from pipelines.body_model_sets import is_open
from pipelines.inference import Resources
from pipelines.jobstate import OutputOverlapError, check_overlap
from pipelines.storage import is_local, normalise
from pipelines.tracking import TrackingSettings

# The checkpoint meshfleet trained on its own synthetic scenes and ships (recipe and metrics beside it).
DEMO_CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "core" / "assets" / "demo_checkpoint"
# Assets shipped with meshfleet, by the name a user gives instead of a path: name -> local path.
# (``--body-models open`` is resolved by pipelines.body_model_sets, which loads it from core.)
SHIPPED: dict[str, dict[str, str]] = {"checkpoint": {"demo": str(DEMO_CHECKPOINT_DIR / "model.pth")},
                                      "body_models": {}}


class ConfigError(ValueError):
    """A job configuration names something missing or impossible; the message says which key."""


def shipped_asset(kind: str, value: str) -> str:
    """The local path of a shipped asset named ``value`` (``kind``: checkpoint or body_models), else
    ``value`` unchanged. The one place where such names are resolved."""
    return SHIPPED[kind].get(value, value)


def checkpoint_model(checkpoint: str | None) -> str:
    """The model a meshfleet checkpoint records (a local file), else the one its file name suggests."""
    if checkpoint and is_local(str(checkpoint)):
        path = os.path.expanduser(shipped_asset("checkpoint", str(checkpoint)))
        recorded = recorded_model(path) if os.path.isfile(path) else None
        if recorded:
            return recorded
    return model_for(checkpoint)


def with_checkpoint_names(section: dict) -> dict:
    """An infer section (spec data or options) with ``model`` and ``settings.bev_variant`` filled in
    where they are ``auto`` or not given: the model a meshfleet checkpoint records, else from the file
    name (``BEV*.pth`` -> bev, else romp);
    ``BEV_ft_agora.pth`` -> the bev_ft_agora defaults table."""
    checkpoint = section.get("checkpoint")
    out = dict(section)
    if out.get("model") in (None, "auto"):
        out["model"] = checkpoint_model(checkpoint)
    settings = out.get("settings")
    settings = dict(settings) if isinstance(settings, dict) else {}
    if settings.get("bev_variant") in (None, "auto"):
        settings["bev_variant"] = bev_variant_for(checkpoint)
    out["settings"] = settings
    return out


def runs_locally(address: str | None, use_ray: bool = True) -> bool:
    """True when the job's models run on this machine (embedded Ray or ``--no-ray``), not on a cluster."""
    return not use_ray or (not address and not os.environ.get("RAY_ADDRESS"))


def check_device(device: str, precision: str) -> None:
    """Refuse a CUDA device, or a CUDA-only precision, this machine does not have (call only for local
    runs: a cluster's GPUs are on its workers)."""
    import torch

    cuda = torch.cuda.is_available()
    if device.startswith("cuda") and not cuda:
        raise ConfigError(f"device: {device} requested but CUDA is not available on this machine "
                          "(use --device cpu or auto)")
    index = int(device.split(":")[1]) if ":" in device else 0
    if device.startswith("cuda") and index >= torch.cuda.device_count():
        raise ConfigError(f"device: {device} requested but this machine has {torch.cuda.device_count()} CUDA devices")
    if precision != "fp32" and (device == "cpu" or not cuda):
        raise ConfigError(f"precision: {precision} needs a CUDA device (use --precision fp32 on CPU)")


def check_output(output: str) -> None:
    """Refuse a local output that exists as a file, or that cannot be created or written."""
    if not is_local(output):
        return
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output: {output} exists and is not a directory")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"output: cannot create {output}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"output: cannot write to {existing} (permission denied)")


def check_tracking(settings: TrackingSettings) -> None:
    """Tracker thresholds are center confidences in [0, 1] with low <= det; buffer and smoothing > 0."""
    tracker = settings.tracker
    check_range("track_det_thresh", tracker.det_thresh, 0.0, 1.0)
    check_range("track_low_thresh", tracker.low_thresh, 0.0, tracker.det_thresh)
    check_range("track_buffer", tracker.track_buffer, 1.0)
    check_range("smooth_coeff", settings.smoothing.smooth_coeff, 1e-9)


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
            value = shipped_asset(key, str(getattr(self, key))) if key in SHIPPED else str(getattr(self, key))
            named = key == "body_models" and is_open(value)
            object.__setattr__(self, key, value if named else normalise(value))

    def validate(self) -> InferConfig:
        """Check what can be checked before loading a model or starting Ray (ConfigError, or
        BodyModelFileError naming the missing files); returns self."""
        if not self.inputs:
            raise ConfigError("inputs: give at least one image, folder, glob, manifest or video")
        if self.model not in MODELS:
            raise ConfigError(f"model: must be one of {MODELS}, not {self.model!r}")
        if self.gender not in ("neutral", "male", "female"):
            raise ConfigError(f"gender: must be neutral, male or female, not {self.gender!r}")
        checkpoint = shipped_asset("checkpoint", self.checkpoint)
        if is_local(checkpoint) and not os.path.isfile(checkpoint):
            raise ConfigError(f"checkpoint: {self.checkpoint} not found")
        if is_open(self.body_models):
            if self.gender != "neutral":
                raise ConfigError(f"gender: the open body model is gender-neutral only, not {self.gender!r}")
        elif is_local(body_models := shipped_asset("body_models", self.body_models)):
            if not os.path.exists(body_models):
                raise ConfigError(f"body_models: {self.body_models} does not exist")
            if not os.path.isdir(body_models):
                raise ConfigError(f"body_models: {self.body_models} is a file; give the folder that holds the "
                                  "body-model files (or `open`)")
            BodyModelFiles.find(body_models, self.gender)  # names the missing files
        check_output(self.output)
        try:
            check_overlap(self.output, self.inputs)
        except OutputOverlapError as err:
            raise ConfigError(str(err)) from err
        if self.track is not None:
            check_tracking(self.track)
        if runs_locally(self.address, self.use_ray is not False):
            check_device(self.settings.device, self.settings.precision)
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
