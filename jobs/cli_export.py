"""``meshfleet export``: results as MOTChallenge text, glTF 2.0 (.glb), BVH or SMPL npz files.

Two spellings of one command: ``meshfleet export FORMAT RESULTS --output URI`` (a subcommand per
format: ``mot``, ``gltf``, ``bvh``, ``npz``) and ``meshfleet export RESULTS --format FORMAT --output
URI``. The group routes any first argument that is not a format name (a results path, an option)
to the hidden ``by-format`` command; a results folder literally named like a format is given as
``./gltf``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from jobs.cli_base import DRY_HELP, SPEC_HELP, VERBOSE_HELP
from jobs.cli_common import explicit_params, fail, job_from_options, print_spec, resolve, run_job, setup_logging

FORMATS = ("gltf", "bvh", "npz")
BY_FORMAT = "by-format"
PLAIN_EVERY_S = 10.0  # progress lines off a terminal (logs, CI): one per this many seconds, and the last
RESULTS_HELP = "Results dataset (folder or s3:// prefix); tracked (`meshfleet track`) for video tracks."
OUTPUT_HELP = "Folder or s3:// prefix for one file per track (only those files are written)."
TRACK_HELP = "Only this track: its id (in every video) or an exported name such as walk.track3."
BODY_HELP = ("Folder (or s3:// prefix) with SMPL_<GENDER>.pkl, J_regressor_extra.npy, J_regressor_h36m.npy "
             "(+ smpl_kid_template.npy, smil_web.pkl for BEV results). Default: ~/.romp.")
GENDER_HELP = "SMPL model: neutral, male or female. Default: the one the results were made with."


class ExportGroup(TyperGroup):
    """Routes ``export RESULTS --format F`` (first argument not a format) to the hidden command."""

    # typer.Context narrows the Context of typer's vendored click, which the base class names
    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [BY_FORMAT, *args]
        return super().parse_args(ctx, args)


export_app = typer.Typer(
    cls=ExportGroup, no_args_is_help=True,
    help="Export results: `export FORMAT RESULTS --output URI` or `export RESULTS --format FORMAT --output URI`; "
         "FORMAT is mot, gltf (.glb), bvh or npz (SMPL, AMASS layout).")


@export_app.command("mot")
def export_mot(
    ctx: typer.Context,
    results: Annotated[str | None, typer.Argument(help="Tracked results dataset (folder or s3:// prefix).")] = None,
    output: Annotated[str | None, typer.Option(
        help="Folder or s3:// prefix for one MOTChallenge <sequence>.txt per video.")] = None,
    spec: Annotated[Path | None, typer.Option(help=SPEC_HELP)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_HELP)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
) -> None:
    """Write tracks as MOTChallenge text (boxes from the extents of pj2d_org), one file per video."""
    setup_logging(verbose)
    _mot(ctx, results, output, spec, dry_run)


def _mot(ctx: typer.Context, results: str | None, output: str | None, spec: Path | None, dry_run: bool) -> None:
    if spec is None and (results is None or output is None):
        fail("give RESULTS and --output (or --spec FILE)", 2)
    values = {"results": results, "output": output}
    paths = {"results": "results", "output": "output"}
    job = job_from_options(ctx, "export-mot", values, paths, spec)
    if dry_run:
        print_spec("export-mot", job)
        return
    raise typer.Exit(run_job("export-mot", job))


def _tracks(ctx: typer.Context, fmt: str | None, values: dict[str, Any], spec: Path | None, dry_run: bool) -> None:
    """gltf / bvh / npz: resolve the ``export`` job (defaults < spec < command line) and run it."""
    if spec is None and (values["results"] is None or values["output"] is None):
        fail("give RESULTS and --output (or --spec FILE)", 2)
    flags = {k: v for k, v in values.items() if v is not None}
    given = explicit_params(ctx)
    explicit = {k: v for k, v in flags.items() if k in given}
    if fmt is not None:  # the subcommand names the format: it always wins
        flags["format"] = explicit["format"] = fmt
    job = resolve("export", flags, explicit, spec)
    if dry_run:
        print_spec("export", job)
        return
    raise typer.Exit(run_job("export", job))


def _format_command(fmt: str, summary: str) -> None:
    def command(
        ctx: typer.Context,
        results: Annotated[str | None, typer.Argument(help=RESULTS_HELP)] = None,
        output: Annotated[str | None, typer.Option(help=OUTPUT_HELP)] = None,
        track: Annotated[str | None, typer.Option(help=TRACK_HELP)] = None,
        body_models: Annotated[str | None, typer.Option("--body-models", help=BODY_HELP)] = None,
        gender: Annotated[str | None, typer.Option(help=GENDER_HELP)] = None,
        spec: Annotated[Path | None, typer.Option(help=SPEC_HELP)] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_HELP)] = False,
        verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    ) -> None:
        setup_logging(verbose)
        values = {"results": results, "output": output, "track": track, "body_models": body_models, "gender": gender}
        _tracks(ctx, fmt, values, spec, dry_run)

    command.__doc__ = summary
    export_app.command(fmt)(command)


_format_command("gltf", "One glTF 2.0 binary (.glb) per track: skinned body, 24-joint skeleton, animation; "
                        "Y up, metres.")
_format_command("bvh", "One BVH per track: SMPL kinematic tree, ZXY Euler channels, root translation; metres.")
_format_command("npz", "One SMPL npz per track in the AMASS layout (poses, trans, betas, mocap_framerate, gender).")


@export_app.command(BY_FORMAT, hidden=True)
def export_by_format(
    ctx: typer.Context,
    results: Annotated[str | None, typer.Argument(help=RESULTS_HELP)] = None,
    format: Annotated[str | None, typer.Option("--format", help="mot, gltf, bvh or npz.")] = None,
    output: Annotated[str | None, typer.Option(help=OUTPUT_HELP)] = None,
    track: Annotated[str | None, typer.Option(help=TRACK_HELP)] = None,
    body_models: Annotated[str | None, typer.Option("--body-models", help=BODY_HELP)] = None,
    gender: Annotated[str | None, typer.Option(help=GENDER_HELP)] = None,
    spec: Annotated[Path | None, typer.Option(help=SPEC_HELP)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_HELP)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """``export RESULTS --format F``: the same as ``export F RESULTS``."""
    setup_logging(verbose)
    if format == "mot":
        extra = [name for name, value in (("--track", track), ("--body-models", body_models), ("--gender", gender))
                 if value is not None]
        if extra:
            fail(f"{extra[0]} does not apply to --format mot", 2)
        _mot(ctx, results, output, spec, dry_run)
        return
    if format is None and spec is None:
        fail("give --format mot|gltf|bvh|npz (or --spec FILE)", 2)
    if format is not None and format not in FORMATS:
        fail(f"--format must be mot, gltf, bvh or npz, not {format!r}", 2)
    values = {"results": results, "output": output, "track": track, "body_models": body_models, "gender": gender,
              "format": format}
    _tracks(ctx, None, values, spec, dry_run)


class ProgressReport:
    """Progress on stderr: a tqdm bar on a terminal; elsewhere a plain line every PLAIN_EVERY_S
    seconds and one at the end (logs keep whole lines)."""

    def __init__(self, unit: str, what: str):
        from tqdm import tqdm

        self.unit, self.what, self.last = unit, what, time.monotonic()
        self.bar = tqdm(unit=unit, dynamic_ncols=True, file=sys.stderr) if sys.stderr.isatty() else None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.total = total
            self.bar.update(done - self.bar.n)
        elif done == total or time.monotonic() - self.last >= PLAIN_EVERY_S:
            self.last = time.monotonic()
            typer.echo(f"{self.what}: {done}/{total} {self.unit}s", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_export_and_report(job: Any) -> int:
    """Run an ``export`` job here: user errors exit 2 with one line, other failures 1."""
    from pipelines.export import ExportError, export_tracks

    progress = ProgressReport("video/image file", f"export {job.format}")
    try:
        summary = export_tracks(job, progress)
    except ExportError as err:
        fail(err, 2)
    except (OSError, ValueError) as err:
        fail(err)
    finally:
        progress.close()
    typer.echo(f"{summary.line()} -> {job.output}")
    return 0
