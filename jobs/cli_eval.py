"""``meshfleet eval``: tracking metrics, and the benchmark evaluators (AGORA, RH, CMU Panoptic, 3DPW)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jobs.cli_common import explicit_params, fail, flags_tree, print_spec, resolve, run_eval_and_report, set_path

eval_app = typer.Typer(help="Evaluate results against benchmark ground truth.", no_args_is_help=True)
BENCHMARKS = ("agora", "relative-human", "cmu-panoptic", "3dpw")


@eval_app.command("tracking")
def eval_tracking(
    results: Annotated[str, typer.Argument(help="Tracked results dataset (folder or s3:// prefix).")],
    gt: Annotated[str, typer.Option(help="MOTChallenge ground truth: <seq>/gt/gt.txt or <seq>.txt per video.")],
    output: Annotated[Path | None, typer.Option(help="Write the metrics JSON here.")] = None,
    iou: Annotated[float, typer.Option(help="IoU needed for a match in CLEAR-MOT / ID metrics.")] = 0.5,
    mlflow_uri: Annotated[str | None, typer.Option(
        help="MLflow tracking URI. Default: $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db.")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log a run to MLflow.")] = True,
    split: Annotated[str, typer.Option(help="Dataset/split name recorded with the run (leaderboard key).")] = "custom",
) -> None:
    """MOTA, IDF1, IDP, IDR, ID switches, FP, FN (motmetrics) and HOTA, DetA, AssA (TrackEval's definition)."""
    from eval.job import EVALUATOR_VERSION
    from eval.mlflow_log import log_run
    from eval.mot_format import MotFormatError
    from eval.tracking_job import evaluate_dataset

    try:
        report = evaluate_dataset(gt, results, iou)
    except (MotFormatError, FileNotFoundError, ValueError) as err:
        fail(err)
    payload = {"benchmark": "tracking", "results": results, "gt": gt, "iou": iou, "overall": report.overall,
               "per_sequence": report.per_sequence, "sequences_without_predictions": report.missing}
    if mlflow:
        params = {"benchmark": "tracking", "split": split, "track": "smpl", "protocol": "official",
                  "evaluator_version": EVALUATOR_VERSION, "predictions": results, "gt": gt, "iou": iou}
        payload["mlflow_run_id"] = log_run("meshfleet-eval", "tracking", params, report.overall,
                                           {"metrics.json": payload}, mlflow_uri, tags={"benchmark": "tracking"})
    if output:
        output.write_text(json.dumps(payload, indent=2))
    o = report.overall
    typer.echo(f"HOTA {o['HOTA']:.3f}  DetA {o['DetA']:.3f}  AssA {o['AssA']:.3f}  MOTA {o['mota']:.3f}  "
               f"IDF1 {o['idf1']:.3f}  IDsw {int(o['num_switches'])}  FP {int(o['num_false_positives'])}  "
               f"FN {int(o['num_misses'])}")


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
            "--body-models", help="SMPL files (AGORA / 3DPW ground truth; inference).")] = None,
        split: Annotated[str | None, typer.Option(help="Split name recorded with the run (val, test...).")] = None,
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
