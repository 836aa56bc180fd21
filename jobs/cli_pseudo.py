"""``meshfleet pseudo-label``: the command line of jobs/pseudo_label.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from core.pseudo_filters import FilterThresholds
from jobs.cli_common import explicit_params, fail, flags_tree, input_error_code, print_spec, resolve, setup_logging

_F = FilterThresholds()
MLFLOW_HELP = "MLflow tracking URI. Default: $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db."
PATHS = {
    "inputs": "inputs", "model": "model", "checkpoint": "checkpoint", "body_models": "body_models", "output": "output",
    "gender": "gender", "overwrite": "overwrite", "address": "address", "chunk_frames": "frames_per_chunk",
    "images_per_unit": "images_per_unit", "ray": "use_ray", "center_thresh": "settings.center_thresh",
    "crowd": "settings.crowd", "bev_variant": "settings.bev_variant", "device": "settings.device",
    "precision": "settings.precision", "batch_size": "settings.batch_size", "actors": "resources.actors",
    "smooth_coeff": "tracking.smoothing.smooth_coeff", "track_det_thresh": "tracking.tracker.det_thresh",
    "track_low_thresh": "tracking.tracker.low_thresh", "track_buffer": "tracking.tracker.track_buffer",
    "flip_tta": "flip_tta", "agree_checkpoint": "agree_checkpoint", "agree_model": "agree_model",
    "mlflow_uri": "mlflow_uri", "mlflow": "use_mlflow",
    **{name: f"filters.{name}" for name in _F.as_dict()},
}


def pseudo_label(
    ctx: typer.Context,
    inputs: Annotated[list[str] | None, typer.Argument(
        help="Images, folders / s3:// prefixes, globs, manifests or videos (as for infer).")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="The teacher checkpoint (path or s3:// URI).")] = None,
    body_models: Annotated[str | None, typer.Option(
        "--body-models", help="Folder (or s3:// prefix) of SMPL-format body-model files.")] = None,
    output: Annotated[str | None, typer.Option(
        help="Folder or s3:// prefix: results/, labels/ (the training shards), scores/, report/.")] = None,
    model: Annotated[str, typer.Option(help="romp or bev.")] = "romp",
    gender: Annotated[str, typer.Option(help="SMPL model: neutral, male or female.")] = "neutral",
    center_thresh: Annotated[float | None, typer.Option(
        help="Detection threshold of inference (see infer); --min-center-conf filters after it.")] = None,
    crowd: Annotated[bool, typer.Option("--crowd/--no-crowd", help="BEV crowd mode (see infer).")] = True,
    bev_variant: Annotated[str, typer.Option(help="bev, bev_ft_agora or auto (see infer).")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, or bf16 / fp16 on CUDA.")] = "fp32",
    batch_size: Annotated[int | None, typer.Option(help="Network views per forward (see infer).")] = None,
    chunk_frames: Annotated[int, typer.Option(help="Video frames per work unit.")] = 128,
    images_per_unit: Annotated[int, typer.Option(help="Images per work unit.")] = 32,
    actors: Annotated[int | None, typer.Option(help="Inference actors (default: one per GPU, or 1).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster to attach to (default: embedded local Ray).")
                       ] = None,
    ray: Annotated[bool, typer.Option("--ray/--no-ray", help="--no-ray runs inference in this process.")] = True,
    smooth_coeff: Annotated[float, typer.Option(help="Video tracking: One-Euro pose min cutoff (see infer).")] = 3.0,
    track_det_thresh: Annotated[float, typer.Option(help="Tracker detection threshold (see infer).")] = 0.12,
    track_low_thresh: Annotated[float, typer.Option(help="Tracker low threshold (see infer).")] = 0.05,
    track_buffer: Annotated[int, typer.Option(help="Tracker buffer in frames (see infer).")] = 60,
    flip_tta: Annotated[bool, typer.Option(
        "--flip-tta/--no-flip-tta", help="Also infer on mirrored frames and keep people whose mirrored result "
                                         "agrees (--max-flip-error).")] = False,
    agree_checkpoint: Annotated[str | None, typer.Option(
        help="A second checkpoint: keep people both checkpoints agree on (--max-agree-error).")] = None,
    agree_model: Annotated[str | None, typer.Option(help="Model of --agree-checkpoint (default: --model).")] = None,
    min_center_conf: Annotated[float, typer.Option(help="Filter: centre confidence at least this.")
                               ] = _F.min_center_conf,
    min_in_frame: Annotated[float, typer.Option(help="Filter: fraction of the 24 body joints inside the image.")
                            ] = _F.min_in_frame,
    max_abs_beta: Annotated[float, typer.Option(help="Filter: largest |beta| of the 10 shape coefficients.")
                            ] = _F.max_abs_beta,
    max_limit_violation_deg: Annotated[float, typer.Option(help="Filter: degrees beyond the joint limits.")
                                       ] = _F.max_limit_violation_deg,
    min_depth_m: Annotated[float, typer.Option(help="Filter: nearest cam_trans z (m).")] = _F.min_depth_m,
    max_depth_m: Annotated[float, typer.Option(help="Filter: farthest cam_trans z (m).")] = _F.max_depth_m,
    max_depth_scale_ratio: Annotated[float, typer.Option(
        help="Filter: depth vs the depth implied by 2D / 3D size, max(r, 1/r).")] = _F.max_depth_scale_ratio,
    min_track_frames: Annotated[int, typer.Option(help="Filter (videos): frames in the person's track.")
                                ] = _F.min_track_frames,
    max_speed_mps: Annotated[float, typer.Option(help="Filter (videos): root speed, m/s.")] = _F.max_speed_mps,
    max_accel_mps2: Annotated[float, typer.Option(help="Filter (videos): mean body-joint acceleration, m/s^2.")
                              ] = _F.max_accel_mps2,
    max_smooth_trans_dev: Annotated[float, typer.Option(
        help="Filter (videos): |raw - smoothed translation| / depth.")] = _F.max_smooth_trans_dev,
    max_smooth_pose_deg: Annotated[float, typer.Option(
        help="Filter (videos): mean joint rotation from the smoothed pose, degrees.")] = _F.max_smooth_pose_deg,
    max_flip_error: Annotated[float, typer.Option(
        help="Filter (--flip-tta): 2D error to the mirrored pass / body-box diagonal.")] = _F.max_flip_error,
    max_agree_error: Annotated[float, typer.Option(
        help="Filter (--agree-checkpoint): 2D error to the second checkpoint / body-box diagonal.")
                               ] = _F.max_agree_error,
    mlflow_uri: Annotated[str | None, typer.Option("--mlflow-uri", "--tracking-uri", help=MLFLOW_HELP)] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log a run to MLflow.")] = True,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Start over: delete what --output holds. Without it, a rerun resumes.")] = False,
    spec: Annotated[Path | None, typer.Option(help="Job spec file (kind pseudo-label); options override it.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the fully resolved spec and stop.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Pseudo-label images and videos: run inference (tracking videos), keep the people that pass the
    filters, write them as training annotation shards with confidence weights and provenance, and
    report kept / dropped per filter (OUTPUT/report/ and MLflow).

    Rerunning resumes; new inputs or new thresholds relabel only what changed.
    """
    setup_logging(verbose)
    if spec is None and (not inputs or checkpoint is None or body_models is None or output is None):
        fail("give INPUT..., --checkpoint, --body-models and --output (or --spec FILE)", 2)
    values: dict[str, Any] = dict(locals())
    values["inputs"] = list(inputs or [])
    given = explicit_params(ctx)
    paths = {k: v for k, v in PATHS.items() if values[k] is not None or k in ("center_thresh", "batch_size", "actors")}
    config = resolve("pseudo-label", flags_tree(values, paths), flags_tree(values, paths, given), spec)
    if dry_run:
        print_spec("pseudo-label", config)
        return
    raise typer.Exit(run_pseudo_and_report(config))


