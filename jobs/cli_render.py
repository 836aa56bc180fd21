"""``meshfleet render``: the command line of the render job (jobs/render.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from jobs.cli_base import DRY_HELP, MLFLOW_URI_HELP, SPEC_HELP, USAGE_ERROR, VERBOSE_HELP
from jobs.cli_common import fail, input_error_code, job_from_options, print_spec, setup_logging

RESULTS_HELP = "Results dataset (folder or s3:// prefix), e.g. the output of `meshfleet infer`."
INPUTS_HELP = ("Media root: relative sources are read below it, absolute ones at their path below the sources' "
               "common folder. Default: each source as stored.")
BODY_HELP = ("'open' or a folder / s3:// prefix with the SMPL files: the mesh faces, and the bodies of results "
             "saved without --save-verts (or tracked: smoothed parameters are meshed).")
WARNINGS_SHOWN = 5


def render(
    ctx: typer.Context,
    results: Annotated[str | None, typer.Argument(help=RESULTS_HELP)] = None,
    output: Annotated[str | None, typer.Option(help="Output folder or s3:// prefix (mirrors the sources).")] = None,
    inputs: Annotated[str | None, typer.Option(help=INPUTS_HELP)] = None,
    body_models: Annotated[str | None, typer.Option("--body-models", help=BODY_HELP)] = None,
    views: Annotated[str | None, typer.Option(
        help="Pictures side by side: any of overlay,side,top, in the order given. Default: all three.")] = None,
    alpha: Annotated[float | None, typer.Option(
        help="Mesh opacity on the overlay, in (0, 1]; below 1 the frame shows through. Default: 1.")] = None,
    joints: Annotated[bool | None, typer.Option("--joints/--no-joints",
                                                help="Draw the 2D joints (pj2d_org). Default: on.")] = None,
    format: Annotated[str | None, typer.Option("--format", help="Image output: jpg or png. Default: jpg.")] = None,
    video_format: Annotated[str | None, typer.Option(help="Video output: mp4 (H.264). Default: mp4.")] = None,
    device: Annotated[str | None, typer.Option(
        help="auto (CUDA when present), cpu or cuda. Default: auto.")] = None,
    workers: Annotated[int | None, typer.Option(help="Renderer workers. Default: one per GPU, else 1.")] = None,
    overwrite: Annotated[bool | None, typer.Option(
        "--overwrite", help="Start over: delete what --output holds.")] = None,
    ray: Annotated[bool | None, typer.Option("--ray/--no-ray", help="--no-ray draws in this process.")] = None,
    mlflow_run: Annotated[str | None, typer.Option(
        help="MLflow run id that gets a thumbnail of the first picture (shown on the leaderboard).")] = None,
    mlflow_uri: Annotated[str | None, typer.Option(help=MLFLOW_URI_HELP)] = None,
    spec: Annotated[Path | None, typer.Option(help=SPEC_HELP)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_HELP)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
) -> None:
    """Draw the results on their images and videos: meshes over the frames (per-track colours), a side
    and a bird's-eye view, the 2D joints; one JPEG / PNG per image, one H.264 MP4 per video.

    Rerunning resumes (files already drawn are skipped).
    """
    setup_logging(verbose)
    if spec is None and (results is None or output is None):
        fail("give RESULTS and --output (or --spec FILE)", USAGE_ERROR)
    values: dict[str, Any] = {
        "results": results, "output": output, "inputs": inputs, "body_models": body_models,
        "views": _views(views), "alpha": alpha, "joints": joints, "format": format, "video_format": video_format,
        "device": device, "workers": workers, "overwrite": overwrite, "ray": ray, "mlflow_run": mlflow_run,
        "mlflow_uri": mlflow_uri,
    }
    config = job_from_options(ctx, "render", values, {name: name for name in values}, spec)
    if dry_run:
        print_spec("render", config)
        return
    raise typer.Exit(run_render_and_report(config))


def _views(text: str | None) -> list[str] | None:
    return None if text is None else [v.strip() for v in text.split(",") if v.strip()]


def run_render_and_report(cfg: Any) -> int:
    """Run a ``render`` job here: progress on stderr, user errors exit 2 with one line."""
    from jobs.cli_export import ProgressReport
    from jobs.render import RenderSummary, render_dataset
    from pipelines.jobstate import JobMismatchError
    from pipelines.render.plan import RenderInputError

    report = ProgressReport("file", "render")

    def progress(summary: RenderSummary, total: int) -> None:
        report(summary.written, total)

    try:
        summary = render_dataset(cfg, progress)
    except (RenderInputError, JobMismatchError) as err:
        fail(err, USAGE_ERROR)
    except (ValueError, OSError) as err:
        fail(err, input_error_code(err))
    finally:
        report.close()
    for source, reason in summary.failed[:WARNINGS_SHOWN]:
        typer.echo(f"warning: {source}: {reason}" if not reason.startswith(source) else f"warning: {reason}",
                   err=True)
    if len(summary.failed) > WARNINGS_SHOWN:
        typer.echo(f"warning: ... and {len(summary.failed) - WARNINGS_SHOWN} more", err=True)
    typer.echo(f"{summary.line()} -> {cfg.output}")
    return 0
