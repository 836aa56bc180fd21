"""``meshfleet render``: a results dataset -> one picture per image and one H.264 MP4 per video.

The output mirrors the sources: ``<source path>.<jpg|png|mp4>`` below ``--output`` (paths below
the sources' common folder for absolute sources). It is owned like any job output: a rerun of the
same job skips the files already written (each appears atomically), another job is refused unless
``overwrite``. See :mod:`pipelines.render` for the stages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from core.render import panel
from pipelines.jobstate import claim_output
from pipelines.render.draw import DrawOptions
from pipelines.render.encode import JPEG_QUALITY, encode_unit
from pipelines.render.plan import IMAGE_FORMATS, VIDEO_FORMATS, VIEWS, MediaUnit, RenderInputError, plan_units
from pipelines.render.ray_run import collect_units, stream_panels
from pipelines.storage import join, normalise, url_to_fs, with_retries, write_bytes_atomic
from pipelines.synth.media import encode_jpeg

log = logging.getLogger(__name__)
JOB_KIND = "render"
RENDER_VERSION = 1  # bump when the pictures change for the same settings (a rerun then needs --overwrite)
THUMBNAIL_HEIGHT = 160  # px, the leaderboard's run thumbnail


@dataclass(frozen=True)
class RenderConfig:
    """``meshfleet render``: the images and videos of ``results`` drawn into ``output``.

    inputs: media root (None: each ``source`` as stored); body_models: ``open`` or a folder / s3://
    prefix, for the faces of saved vertices and the bodies of results without them; views: of
    ``overlay``, ``side``, ``top``, in panel order; alpha in (0, 1]: mesh opacity on the overlay;
    joints: draw ``pj2d_org``; format / video_format: jpg|png / mp4; device: auto|cpu|cuda; workers:
    renderer actors (None: one per GPU, else 1); ray: False runs every stage in this process;
    mlflow_run: an MLflow run (of ``mlflow_uri``) that gets a thumbnail of the first picture, which
    the leaderboard shows in the run's row."""

    results: str
    output: str
    inputs: str | None = None
    body_models: str = "open"
    views: tuple[str, ...] = VIEWS
    alpha: float = 1.0
    joints: bool = True
    format: str = "jpg"
    video_format: str = "mp4"
    device: str = "auto"
    workers: int | None = None
    overwrite: bool = False
    ray: bool = True
    mlflow_run: str | None = None
    mlflow_uri: str | None = None

    def __post_init__(self) -> None:
        if self.format not in IMAGE_FORMATS:
            raise ValueError(f"format must be {' or '.join(IMAGE_FORMATS)}, not {self.format!r}")
        if self.video_format not in VIDEO_FORMATS:
            raise ValueError(f"video_format must be {' or '.join(VIDEO_FORMATS)}, not {self.video_format!r}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        self.options()  # checks views, alpha and device

    def options(self) -> DrawOptions:
        return DrawOptions(tuple(self.views), self.alpha, self.joints, self.device, self.body_models)

    def identity(self) -> dict:
        """What determines the pictures (the media location and the resources do not)."""
        return {"kind": JOB_KIND, "version": RENDER_VERSION, "results": normalise(self.results).rstrip("/"),
                "body_models": self.body_models, "views": list(self.views), "alpha": self.alpha,
                "joints": self.joints, "format": self.format, "video_format": self.video_format}


@dataclass
class RenderSummary:
    units: int = 0
    skipped: int = 0
    written: int = 0
    frames: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input, reason), one per input and reason
    wall_s: float = 0.0

    def line(self) -> str:
        rate = f", {self.frames / self.wall_s:.2f} frames/s" if self.wall_s > 0 and self.frames else ""
        errors = f", {len({s for s, _ in self.failed})} inputs with unreadable frames" if self.failed else ""
        return (f"{self.written} files rendered ({self.frames} frames{rate}), {self.skipped} already done"
                f"{errors}")


def _exists(uri: str) -> bool:
    fs, path = url_to_fs(uri)
    return bool(with_retries(lambda: fs.exists(path), f"stat {uri}"))


