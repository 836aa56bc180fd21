"""``meshfleet eval``: tracking metrics, and the benchmark evaluators (AGORA, RH, CMU Panoptic, 3DPW).

Each ``eval <benchmark>`` command lists only the options its evaluator reads, its required inputs
marked ``[required]`` (checked before Ray starts; with ``--spec`` they may come from the file). The
options are declared once (:data:`OPTIONS`) and each benchmark picks its own (:data:`BENCHMARK_OPTIONS`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from core.settings import OFFICIAL_THRESHOLDS
from eval.registry import EVALUATORS
from jobs.cli_base import (
    BEV_VARIANT_HELP,
    DRY_HELP,
    MLFLOW_URI_HELP,
    MODEL_HELP,
    VERBOSE_HELP,
    aliased,
)
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
    setup_logging,
)

eval_app = typer.Typer(help="Evaluate results against benchmark ground truth.", no_args_is_help=True)
BENCHMARKS = tuple(EVALUATORS)
OUTPUT_JSON_HELP = "Write the flat metrics JSON here."
INFER_DEFAULT_BODY_MODELS = "~/.romp"  # infer's --body-models default

TRACKING_PATHS = {"results": "results", "gt": "gt", "output_json": "output", "iou": "iou", "split": "split",
                  "mlflow_uri": "mlflow_uri", "mlflow": "use_mlflow"}


@eval_app.command("tracking", cls=aliased(output="--output-json"))
def eval_tracking(
    ctx: typer.Context,
    results: Annotated[str | None, typer.Argument(help="Tracked results dataset (folder or s3:// prefix).")] = None,
    gt: Annotated[str | None, typer.Option(
        help="MOTChallenge ground truth: <seq>/gt/gt.txt or <seq>.txt per video. [required]")] = None,
    output_json: Annotated[str | None, typer.Option(help=OUTPUT_JSON_HELP + " (--output: old name)")] = None,
    iou: Annotated[float, typer.Option(help="IoU needed for a match in CLEAR-MOT / ID metrics, in (0, 1].")] = 0.5,
    mlflow_uri: Annotated[str | None, typer.Option(help=MLFLOW_URI_HELP)] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log a run to MLflow.")] = True,
    split: Annotated[str, typer.Option(help="Dataset/split name recorded with the run (leaderboard key).")] = "custom",
    spec: Annotated[Path | None, typer.Option(help="Spec file (kind eval-tracking); options override it.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_HELP)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
) -> None:
    """MOTA, IDF1, IDP, IDR, ID switches, FP, FN (motmetrics) and HOTA, DetA, AssA (TrackEval's definition)."""
    setup_logging(verbose)
    values = dict(locals())
    if spec is None and (results is None or gt is None):
        fail("give RESULTS and --gt (or --spec FILE)", 2)
    job = job_from_options(ctx, "eval-tracking", values, TRACKING_PATHS, spec)
    if dry_run:
        print_spec("eval-tracking", job)
        return
    raise typer.Exit(run_tracking_eval_and_report(job))


_BEV = OFFICIAL_THRESHOLDS[("bev", False)]
PREDICTIONS_HELP = "meshfleet results (folder or s3:// prefix); omit with --checkpoint to run inference first."
INFER_BODY_MODELS_HELP = (f"Body-model files for --checkpoint inference (default {INFER_DEFAULT_BODY_MODELS}), "
                          "or `open` (meshfleet's open body model).")

# name -> (annotation, default, option names or (), help); per-benchmark help in BENCHMARK_HELP wins.
OPTIONS: dict[str, tuple[Any, Any, tuple[str, ...], str]] = {
    "predictions": (str | None, None, (), PREDICTIONS_HELP),
    "data": (str | None, None, (), "Benchmark folder as distributed."),
    "annots": (str | None, None, (), "Relative Human: the {split}_annots.npz file."),
    "body_models": (str | None, None, ("--body-models",), INFER_BODY_MODELS_HELP),
    "split": (str | None, None, (), "Split name recorded with the run (leaderboard key)."),
    "protocol": (str, "official", (), "official (as coded, quirks included) or fixed."),
    "output_json": (str | None, None, (), OUTPUT_JSON_HELP),
    "mlflow_uri": (str | None, None, (), MLFLOW_URI_HELP),
    "mlflow": (bool, True, ("--mlflow/--no-mlflow",), "Log a run to MLflow."),
    "address": (str | None, None, (), "Ray cluster for the evaluation (and --checkpoint inference): "
                                      "ray://head:10001, head:6379 or auto. Default: embedded local Ray."),
    "checkpoint": (str | None, None, (), "Run inference with this checkpoint first (see infer)."),
    "model": (str, "auto", (), MODEL_HELP),
    "bev_variant": (str, "auto", (), BEV_VARIANT_HELP),
    "images": (list[str] | None, None, (), "Inputs for --checkpoint (repeatable; default: the --data folder)."),
    "infer_output": (str | None, None, (), "Where --checkpoint writes its results (default results-BENCHMARK)."),
    "center_thresh": (float | None, None, (), "Inference body-center threshold, in [0, 1] (see infer)."),
    "nms_thresh": (float | None, None, (), f"Inference BEV NMS, >= 0 (default {_BEV.nms}; see infer)."),
    "relative_scale_thresh": (float | None, None, (), "Inference BEV outlier removal, >= 0 (see infer)."),
    "crowd": (bool, False, ("--crowd/--no-crowd",), "BEV crowd mode for --checkpoint inference. Off by default, "
                                                    "as the official evaluation scripts (infer: on)."),
    "device": (str, "auto", (), "Inference device: auto, cpu, cuda or cuda:N."),
    "spec": (Path | None, None, (), "Eval spec file; command-line options override it."),
    "dry_run": (bool, False, ("--dry-run",), DRY_HELP),
    "verbose": (bool, False, ("--verbose", "-v"), VERBOSE_HELP),
}
INFER_OPTIONS = ("checkpoint", "model", "bev_variant", "body_models", "images", "infer_output", "center_thresh",
                 "nms_thresh", "relative_scale_thresh", "crowd", "device")
COMMON_OPTIONS = ("predictions", "protocol", "split", "output_json", "mlflow_uri", "mlflow", "address")
TAIL_OPTIONS = ("spec", "dry_run", "verbose")
BENCHMARK_OPTIONS = {
    "agora": ("data", *COMMON_OPTIONS, *INFER_OPTIONS, *TAIL_OPTIONS),
    "relative-human": ("annots", *COMMON_OPTIONS, *INFER_OPTIONS, *TAIL_OPTIONS),
    "cmu-panoptic": ("data", *COMMON_OPTIONS, *INFER_OPTIONS, *TAIL_OPTIONS),
    "3dpw": ("data", *COMMON_OPTIONS, *INFER_OPTIONS, *TAIL_OPTIONS),
}
BENCHMARK_HELP = {
    "agora": {
        "data": "AGORA folder: gt_dataframe_smpl/*_withjv.pkl and utils/body_verts_smpl.npy.",
        "predictions": "AGORA prediction folder or server zip (official format), or meshfleet results; omit "
                       "with --checkpoint to run inference first.",
        "body_models": "SMPL_NEUTRAL.pkl and smpl_kid_template.npy: for predictions given as SMPL params, and "
                       f"for --checkpoint (default there {INFER_DEFAULT_BODY_MODELS}).",
        "split": "Split of the ground truth given, recorded with the run: validation (default; the test "
                 "ground truth is withheld) or test.",
    },
    "relative-human": {
        "predictions": "{split}_results.npz (official format) or meshfleet results; omit with --checkpoint to "
                       "run inference first.",
        "split": "Split recorded with the run. Default: the {split} of {split}_annots.npz, else test.",
        "images": "Inputs for --checkpoint (repeatable): the Relative Human images.",
    },
    "cmu-panoptic": {
        "data": "CMU Panoptic folder holding panoptic_annot/.",
        "split": "Split recorded with the run (default test, the evaluated one).",
    },
    "3dpw": {
        "data": "3DPW folder holding sequenceFiles/.",
        "body_models": "SMPL files for the ground truth (and for --checkpoint).",
        "split": "sequenceFiles/<train|validation|test> to read (default test, the evaluated one).",
    },
}
EVAL_PATHS = {
    "predictions": "config.predictions", "data": "config.data", "annots": "config.annots",
    "protocol": "config.protocol", "body_models": "config.body_models", "split": "config.split",
    "output_json": "output_json", "mlflow_uri": "mlflow_uri", "mlflow": "use_mlflow", "address": "address",
}
INFER_PATHS = {"checkpoint": "checkpoint", "model": "model", "body_models": "body_models", "infer_output": "output",
               "address": "address", "center_thresh": "settings.center_thresh", "nms_thresh": "settings.nms_thresh",
               "relative_scale_thresh": "settings.relative_scale_thresh", "crowd": "settings.crowd",
               "bev_variant": "settings.bev_variant", "device": "settings.device"}


def _signature(benchmark: str) -> inspect.Signature:
    """The command's parameters: the benchmark's options, its required ones marked."""
    required = EVALUATORS[benchmark].required
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    for name in BENCHMARK_OPTIONS[benchmark]:
        annotation, default, decls, text = OPTIONS[name]
        text = BENCHMARK_HELP[benchmark].get(name, text) + (" [required]" if name in required else "")
        option = typer.Option(*decls, help=text)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[annotation, option]))
    return inspect.Signature(params)


