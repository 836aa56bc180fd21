"""``meshfleet eval``: tracking metrics, and the benchmark evaluators (AGORA, RH, CMU Panoptic, 3DPW)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs.cli_common import (
    explicit_params,
    fail,
    flags_tree,
    job_from_options,
    print_spec,
    resolve,
    run_eval_and_report,
    run_tracking_eval_and_report,
    set_path,
)

eval_app = typer.Typer(help="Evaluate results against benchmark ground truth.", no_args_is_help=True)
BENCHMARKS = ("agora", "relative-human", "cmu-panoptic", "3dpw")


TRACKING_PATHS = {"results": "results", "gt": "gt", "output": "output", "iou": "iou", "split": "split",
                  "mlflow_uri": "mlflow_uri", "mlflow": "use_mlflow"}


@eval_app.command("tracking")
def eval_tracking(
    ctx: typer.Context,
    results: Annotated[str | None, typer.Argument(help="Tracked results dataset (folder or s3:// prefix).")] = None,
    gt: Annotated[str | None, typer.Option(
        help="MOTChallenge ground truth: <seq>/gt/gt.txt or <seq>.txt per video.")] = None,
    output: Annotated[str | None, typer.Option(help="Write the metrics JSON here.")] = None,
    iou: Annotated[float, typer.Option(help="IoU needed for a match in CLEAR-MOT / ID metrics.")] = 0.5,
    mlflow_uri: Annotated[str | None, typer.Option(
        help="MLflow tracking URI. Default: $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db.")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log a run to MLflow.")] = True,
    split: Annotated[str, typer.Option(help="Dataset/split name recorded with the run (leaderboard key).")] = "custom",
    spec: Annotated[Path | None, typer.Option(help="Spec file (kind eval-tracking); options override it.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the fully resolved spec and stop.")] = False,
) -> None:
    """MOTA, IDF1, IDP, IDR, ID switches, FP, FN (motmetrics) and HOTA, DetA, AssA (TrackEval's definition)."""
    values = dict(locals())
    if spec is None and (results is None or gt is None):
        fail("give RESULTS and --gt (or --spec FILE)", 2)
    job = job_from_options(ctx, "eval-tracking", values, TRACKING_PATHS, spec)
    if dry_run:
        print_spec("eval-tracking", job)
        return
    raise typer.Exit(run_tracking_eval_and_report(job))


EVAL_PATHS = {
    "predictions": "config.predictions", "data": "config.data", "annots": "config.annots",
    "protocol": "config.protocol", "body_models": "config.body_models", "split": "config.split",
    "output_json": "output_json", "mlflow_uri": "mlflow_uri", "mlflow": "use_mlflow",
}
INFER_PATHS = {"checkpoint": "checkpoint", "model": "model", "body_models": "body_models", "infer_output": "output",
               "address": "address", "center_thresh": "settings.center_thresh", "nms_thresh": "settings.nms_thresh",
               "relative_scale_thresh": "settings.relative_scale_thresh", "crowd": "settings.crowd",
               "device": "settings.device"}


def _benchmark_command(benchmark: str) -> None:
    """Register ``meshfleet eval <benchmark>`` with the options every evaluator shares."""

    def command(
        ctx: typer.Context,
        predictions: Annotated[str | None, typer.Option(
            help="meshfleet results (folder or s3:// prefix) or the benchmark's official prediction "
                 "format; omit with --checkpoint to run inference first.")] = None,
        data: Annotated[str | None, typer.Option(help="Benchmark folder as distributed.")] = None,
        annots: Annotated[str | None, typer.Option(help="Relative Human: the {split}_annots.npz file.")] = None,
        protocol: Annotated[str, typer.Option(help="official (as coded, quirks included) or fixed.")] = "official",
        output_json: Annotated[str | None, typer.Option(help="Write the flat metrics JSON here.")] = None,
        body_models: Annotated[str | None, typer.Option(
            "--body-models", help="SMPL files (AGORA / 3DPW ground truth; inference), or `open` (meshfleet's "
                                  "open body model).")] = None,
        split: Annotated[str | None, typer.Option(
            help="3dpw: sequenceFiles/<train|validation|test> to read (default test); "
                 "others: the split name recorded with the run.")] = None,
        checkpoint: Annotated[str | None, typer.Option(help="Run inference with this checkpoint first.")] = None,
        model: Annotated[str, typer.Option(help="Model for --checkpoint: romp or bev.")] = "bev",
        images: Annotated[list[str] | None, typer.Option(
            help="Inputs for --checkpoint (default: the --data folder).")] = None,
        infer_output: Annotated[str | None, typer.Option(help="Where --checkpoint writes its results.")] = None,
        center_thresh: Annotated[float | None, typer.Option(help="Inference threshold (see infer).")] = None,
        nms_thresh: Annotated[float | None, typer.Option(help="Inference NMS (see infer).")] = None,
        relative_scale_thresh: Annotated[float | None, typer.Option(help="See infer.")] = None,
        crowd: Annotated[bool, typer.Option("--crowd/--no-crowd", help="See infer.")] = False,
        device: Annotated[str, typer.Option(help="Inference device.")] = "auto",
        mlflow_uri: Annotated[str | None, typer.Option(
            help="MLflow tracking URI. Default: $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db.")] = None,
        mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log a run to MLflow.")] = True,
        address: Annotated[str | None, typer.Option(help="Ray cluster (default: embedded local Ray).")] = None,
        spec: Annotated[Path | None, typer.Option(help="Eval spec file; command-line options override it.")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the fully resolved spec and stop.")] = False,
    ) -> None:
        values = dict(locals())
        given = explicit_params(ctx)
        flags = flags_tree(values, EVAL_PATHS)
        set_path(flags, "config.benchmark", benchmark)
        flags["config"] = {k: v for k, v in flags["config"].items() if v is not None}
        explicit = flags_tree(values, EVAL_PATHS, given)
        set_path(explicit, "config.benchmark", benchmark)
        if checkpoint:
            infer = flags_tree(values, INFER_PATHS)
            infer["inputs"] = list(images or ([data] if data else []))
            flags["infer"] = infer
            explicit["infer"] = {**flags_tree(values, INFER_PATHS, given), "inputs": infer["inputs"]}
            flags["config"].setdefault("predictions", infer_output or "")
        elif not predictions and spec is None:
            fail("give --predictions, or --checkpoint (with --body-models, --infer-output, --images) to infer first", 2)
        job = resolve("eval", flags, explicit, spec)
        if dry_run:
            print_spec("eval", job)
            return
        if job.infer is not None:
            job.infer.validate()
        raise typer.Exit(run_eval_and_report(job))

    command.__doc__ = f"Evaluate on {benchmark} with the official protocol (or --protocol fixed)."
    eval_app.command(benchmark)(command)


for _benchmark in BENCHMARKS:
    _benchmark_command(_benchmark)
