"""``meshfleet train``: the command line of the training job (jobs/train.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from jobs.cli_base import DRY_HELP, MLFLOW_URI_HELP, SPEC_HELP, USAGE_ERROR, VERBOSE_HELP
from jobs.cli_common import explicit_params, fail, input_error_code, print_spec, resolve, set_path, setup_logging

DATA_HELP = ("Annotation dataset (the folder `meshfleet synth` or `meshfleet pseudo-label` wrote), optionally "
             "with a sampling weight: DIR[:W]. Repeat to mix sets (each fills W / sum(W) of an epoch).")


def _sources(values: list[str]) -> list[dict[str, Any]]:
    from pipelines.train_data import TrainDataError, parse_data_source

    out = []
    for text in values:
        try:
            source = parse_data_source(text)
        except TrainDataError as err:
            fail(err, USAGE_ERROR)
        out.append({"uri": source.uri, "weight": source.weight})
    return out


def train(
    ctx: typer.Context,
    data: Annotated[list[str] | None, typer.Option(help=DATA_HELP)] = None,
    output: Annotated[str | None, typer.Option(help="Output folder or s3:// prefix (checkpoints, metrics, "
                                                    "model.pth). Rerunning with it resumes.")] = None,
    model: Annotated[str, typer.Option(help="romp or bev.")] = "romp",
    backbone: Annotated[str, typer.Option(help="hrnet32, resnet50 (ROMP) or small (the compact CPU backbone).")
                        ] = "small",
    input_size: Annotated[int, typer.Option(help="Square network input, px (a multiple of 32).")] = 256,
    workers: Annotated[int, typer.Option(help="Ray Train workers (data-parallel).")] = 1,
    gpus_per_worker: Annotated[float, typer.Option(help="GPUs per worker; 0 trains on CPU.")] = 0.0,
    cpus_per_worker: Annotated[float, typer.Option(help="CPUs Ray reserves per worker.")] = 1.0,
    threads: Annotated[int | None, typer.Option(help="torch threads per worker. Default: cores / workers.")
                       ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per optimiser step, over all workers.")] = 8,
    accumulate: Annotated[int, typer.Option(help="Micro-batches per step (gradient accumulation).")] = 1,
    lr: Annotated[float, typer.Option(help="Peak learning rate (Adam).")] = 1e-3,
    steps: Annotated[int | None, typer.Option(help="Optimiser steps (or --epochs).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs over the mix (or --steps).")] = None,
    warmup_steps: Annotated[int, typer.Option(help="Linear warm-up steps; -1: 5 % of the run, at most 500.")] = -1,
    schedule: Annotated[str, typer.Option(help="cosine, step (x0.1 at 60 % and 85 %) or constant.")] = "cosine",
    val: Annotated[str | None, typer.Option(help="Held-out synth set with an agora/ layout, scored while "
                                                 "training (F1, MPJPE).")] = None,
    val_every: Annotated[int, typer.Option(help="Validate every N steps; 0: at every checkpoint.")] = 0,
    init: Annotated[str | None, typer.Option(help="meshfleet checkpoint to start from (a teacher, same model).")
                    ] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 500,
    keep_checkpoints: Annotated[int, typer.Option(help="Checkpoints kept.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the data order, augmentation and initial weights.")] = 0,
    precision: Annotated[str, typer.Option(help="auto (bf16 autocast on GPU), fp32 or bf16.")] = "auto",
    max_failures: Annotated[int, typer.Option(help="Worker failures to recover from.")] = 3,
    body_models: Annotated[str, typer.Option("--body-models", help="'open' or a folder of SMPL-format files: "
                                             "the set the labels are on.")] = "open",
    log_every: Annotated[int, typer.Option(help="Steps between logged metrics.")] = 10,
    mlflow_uri: Annotated[str | None, typer.Option(help=MLFLOW_URI_HELP)] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log the run to MLflow.")] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start over: delete what --output holds.")] = False,
    address: Annotated[str | None, typer.Option(help="Ray cluster to attach to. Default: embedded local Ray.")] = None,
    spec: Annotated[Path | None, typer.Option(help=SPEC_HELP)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_HELP)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
) -> None:
    """Train ROMP or BEV on annotation datasets with Ray Train; the last line names OUTPUT/model.pth.

    Rerunning the same command resumes from the latest checkpoint ("resumed from step K").
    """
    setup_logging(verbose)
    if spec is None and (output is None or not data):
        fail("give --data and --output (or --spec FILE)", USAGE_ERROR)
    values: dict[str, Any] = {
        "data": _sources(data or []), "output": output, "model": model, "backbone": backbone,
        "input_size": input_size, "workers": workers, "gpus_per_worker": gpus_per_worker,
        "cpus_per_worker": cpus_per_worker, "threads": threads, "batch_size": batch_size, "accumulate": accumulate,
        "lr": lr,
        "steps": steps, "epochs": epochs, "warmup_steps": warmup_steps, "schedule": schedule, "val": val,
        "val_every": val_every, "init": init, "checkpoint_every": checkpoint_every,
        "keep_checkpoints": keep_checkpoints, "seed": seed, "precision": precision, "max_failures": max_failures,
        "body_models": body_models, "log_every": log_every, "mlflow_uri": mlflow_uri, "use_mlflow": mlflow,
        "overwrite": overwrite, "address": address,
    }
    given = explicit_params(ctx)
    option_of = {"use_mlflow": "mlflow"}
    flags: dict = {}
    explicit: dict = {}
    for path, value in values.items():
        if value is None or (path == "data" and not value):
            continue
        set_path(flags, path, value)
        if option_of.get(path, path) in given:
            set_path(explicit, path, value)
    config = resolve("train", flags, explicit, spec)
    if dry_run:
        print_spec("train", config)
        return
    raise typer.Exit(run_train_and_report(config))


def run_train_and_report(cfg: Any) -> int:
    from tqdm import tqdm

    from core.checkpoints import CheckpointError
    from core.smpl_pickle import BodyModelFileError
    from jobs.config import ConfigError
    from jobs.train import TrainSummary, run_train
    from pipelines.jobstate import JobMismatchError
    from pipelines.readers import InputError

    try:
        cfg.validate()
    except (ConfigError, CheckpointError, InputError, ValueError) as err:
        fail(err, USAGE_ERROR)
    bar = tqdm(unit="step", dynamic_ncols=True, file=sys.stderr, disable=not sys.stderr.isatty())

    def progress(summary: TrainSummary) -> None:
        bar.total = summary.total_steps
        bar.n = summary.step
        loss = summary.last.get("loss/total")
        bar.set_postfix({"loss": f"{loss:.4g}" if loss is not None else "-",
                         "img/s": f"{summary.last.get('images_per_s', 0.0):.2f}",
                         **{k.removeprefix("val/"): f"{v:.3f}" for k, v in summary.last.items()
                            if k in ("val/f1", "val/mpjpe")}})

    def resumed(step: int) -> None:
        typer.echo(f"resumed from step {step}")

    try:
        summary = run_train(cfg, progress, resumed)
    except (BodyModelFileError, JobMismatchError, ConfigError, CheckpointError, InputError, ValueError,
            OSError) as err:
        bar.close()
        fail(err, input_error_code(err))
    bar.close()
    typer.echo(summary.line())
    typer.echo(summary.model)
    return 0