def _benchmark_command(benchmark: str) -> None:
    """Register ``meshfleet eval <benchmark>`` with that benchmark's options."""

    def command(ctx: typer.Context, **given: Any) -> None:
        values = {name: given.get(name, OPTIONS[name][1]) for name in OPTIONS}
        setup_logging(values["verbose"])
        options = explicit_params(ctx)
        flags = flags_tree(values, EVAL_PATHS)
        set_path(flags, "config.benchmark", benchmark)
        flags["config"] = {k: v for k, v in flags["config"].items() if v is not None}
        explicit = flags_tree(values, EVAL_PATHS, options)
        set_path(explicit, "config.benchmark", benchmark)
        if values["checkpoint"]:
            infer_values = {**values, "body_models": values["body_models"] or INFER_DEFAULT_BODY_MODELS,
                            "infer_output": values["infer_output"] or f"results-{benchmark}"}
            infer = flags_tree(infer_values, INFER_PATHS)
            infer["inputs"] = list(values["images"] or ([values["data"]] if values["data"] else []))
            flags["infer"] = infer
            explicit["infer"] = {**flags_tree(infer_values, INFER_PATHS, options), "inputs": infer["inputs"]}
            flags["config"].setdefault("predictions", infer["output"])
        elif not values["predictions"] and values["spec"] is None:
            fail("--predictions: required (or --checkpoint, to run inference first)", 2)
        job = resolve("eval", flags, explicit, values["spec"])
        if values["dry_run"]:
            print_spec("eval", job)
            return
        raise typer.Exit(run_eval_and_report(job))

    command.__signature__ = _signature(benchmark)  # type: ignore[attr-defined]
    command.__doc__ = (f"Evaluate on {benchmark} with the official protocol (or --protocol fixed).\n\n"
                       "Required inputs are checked before anything starts.")
    eval_app.command(benchmark)(command)


for _benchmark in BENCHMARKS:
    _benchmark_command(_benchmark)
