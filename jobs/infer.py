"""``meshfleet infer`` on the embedded default: load once, run the local pipeline, summarise."""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version

import torch

from core.body_models import BodyModelSet
from core.models import load_network
from core.predictor import Predictor
from jobs.config import InferConfig
from pipelines.local import RunSummary, run_local
from pipelines.readers import expand_inputs
from pipelines.schema import CAMERA_CONVENTION, results_schema, with_metadata
from pipelines.writer import ResultsWriter

log = logging.getLogger(__name__)


def meshfleet_version() -> str:
    try:
        return version("meshfleet")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


def run_metadata(cfg: InferConfig, predictor: Predictor, checkpoint_sha256: str) -> dict:
    """What makes this run reproducible; stored in every result file's schema."""
    return {
        "model": cfg.model,
        "checkpoint": str(cfg.checkpoint),
        "checkpoint_sha256": checkpoint_sha256,
        "bev_variant": cfg.settings.bev_variant if cfg.model == "bev" else None,
        "thresholds": asdict(predictor.thresholds),
        "crowd": cfg.settings.crowd if cfg.model == "bev" else None,
        "root_align": cfg.model == "bev" or cfg.settings.root_align,
        "precision": cfg.settings.precision,
        "gender": cfg.gender,
        "camera": CAMERA_CONVENTION,
        "meshfleet_version": meshfleet_version(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }


def build_predictor(cfg: InferConfig) -> tuple[Predictor, str]:
    """Load body models and checkpoint (failing early, naming the bad file)."""
    body_models = BodyModelSet.from_dir(cfg.body_models, cfg.gender, for_bev=cfg.model == "bev")
    network, digest = load_network(cfg.model, cfg.checkpoint)
    return Predictor(network, body_models, cfg.settings), digest


def run_infer(cfg: InferConfig, progress: Callable[[int, int], None] | None = None) -> RunSummary:
    cfg.validate()
    items = expand_inputs(cfg.inputs)
    predictor, digest = build_predictor(cfg)
    schema = with_metadata(
        results_schema(10 if cfg.model == "romp" else 11, with_verts=cfg.settings.save_verts,
                       with_age=cfg.model == "bev"),
        run_metadata(cfg, predictor, digest),
    )
    writer = ResultsWriter(cfg.output, schema, overwrite=cfg.overwrite)
    log.info("running %s on %d inputs (%s, thresholds %s)", cfg.model, len(items), predictor.device,
             predictor.thresholds)
    return run_local(items, predictor, writer, predictor.batch_size, progress)