def run_pseudo_and_report(cfg: Any) -> int:
    from tqdm import tqdm

    from core.checkpoints import CheckpointError
    from core.smpl_pickle import BodyModelFileError
    from jobs.config import ConfigError
    from jobs.pseudo_label import run_pseudo_label
    from pipelines.jobstate import JobMismatchError
    from pipelines.readers import InputError

    try:
        cfg.validate()
    except (ConfigError, ValueError) as err:
        fail(err, 2)
    bar = tqdm(dynamic_ncols=True, file=sys.stderr, disable=not sys.stderr.isatty())
    current = [""]

    def progress(stage: str, summary: Any, total: int) -> None:
        """One bar, restarted per stage: frames of each inference pass, then units labelled."""
        done = summary.items_done if stage != "labels" else summary.units + summary.skipped_units
        if current[0] != stage:
            current[0] = stage
            bar.reset(total)
            bar.set_description(stage)
        bar.total = total
        bar.update(done - bar.n)

    try:
        summary = run_pseudo_label(cfg, progress)
    except (CheckpointError, BodyModelFileError, InputError, JobMismatchError, ConfigError, ValueError,
            OSError) as err:
        bar.close()
        fail(err, input_error_code(err))
    bar.close()
    typer.echo(summary.line() + f"\nlabels: {cfg.output.rstrip('/')}/labels  report: {cfg.output.rstrip('/')}/report"
               + (f"  mlflow run: {summary.mlflow_run_id}" if summary.mlflow_run_id else ""))
    return 0