def check_output(cfg: RenderConfig) -> None:
    results, output = normalise(cfg.results).rstrip("/"), normalise(cfg.output).rstrip("/")
    if output == results or output.startswith(results + "/") or results.startswith(output + "/"):
        raise RenderInputError(f"--output {cfg.output} overlaps the results dataset {cfg.results}: "
                               "give another folder")
    if not _exists(results):
        raise RenderInputError(f"{cfg.results}: results dataset not found")


def render_dataset(cfg: RenderConfig,
                   progress: Callable[[RenderSummary, int], None] | None = None) -> RenderSummary:
    """Render (or resume rendering) ``cfg``; ``progress(summary, total_units)`` after each file.
    Raises RenderInputError (user errors: no results, missing columns, output overlap) and
    JobMismatchError (the output holds another job)."""
    start = time.perf_counter()
    check_output(cfg)
    options = cfg.options()
    info, units = plan_units(cfg.results, cfg.inputs, cfg.format, cfg.video_format)
    ledger = claim_output(cfg.output, "render", cfg.identity(), cfg.overwrite)
    ledger.declare(units={u.name: {"source": u.source} for u in units})  # owned before they are written
    todo = [u for u in units if not _exists(join(cfg.output, u.name))]
    summary = RenderSummary(units=len(units), skipped=len(units) - len(todo))
    log.info("render: %d files to draw (%d already done), %d frames", len(todo), summary.skipped,
             sum(u.frames for u in todo))

    def commit(unit: MediaUnit, rows: dict[str, np.ndarray]) -> None:
        encoded = encode_unit(unit, rows)
        write_bytes_atomic(join(cfg.output, unit.name), encoded.data)
        summary.written += 1
        summary.frames += encoded.frames
        summary.failed.extend(encoded.failed)
        summary.wall_s = time.perf_counter() - start
        if progress:
            progress(summary, len(todo))

    if todo:
        _run(cfg, options, info, todo, commit)
    summary.wall_s = time.perf_counter() - start
    if cfg.mlflow_run and units:
        from eval.leaderboard_io import RENDER_THUMBNAIL
        from eval.mlflow_log import log_artifact_bytes

        log_artifact_bytes(cfg.mlflow_run, RENDER_THUMBNAIL, thumbnail(join(cfg.output, units[0].name)),
                           cfg.mlflow_uri)
    return summary


def thumbnail(uri: str, height: int = THUMBNAIL_HEIGHT) -> bytes:
    """A JPEG ``height`` px high of a rendered picture, or of a rendered video's first frame."""
    from pipelines.readers import kind_of, read_image
    from pipelines.video import iter_video_frames

    bgr = read_image(uri) if kind_of(uri) == "image" else next(iter_video_frames(uri, 0, 1)).image
    if bgr is None:
        raise ValueError(f"{uri}: cannot read the rendered video for a thumbnail")
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    return encode_jpeg(panel([rgb], height), JPEG_QUALITY)


def _run(cfg: RenderConfig, options: DrawOptions, info, todo: list[MediaUnit],
         commit: Callable[[MediaUnit, dict[str, np.ndarray]], None]) -> None:
    if not cfg.ray:
        _check_device(options.device, 1.0 if torch.cuda.is_available() else 0.0)
        collect_units(stream_panels(todo, info, options, 1, 0.0, ray=False), todo, commit)
        return
    from jobs.infer import ensure_ray

    started = ensure_ray(None)
    try:
        import ray

        gpus = float(ray.cluster_resources().get("GPU", 0.0)) if options.device != "cpu" else 0.0
        _check_device(options.device, gpus)
        workers = cfg.workers or (max(1, int(gpus)) if gpus else 1)
        collect_units(stream_panels(todo, info, options, workers, 1.0 if gpus else 0.0), todo, commit)
    finally:
        if started:
            import ray

            ray.shutdown()


def _check_device(device: str, gpus: float) -> None:
    if device == "cuda" and gpus <= 0:
        raise RenderInputError("--device cuda: no CUDA GPU here (use --device auto or cpu)")
