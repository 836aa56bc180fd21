"""The ``meshfleet`` command line.

Every job command also takes ``--spec FILE`` (YAML/TOML: defaults < spec < options given on the
command line) and ``--dry-run`` (print the fully resolved spec and stop). Errors, help and option
aliases follow :mod:`jobs.cli_base`; an option shared by several commands has one name, one help
text (below or in :mod:`jobs.cli_base`) and one default everywhere, or its help says why not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.settings import OFFICIAL_THRESHOLDS
from jobs.cli_base import (
    BEV_VARIANT_HELP,
    CONTEXT,
    DRY_HELP,
    MLFLOW_URI_HELP,
    MODEL_HELP,
    SPEC_HELP,
    VERBOSE_HELP,
    CommandLine,
    aliased,
    show_version,
)
from jobs.cli_body_model import body_model_app
from jobs.cli_cluster import jobs_app, submit
from jobs.cli_common import (
    explicit_params,
    fail,
    flags_tree,
    job_from_options,
    load_any_spec,
    print_spec,
    resolve,
    run_here,
    run_infer_and_report,
    run_job,
    setup_logging,
)
from jobs.cli_demo import demo
from jobs.cli_eval import eval_app
from jobs.cli_export import export_app
from jobs.cli_pseudo import pseudo_label
from jobs.cli_render import render
from jobs.cli_synth import synth
from jobs.cli_train import train
from jobs.config import ConfigError, InferConfig, check_tracking

app = typer.Typer(
    name="meshfleet",
    help="Batch inference and evaluation for multi-person 3D human mesh recovery (ROMP / BEV).\n\n"
         "Exit codes: 0 success; 1 the job failed; 2 a usage or input error (one line on stderr "
         "naming the input; -v adds the traceback); 3 the job finished but inputs failed (the summary "
         "names up to ten and where the full list is); 130 interrupted (rerun the same command to resume).",
    no_args_is_help=True,
    add_completion=False,
    cls=CommandLine,
    rich_markup_mode=None,
    context_settings=CONTEXT,
)
app.add_typer(eval_app, name="eval")
app.add_typer(jobs_app, name="jobs")
app.add_typer(export_app, name="export")
app.add_typer(body_model_app, name="body-model")
app.command()(submit)
app.command()(synth)
app.command()(demo)
app.command("pseudo-label")(pseudo_label)
app.command()(render)
app.command()(train)


@app.callback()
def meshfleet(
    version: Annotated[bool, typer.Option("--version", callback=show_version, is_eager=True,
                                          help="Print the versions of meshfleet, Python, Ray and torch.")] = False,
) -> None:
    """Batch inference and evaluation for multi-person 3D human mesh recovery (ROMP / BEV)."""

_BEV = OFFICIAL_THRESHOLDS[("bev", False)]
_BEV_CROWD = OFFICIAL_THRESHOLDS[("bev", True)]
_ROMP = OFFICIAL_THRESHOLDS[("romp", False)]
SMOOTH_HELP = "One-Euro min cutoff for pose (official -sc), > 0; smaller is smoother."
DET_HELP = "Tracker: detections above this confidence, in [0, 1], start and extend tracks (official 0.12)."
LOW_HELP = ("Tracker: detections above this (and below --track-det-thresh) only extend tracks (official "
            "0.05).")
BUFFER_HELP = ("Tracker: how long a lost track is kept for re-identification, in frames at 30 fps (scaled to each "
               "video's rate), >= 1 (official 60 = 2 s).")

INFER_PATHS = {
    "inputs": "inputs", "model": "model", "checkpoint": "checkpoint", "body_models": "body_models",
    "output": "output", "gender": "gender", "overwrite": "overwrite", "address": "address",
    "chunk_frames": "frames_per_chunk", "images_per_unit": "images_per_unit", "ray": "use_ray",
    "center_thresh": "settings.center_thresh", "nms_thresh": "settings.nms_thresh",
    "relative_scale_thresh": "settings.relative_scale_thresh", "overlap_ratio": "settings.overlap_ratio",
    "crowd": "settings.crowd", "bev_variant": "settings.bev_variant", "device": "settings.device",
    "precision": "settings.precision", "batch_size": "settings.batch_size", "save_verts": "settings.save_verts",
    "root_align": "settings.root_align", "actors": "resources.actors", "gpus_per_actor": "resources.gpus_per_actor",
    "cpus_per_actor": "resources.cpus_per_actor",
}
TRACK_PATHS = {"smooth_coeff": "smoothing.smooth_coeff", "track_det_thresh": "tracker.det_thresh",
               "track_low_thresh": "tracker.low_thresh", "track_buffer": "tracker.track_buffer"}


@app.command()
def infer(
    ctx: typer.Context,
    inputs: Annotated[list[str] | None, typer.Argument(
        help="Images, folders / s3:// prefixes, globs, manifests (.txt/.csv/.parquet lists) or videos.")] = None,
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "auto",
    checkpoint: Annotated[str, typer.Option(
        help="Official ROMP.pkl / BEV.pth / BEV_ft_agora.pth, or a meshfleet checkpoint (which records its "
             "model, backbone and input size); path or s3:// URI.")] = "~/.romp/ROMP.pkl",
    body_models: Annotated[str, typer.Option(
        "--body-models", help="Folder (or s3:// prefix) with SMPL_NEUTRAL.pkl, J_regressor_extra.npy, "
                              "J_regressor_h36m.npy (+ smpl_kid_template.npy, smil_web.pkl for BEV); or `open`: "
                              "the open body model meshfleet ships (for checkpoints trained on it).")] = "~/.romp",
    output: Annotated[str, typer.Option(help="Output folder or s3:// prefix of the Parquet dataset.")] = "results",
    center_thresh: Annotated[float | None, typer.Option(
        help=f"Body-center confidence threshold in [0, 1]. Default: ROMP {_ROMP.center}; BEV {_BEV.center}, "
             f"or {_BEV_CROWD.center} with --crowd (BEV_ft_agora: 0.25 / 0.12). An explicit value always wins."
    )] = None,
    nms_thresh: Annotated[float | None, typer.Option(
        help=f"BEV: duplicate suppression by 2D projection, in px per 640 px of image, >= 0. Default "
             f"{_BEV.nms}.")] = None,
    relative_scale_thresh: Annotated[float | None, typer.Option(
        help=f"BEV: outlier removal, relative distance to the others, >= 0. Default {_BEV.relative_scale}.")
    ] = None,
    overlap_ratio: Annotated[float | None, typer.Option(
        help=f"BEV crowd mode: overlap of the sliding windows on long images, in [0, 1). Default "
             f"{_BEV_CROWD.overlap} (BEV_ft_agora: 0.46).")] = None,
    crowd: Annotated[bool, typer.Option(
        "--crowd/--no-crowd", help="BEV: crowd defaults and sliding windows for images with w/h >= 2. "
                                   "On by default, as the official bev tool (eval: off).")] = True,
    bev_variant: Annotated[str, typer.Option(
        help=BEV_VARIANT_HELP)] = "auto",
    device: Annotated[str, typer.Option(
        help="auto, cpu, cuda or cuda:N (inside each actor); cuda is checked here unless on a cluster.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, or bf16 / fp16 on CUDA.")] = "fp32",
    batch_size: Annotated[int | None, typer.Option(
        help="Network views per forward. Default: 16 on CUDA, 1 on CPU.")] = None,
    save_verts: Annotated[bool, typer.Option(
        "--save-verts", help="Also store the mesh vertices per person (6890 for SMPL, 13718 for the open "
                             "model).")] = False,
    root_align: Annotated[bool, typer.Option(
        "--root-align", help="ROMP: centre joints on the hip midpoint (official --root_align).")] = False,
    gender: Annotated[str, typer.Option(help="SMPL model: neutral, male or female.")] = "neutral",
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Start over: delete meshfleet's own files in --output (never other files). "
                            "Without it, a rerun resumes and adds new inputs.")] = False,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster to attach to (ray://head:10001, head:6379 or auto). Default: embedded local Ray.")] = None,
    actors: Annotated[int | None, typer.Option(
        help="Inference actors (model replicas). Default: one per GPU, or 1 without GPUs.")] = None,
    gpus_per_actor: Annotated[float, typer.Option(help="GPUs per actor (only when the cluster has GPUs).")] = 1.0,
    cpus_per_actor: Annotated[float, typer.Option(help="CPUs reserved per inference actor.")] = 1.0,
    chunk_frames: Annotated[int, typer.Option(help="Video frames per work unit (one results file each).")] = 128,
    images_per_unit: Annotated[int, typer.Option(help="Images per work unit (one results file each).")] = 32,
    ray: Annotated[bool | None, typer.Option(
        "--ray/--no-ray", help="--no-ray runs the same stages in this process. Default: Ray, except on a small "
                               "machine without a GPU and without --address (it says so).")] = None,
    track: Annotated[bool, typer.Option(
        "--track/--no-track", help="After inference, track people through every video and smooth them.")] = False,
    smooth_coeff: Annotated[float, typer.Option(help=SMOOTH_HELP)] = 3.0,
    track_det_thresh: Annotated[float, typer.Option(help=DET_HELP)] = 0.12,
    track_low_thresh: Annotated[float, typer.Option(help=LOW_HELP)] = 0.05,
    track_buffer: Annotated[int, typer.Option(help=BUFFER_HELP)] = 60,
    spec: Annotated[Path | None, typer.Option(help=SPEC_HELP)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_HELP)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
) -> None:
    """Run ROMP or BEV over images and videos and write one Parquet row per detected person.

    Rerunning the same command over the same --output resumes: committed units are skipped.
    """
    setup_logging(verbose)
    values = dict(locals())
    values["inputs"] = list(inputs or [])
    given = explicit_params(ctx)
    track_given = given & TRACK_PATHS.keys()
    flags = flags_tree(values, INFER_PATHS)
    flags["track"] = flags_tree(values, TRACK_PATHS) if track else None
    explicit = flags_tree(values, INFER_PATHS, given)
    if "track" in given or track_given:
        explicit["track"] = flags_tree(values, TRACK_PATHS, track_given) if track or track_given else None
    cfg: InferConfig = resolve("infer", flags, explicit, spec)
    if dry_run:
        print_spec("infer", cfg)
        return
    try:
        cfg.validate()
    except (ConfigError, ValueError) as err:
        fail(err, 2)
    raise typer.Exit(run_infer_and_report(cfg))


@app.command("track", cls=aliased(det_thresh="--track-det-thresh", low_thresh="--track-low-thresh"))
def track_command(
    ctx: typer.Context,
    results: Annotated[str | None, typer.Argument(help="Results dataset (folder or s3:// prefix) to re-track.")] = None,
    output: Annotated[str | None, typer.Option(help="New dataset with track_id and the *_smoothed columns.")] = None,
    smooth_coeff: Annotated[float, typer.Option(help=SMOOTH_HELP)] = 3.0,
    track_det_thresh: Annotated[float, typer.Option(help=DET_HELP)] = 0.12,
    track_low_thresh: Annotated[float, typer.Option(help=LOW_HELP)] = 0.05,
    track_buffer: Annotated[int, typer.Option(help=BUFFER_HELP)] = 60,
    fps: Annotated[float, typer.Option(help="Frame rate assumed for videos whose rows have no timestamps.")] = 30.0,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace meshfleet's files in --output (other files are left alone).")] = False,
    spec: Annotated[Path | None, typer.Option(help=SPEC_HELP)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_HELP)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
) -> None:
    """Track people through the videos of an existing results dataset, without re-running the network.

    The tracker options are those of infer --track (--det-thresh / --low-thresh are old names).
    """
    setup_logging(verbose)
    values = dict(locals())
    paths = {"results": "results", "output": "output", "overwrite": "overwrite", "fps": "fps",
             **{k: f"settings.{v}" for k, v in TRACK_PATHS.items()}}
    if spec is None and (results is None or output is None):
        fail("give RESULTS and --output (or --spec FILE)", 2)
    job = job_from_options(ctx, "track", values, paths, spec)
    try:
        check_tracking(job.settings)
    except ValueError as err:
        fail(err, 2)
    if dry_run:
        print_spec("track", job)
        return
    run_job("track", job)


@app.command(cls=aliased(tracking_uri="--mlflow-uri"))
def leaderboard(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option(help="Folder for leaderboard.md and a self-contained index.html.")
                      ] = None,
    mlflow_uri: Annotated[str | None, typer.Option(help=MLFLOW_URI_HELP + " Read only: never created.")] = None,
    experiment: Annotated[list[str] | None, typer.Option(help="MLflow experiments to read (repeatable).")] = None,
    registry: Annotated[Path | None, typer.Option(help="Reported-results YAML (default: the bundled one).")] = None,
    run_url: Annotated[str | None, typer.Option(
        help="Link template for runs, e.g. http://mlflow:5000/#/experiments/1/runs/{run_id}.")] = None,
    spec: Annotated[Path | None, typer.Option(help=SPEC_HELP)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_HELP)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
) -> None:
    """Tables per benchmark / split / track / protocol / evaluator version from MLflow runs and published results.

    No finished evaluation run in the store and experiments is a warning naming them, exit 2.
    (--tracking-uri is the old name of --mlflow-uri.)
    """
    setup_logging(verbose)
    if spec is None and output is None:
        fail("give --output DIR (or --spec FILE)", 2)
    values = {"output": str(output) if output else None, "mlflow_uri": mlflow_uri,
              "experiment": list(experiment) if experiment else None,
              "registry": str(registry) if registry else None, "run_url": run_url}
    paths = {"output": "output", "mlflow_uri": "tracking_uri", "experiment": "experiments", "registry": "registry",
             "run_url": "run_url"}
    job = job_from_options(ctx, "leaderboard", values, paths, spec)
    if dry_run:
        print_spec("leaderboard", job)
        return
    raise typer.Exit(run_job("leaderboard", job))


@app.command("run")
def run_command(
    spec: Annotated[Path, typer.Argument(help="Job spec (YAML/TOML) of any kind.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_HELP)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
) -> None:
    """Run a job spec here (embedded Ray), or inside a Ray job when submitted."""
    setup_logging(verbose)
    kind, config = load_any_spec(spec)
    if dry_run:
        print_spec(kind, config)
        return
    raise typer.Exit(run_here(kind, config))


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # python -m jobs.cli
    app()
