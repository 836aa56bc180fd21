"""Pieces every CLI command shares: output, logging, spec resolution, running a resolved job."""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from jobs.cli_base import USAGE_ERROR, one_line
from jobs.specs import SpecError, build, dump_spec, load_spec, merge, read_spec_file, to_dict

console = Console(stderr=True, soft_wrap=True)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)  # also when already configured
    if not verbose:  # Ray Data logs every execution plan at INFO
        logging.getLogger("ray").setLevel(logging.WARNING)
        # MLflow configures its own logger at import (INFO: "Creating initial MLflow database tables")
        # and draws a progress bar per artifact download; both read these variables at import time
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def fail(err: Exception | str, code: int = 1) -> NoReturn:
    """One line on stderr (the traceback too with ``-v``) and exit ``code``: 2 for a user error
    (fix an input or a flag), 1 when the job itself failed."""
    if isinstance(err, BaseException) and logging.getLogger().isEnabledFor(logging.INFO):
        console.print("".join(traceback.format_exception(err)), markup=False, highlight=False)
    console.print(f"[red]error:[/red] {escape(one_line(err))}", highlight=False)
    raise typer.Exit(code)


def input_error_code(err: Exception) -> int:
    """2 when ``err`` says an input is wrong (a checkpoint, body-model, benchmark, ground-truth,
    registry or motion file, an input list, a setting, a path that does not exist, an output holding
    another job), 1 otherwise (the job itself failed)."""
    from core.checkpoints import CheckpointError
    from core.formats.motion import MotionFileError
    from core.smpl_pickle import BodyModelFileError, UnsafePickleError
    from eval.common import EvalError
    from eval.leaderboard import RegistryError
    from eval.mot_format import MotFormatError
    from jobs.config import ConfigError
    from jobs.track import TrackingError
    from pipelines.jobstate import JobMismatchError, OutputOverlapError
    from pipelines.readers import InputError
    from pipelines.results import ResultsSchemaError

    inputs = (CheckpointError, BodyModelFileError, UnsafePickleError, InputError, ConfigError, JobMismatchError,
              OutputOverlapError, ResultsSchemaError,
              EvalError, RegistryError, MotFormatError, TrackingError, SpecError, FileNotFoundError,
              NotADirectoryError, MotionFileError)
    return USAGE_ERROR if isinstance(err, inputs) else 1


def explicit_params(ctx: typer.Context) -> set[str]:
    """Names of the options given on the command line (not defaults)."""
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            given.add(name)
    return given


def set_path(tree: dict, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def flags_tree(values: dict[str, Any], paths: dict[str, str], only: set[str] | None = None) -> dict:
    """Nested config data from CLI values: ``paths`` maps option names to dotted config keys."""
    tree: dict = {}
    for name, path in paths.items():
        if only is None or name in only:
            set_path(tree, path, values[name])
    return tree


def resolve(kind: str, flags: dict, explicit: dict, spec: Path | None) -> Any:
    """Defaults < spec file < options given on the command line; strict conversion."""
    data = flags if spec is None else merge(_section(spec, kind), explicit)
    try:
        return build(kind, data)
    except SpecError as err:
        fail(err, 2)


def job_from_options(ctx: typer.Context, kind: str, values: dict[str, Any], paths: dict[str, str],
                     spec: Path | None) -> Any:
    """The typed job of a command whose options map one to one onto top-level spec keys (``paths``):
    unset (None) options are left to the spec file or the defaults."""
    flags = {k: v for k, v in flags_tree(values, paths).items() if v is not None}
    explicit = {k: v for k, v in flags_tree(values, paths, explicit_params(ctx)).items() if v is not None}
    return resolve(kind, flags, explicit, spec)


def run_here(kind: str, config: Any) -> int:
    """Run a spec in this process; infer and track specs are first checked (exit 2 names the bad key;
    eval checks its inputs itself, before Ray starts)."""
    from jobs.config import check_tracking

    try:
        if kind == "infer":
            config.validate()
        if kind == "track":
            check_tracking(config.settings)
    except ValueError as err:
        fail(err, USAGE_ERROR)
    return run_job(kind, config)


def _section(spec: Path, kind: str) -> dict:
    try:
        data = read_spec_file(spec)
    except SpecError as err:
        fail(err, 2)
    if data.get("kind") != kind:
        fail(f"{spec}: kind is {data.get('kind')!r}, this command runs '{kind}' specs", 2)
    unknown = sorted(set(data) - {"kind", kind})
    if unknown:
        fail(f"{spec}: {unknown[0]}: unknown key", 2)
    section = data.get(kind) or {}
    if not isinstance(section, dict):
        fail(f"{spec}: {kind}: expected a mapping", 2)
    return section


def print_spec(kind: str, config: Any) -> None:
    """``--dry-run``: the fully resolved spec, as YAML, on stdout."""
    typer.echo(dump_spec(kind, config), nl=False)


def run_job(kind: str, config: Any) -> int:
    """Run a resolved job in this process (embedded Ray, or RAY_ADDRESS inside a Ray job)."""
    if kind == "infer":
        return run_infer_and_report(config)
    if kind == "track":
        from jobs.track import TrackingError, track_dataset
        from pipelines.jobstate import JobMismatchError, OutputOverlapError

        try:
            summary = track_dataset(config.results, config.output, config.settings, config.overwrite, config.fps)
        except (TrackingError, ValueError, FileNotFoundError, JobMismatchError, OutputOverlapError) as err:
            fail(err, input_error_code(err))
        typer.echo(summary.line() + f"\nresults: {config.output}")
        return 0
    if kind == "leaderboard":
        from eval.leaderboard import RegistryError
        from eval.leaderboard_io import StoreError
        from eval.leaderboard_job import run_leaderboard
        from pipelines.jobstate import JobMismatchError

        try:
            tables = run_leaderboard(config)
        except StoreError as err:
            console.print(f"[yellow]warning:[/yellow] {escape(one_line(err))}", highlight=False)
            return USAGE_ERROR
        except (RegistryError, OSError, JobMismatchError) as err:
            fail(err, input_error_code(err))
        runs = sum(1 for t in tables for r in t.rows if r.kind == "run")
        typer.echo(f"{len(tables)} tables, {runs} runs -> {config.output / 'leaderboard.md'}, "
                   f"{config.output / 'index.html'}")
        return 0
    if kind == "eval":
        return run_eval_and_report(config)
    if kind == "eval-tracking":
        return run_tracking_eval_and_report(config)
    if kind == "pseudo-label":
        from jobs.cli_pseudo import run_pseudo_and_report

        return run_pseudo_and_report(config)
    if kind == "synth":
        from jobs.cli_synth import run_synth_and_report

        return run_synth_and_report(config)
    if kind == "train":
        from jobs.cli_train import run_train_and_report

        return run_train_and_report(config)
    if kind == "export-mot":
        from eval.tracking_job import export_mot
        from pipelines.jobstate import JobMismatchError

        try:
            written = export_mot(config)
        except (FileNotFoundError, ValueError, OSError, JobMismatchError) as err:
            fail(err, input_error_code(err))
        typer.echo(f"{len(written)} sequences written to {config.output}")
        return 0
    if kind == "export":
        from jobs.cli_export import run_export_and_report

        return run_export_and_report(config)
    if kind == "render":
        from jobs.cli_render import run_render_and_report

        return run_render_and_report(config)
    raise ValueError(f"unknown job kind {kind!r}")


def run_infer_and_report(cfg: Any) -> int:
    """Progress, summary, failed inputs, interrupts and exit code: :mod:`jobs.infer_report`."""
    from jobs.infer_report import run_infer_and_report as run_and_report

    return run_and_report(cfg)


def run_eval_and_report(spec: Any) -> int:
    """Check the inputs (and the inference config), then start Ray, (infer and) evaluate, print the JSON."""
    import json

    from core.smpl_pickle import UnsafePickleError
    from eval.job import run_eval
    from eval.registry import check_inputs
    from jobs.infer import ensure_ray, run_infer

    job = spec.job()
    try:
        check_inputs(job.config, infer_first=job.infer is not None)
        if job.infer is not None:
            job.infer.validate()
    except ValueError as err:
        fail(err, USAGE_ERROR)
    try:
        started = ensure_ray(spec.address or getattr(job.infer, "address", None))
        try:
            payload, _ = run_eval(job, run_infer)
        finally:
            if started:
                import ray

                ray.shutdown()
    except (UnsafePickleError, ValueError, FileNotFoundError) as err:
        fail(err, input_error_code(err))
    typer.echo(json.dumps(payload, indent=2, default=float))
    return 0


def run_tracking_eval_and_report(job: Any) -> int:
    from eval.mot_format import MotFormatError
    from eval.tracking_job import run_tracking_eval
    from pipelines.results import ResultsSchemaError

    try:
        _, report = run_tracking_eval(job)
    except (ResultsSchemaError, MotFormatError, FileNotFoundError, ValueError) as err:
        fail(err, input_error_code(err))
    o = report.overall
    typer.echo(f"HOTA {o['HOTA']:.3f}  DetA {o['DetA']:.3f}  AssA {o['AssA']:.3f}  MOTA {o['mota']:.3f}  "
               f"IDF1 {o['idf1']:.3f}  IDsw {int(o['num_switches'])}  FP {int(o['num_false_positives'])}  "
               f"FN {int(o['num_misses'])}")
    return 0


def load_any_spec(path: Path) -> tuple[str, Any]:
    try:
        return load_spec(path)
    except SpecError as err:
        fail(err, 2)


__all__ = ["console", "setup_logging", "fail", "explicit_params", "flags_tree", "resolve", "print_spec", "run_job",
           "load_any_spec", "to_dict", "job_from_options", "run_here"]
