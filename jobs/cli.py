"""The ``meshfleet`` command line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.settings import OFFICIAL_THRESHOLDS, PredictorSettings, bev_variant_for
from core.smoothing import SmoothingConfig
from core.tracking import TrackerConfig
from jobs.config import ConfigError, InferConfig
from pipelines.ray_job import Resources
from pipelines.tracking import TrackingSettings

app = typer.Typer(
    name="meshfleet",
    help="Batch inference and evaluation for multi-person 3D human mesh recovery (ROMP / BEV).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True, soft_wrap=True)

_BEV = OFFICIAL_THRESHOLDS[("bev", False)]
_BEV_CROWD = OFFICIAL_THRESHOLDS[("bev", True)]
_ROMP = OFFICIAL_THRESHOLDS[("romp", False)]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not verbose:  # Ray Data logs every execution plan at INFO
        logging.getLogger("ray").setLevel(logging.WARNING)


@app.command()
def infer(
    inputs: Annotated[list[str], typer.Argument(
        help="Images, folders / s3:// prefixes, globs, manifests (.txt/.csv/.parquet lists) or videos.")],
    model: Annotated[str, typer.Option(help="romp or bev.")] = "romp",
    checkpoint: Annotated[str, typer.Option(
        help="Official ROMP.pkl / BEV.pth / BEV_ft_agora.pth (or ours); path or s3:// URI.")] = "~/.romp/ROMP.pkl",
    body_models: Annotated[str, typer.Option(
        "--body-models", help="Folder (or s3:// prefix) with SMPL_NEUTRAL.pkl, J_regressor_extra.npy, "
                              "J_regressor_h36m.npy (+ smpl_kid_template.npy, smil_web.pkl for BEV).")] = "~/.romp",
    output: Annotated[str, typer.Option(help="Output folder or s3:// prefix of the Parquet dataset.")] = "results",
    center_thresh: Annotated[float | None, typer.Option(
        help=f"Body-center confidence threshold. Default: ROMP {_ROMP.center}; BEV {_BEV.center}, "
             f"or {_BEV_CROWD.center} with --crowd (BEV_ft_agora: 0.25 / 0.12). An explicit value always wins."
    )] = None,
    nms_thresh: Annotated[float | None, typer.Option(
        help=f"BEV: duplicate suppression by 2D projection, in px per 640 px of image. Default {_BEV.nms}.")] = None,
    relative_scale_thresh: Annotated[float | None, typer.Option(
        help=f"BEV: outlier removal, relative distance to the others. Default {_BEV.relative_scale}.")] = None,
    overlap_ratio: Annotated[float | None, typer.Option(
        help=f"BEV crowd mode: overlap of the sliding windows on long images. Default {_BEV_CROWD.overlap} "
             "(BEV_ft_agora: 0.46).")] = None,
    crowd: Annotated[bool, typer.Option(
        "--crowd/--no-crowd", help="BEV: crowd defaults and sliding windows for images with w/h >= 2 "
                                   "(official default: on).")] = True,
    bev_variant: Annotated[str, typer.Option(
        help="BEV defaults table: bev, bev_ft_agora, or auto (from the checkpoint file name).")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N (inside each actor).")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, or bf16 / fp16 on CUDA.")] = "fp32",
    batch_size: Annotated[int | None, typer.Option(
        help="Network views per forward. Default: 16 on CUDA, 1 on CPU.")] = None,
    save_verts: Annotated[bool, typer.Option("--save-verts", help="Also store the 6890 vertices per person.")] = False,
    root_align: Annotated[bool, typer.Option(
        "--root-align", help="ROMP: centre joints on the hip midpoint (official --root_align).")] = False,
    gender: Annotated[str, typer.Option(help="SMPL model: neutral, male or female.")] = "neutral",
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Start over: delete what --output holds. Without it, a rerun resumes.")] = False,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster to attach to (ray://head:10001, head:6379 or auto). Default: embedded local Ray.")] = None,
    actors: Annotated[int | None, typer.Option(
        help="Inference actors (model replicas). Default: one per GPU, or 1 without GPUs.")] = None,
    gpus_per_actor: Annotated[float, typer.Option(help="GPUs per actor (only when the cluster has GPUs).")] = 1.0,
    cpus_per_actor: Annotated[float, typer.Option(help="CPUs reserved per inference actor.")] = 1.0,
    chunk_frames: Annotated[int, typer.Option(help="Video frames per work unit (one results file each).")] = 128,
    images_per_unit: Annotated[int, typer.Option(help="Images per work unit (one results file each).")] = 32,
    ray: Annotated[bool, typer.Option(
        "--ray/--no-ray", help="--no-ray runs the same stages sequentially in this process (debugging).")] = True,
    track: Annotated[bool, typer.Option(
        "--track", help="After inference, track people through every video and smooth their parameters.")] = False,
    smooth_coeff: Annotated[float, typer.Option(help=SMOOTH_HELP)] = 3.0,
    track_det_thresh: Annotated[float, typer.Option(help=DET_HELP)] = 0.12,
    track_low_thresh: Annotated[float, typer.Option(help=LOW_HELP)] = 0.05,
    track_buffer: Annotated[int, typer.Option(help=BUFFER_HELP)] = 60,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run ROMP or BEV over images and videos and write one Parquet row per detected person.

    Rerunning the same command over the same --output resumes: committed units are skipped.
    """
    _setup_logging(verbose)
    try:
        settings = PredictorSettings(
            center_thresh=center_thresh, nms_thresh=nms_thresh, relative_scale_thresh=relative_scale_thresh,
            overlap_ratio=overlap_ratio, crowd=crowd,
            bev_variant=bev_variant_for(checkpoint) if bev_variant == "auto" else bev_variant,
            device=device, precision=precision, batch_size=batch_size, save_verts=save_verts,
            root_align=root_align,
        )
        cfg = InferConfig(
            inputs=tuple(inputs), model=model, checkpoint=checkpoint, body_models=body_models, output=output,
            settings=settings, gender=gender, overwrite=overwrite, images_per_unit=images_per_unit,
            frames_per_chunk=chunk_frames, address=address, use_ray=ray,
            track=_tracking(smooth_coeff, track_det_thresh, track_low_thresh, track_buffer) if track else None,
            resources=Resources(actors=actors, gpus_per_actor=gpus_per_actor, cpus_per_actor=cpus_per_actor),
        ).validate()
    except (ConfigError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    _run_and_report(cfg)


SMOOTH_HELP = "One-Euro min cutoff for pose (official -sc); smaller is smoother."
DET_HELP = "Tracker: detections above this confidence start and extend tracks (official 0.12)."
LOW_HELP = "Tracker: detections above this (and below --det-thresh) only extend tracks (official 0.05)."
BUFFER_HELP = "Tracker: frames a lost track is kept for re-identification (official 60 at 30 fps)."


def _tracking(smooth_coeff: float, det_thresh: float, low_thresh: float, buffer: int) -> TrackingSettings:
    if not 0 <= low_thresh <= det_thresh:
        raise ValueError("tracker thresholds must satisfy 0 <= low <= det")
    if smooth_coeff <= 0 or buffer < 0:
        raise ValueError("--smooth-coeff must be > 0 and --track-buffer >= 0")
    return TrackingSettings(TrackerConfig(det_thresh=det_thresh, low_thresh=low_thresh, track_buffer=buffer),
                            SmoothingConfig(smooth_coeff=smooth_coeff))


def _run_and_report(cfg: InferConfig) -> None:
    from tqdm import tqdm

    from core.checkpoints import CheckpointError
    from core.smpl_pickle import BodyModelFileError
    from jobs.infer import RunSummary, run_infer
    from pipelines.jobstate import JobMismatchError
    from pipelines.readers import InputError

    bar = tqdm(unit="frame", dynamic_ncols=True, file=sys.stderr, disable=not sys.stderr.isatty())

    def progress(summary: RunSummary, total: int) -> None:
        bar.total = total
        bar.update(summary.frames - bar.n)
        bar.set_postfix(persons=summary.persons, errors=summary.errors)

    try:
        summary = run_infer(cfg, progress)
    except (CheckpointError, BodyModelFileError, InputError, JobMismatchError, ValueError) as err:
        bar.close()
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from err
    bar.close()
    typer.echo(summary.line() + f"\nresults: {cfg.output}")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo's generated assets and results go.")] = Path(
        "meshfleet-demo"),
    model: Annotated[str, typer.Option(help="romp or bev (BEV is slower on CPU).")] = "romp",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the whole infer path on a small built-in corpus, offline, with synthetic weights."""
    from jobs.demo import prepare_demo_assets

    _setup_logging(verbose)
    if model not in ("romp", "bev"):
        console.print(f"[red]error:[/red] model must be romp or bev, not {model!r}")
        raise typer.Exit(2)
    typer.echo(
        "NOTE: no official weights or SMPL files are used here. The demo generates a synthetic SMPL set and a\n"
        "random-initialised checkpoint in the official formats: the results exercise every stage but are NOT\n"
        "meaningful. Use `meshfleet infer --checkpoint ROMP.pkl --body-models DIR` for real results."
    )
    assets = prepare_demo_assets(workdir, model)
    cfg = InferConfig(
        inputs=assets.inputs, model=model, checkpoint=str(assets.checkpoint), body_models=str(assets.body_models),
        output=str(workdir / f"results-{model}"), settings=PredictorSettings(device=device), overwrite=True,
    ).validate()
    _run_and_report(cfg)
    import pandas as pd

    table = pd.read_parquet(cfg.output)
    typer.echo(table[["source", "frame", "person", "center_conf", "image_height", "image_width"]].head(8).to_string())


@app.command("track")
def track_command(
    results: Annotated[str, typer.Argument(help="Results dataset (folder or s3:// prefix) to re-track.")],
    output: Annotated[str, typer.Option(help="New dataset with track_id and the *_smoothed columns.")],
    smooth_coeff: Annotated[float, typer.Option(help=SMOOTH_HELP)] = 3.0,
    det_thresh: Annotated[float, typer.Option(help=DET_HELP)] = 0.12,
    low_thresh: Annotated[float, typer.Option(help=LOW_HELP)] = 0.05,
    track_buffer: Annotated[int, typer.Option(help=BUFFER_HELP)] = 60,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace what --output holds.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Track people through the videos of an existing results dataset, without re-running the network."""
    from jobs.track import TrackingError, track_dataset

    _setup_logging(verbose)
    try:
        settings = _tracking(smooth_coeff, det_thresh, low_thresh, track_buffer)
        summary = track_dataset(results, output, settings, overwrite)
    except (TrackingError, ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from err
    typer.echo(summary.line() + f"\nresults: {output}")


export_app = typer.Typer(help="Export results to other formats.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate results against benchmark ground truth.", no_args_is_help=True)
app.add_typer(export_app, name="export")
app.add_typer(eval_app, name="eval")


@export_app.command("mot")
def export_mot(
    results: Annotated[str, typer.Argument(help="Tracked results dataset (folder or s3:// prefix).")],
    output: Annotated[Path, typer.Option(help="Folder for one MOTChallenge <sequence>.txt per video.")],
) -> None:
    """Write tracks as MOTChallenge text (boxes from the extents of pj2d_org), one file per video."""
    from eval.mot_format import format_mot
    from eval.tracking_job import load_tracks

    try:
        sequences = load_tracks(results)
    except (FileNotFoundError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from err
    output.mkdir(parents=True, exist_ok=True)
    for name, seq in sequences.items():
        (output / f"{name}.txt").write_text(format_mot(seq))
    typer.echo(f"{len(sequences)} sequences written to {output}")


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
    import json

    from eval.mlflow_log import log_run
    from eval.mot_format import MotFormatError
    from eval.tracking_job import evaluate_dataset

    try:
        report = evaluate_dataset(gt, results, iou)
    except (MotFormatError, FileNotFoundError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from err
    payload = {"benchmark": "tracking", "results": results, "gt": gt, "iou": iou, "overall": report.overall,
               "per_sequence": report.per_sequence, "sequences_without_predictions": report.missing}
    if mlflow:
        from eval.job import EVALUATOR_VERSION

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


@app.command()
def leaderboard(
    output: Annotated[Path, typer.Option(help="Folder for leaderboard.md and a self-contained index.html.")],
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow tracking URI. Default: $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db.")] = None,
    experiment: Annotated[list[str] | None, typer.Option(help="MLflow experiments to read (repeatable).")] = None,
    registry: Annotated[Path | None, typer.Option(help="Reported-results YAML (default: the bundled one).")] = None,
    run_url: Annotated[str | None, typer.Option(
        help="Link template for runs, e.g. http://mlflow:5000/#/experiments/1/runs/{run_id}.")] = None,
) -> None:
    """Tables per benchmark / split / track / protocol / evaluator version from MLflow runs and published results."""
    from eval.leaderboard import RegistryError
    from eval.leaderboard_job import REGISTRY, LeaderboardJob, run_leaderboard

    try:
        tables = run_leaderboard(LeaderboardJob(output, tracking_uri, tuple(experiment or ("meshfleet-eval",)),
                                                registry or REGISTRY, run_url))
    except (RegistryError, OSError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from err
    runs = sum(1 for t in tables for r in t.rows if r.kind == "run")
    typer.echo(f"{len(tables)} tables, {runs} runs -> {output / 'leaderboard.md'}, {output / 'index.html'}")


def _benchmark_command(benchmark: str) -> None:
    """Register ``meshfleet eval <benchmark>`` with the options every evaluator shares."""

    def command(
        predictions: Annotated[str | None, typer.Option(
            help="meshfleet results (folder or s3:// prefix) or the benchmark's official prediction "
                 "format; omit with --checkpoint to run inference first.")] = None,
        data: Annotated[str | None, typer.Option(help="Benchmark folder as distributed.")] = None,
        annots: Annotated[str | None, typer.Option(help="Relative Human: the {split}_annots.npz file.")] = None,
        protocol: Annotated[str, typer.Option(help="official (as coded, quirks included) or fixed.")] = "official",
        output_json: Annotated[Path | None, typer.Option(help="Write the flat metrics JSON here.")] = None,
        body_models: Annotated[str | None, typer.Option(
            "--body-models", help="SMPL files (AGORA / 3DPW ground truth; inference).")] = None,
        split: Annotated[str | None, typer.Option(help="Split name recorded with the run (val, test...).")] = None,
        checkpoint: Annotated[str | None, typer.Option(help="Run inference with this checkpoint first.")] = None,
        model: Annotated[str, typer.Option(help="Model for --checkpoint: romp or bev.")] = "bev",
        images: Annotated[list[str] | None, typer.Option(
            help="Inputs for --checkpoint (default: the benchmark's image folder).")] = None,
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
        verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    ) -> None:
        from core.smpl_pickle import UnsafePickleError
        from eval.common import EvalConfig, EvalError
        from eval.job import EvalJob, run_eval
        from jobs.infer import ensure_ray, run_infer

        _setup_logging(verbose)
        try:
            infer_cfg = None
            if checkpoint:
                if not (body_models and (images or data) and infer_output):
                    raise ConfigError("--checkpoint needs --body-models, --infer-output and --images (or --data)")
                infer_cfg = InferConfig(
                    inputs=tuple(images or [data or ""]), model=model, checkpoint=checkpoint,
                    body_models=body_models, output=infer_output, address=address,
                    settings=PredictorSettings(center_thresh=center_thresh, nms_thresh=nms_thresh,
                                               relative_scale_thresh=relative_scale_thresh, crowd=crowd,
                                               bev_variant=bev_variant_for(checkpoint), device=device),
                ).validate()
            elif not predictions:
                raise ConfigError("give --predictions, or --checkpoint to run inference first")
            cfg = EvalConfig(benchmark=benchmark, predictions=predictions or "", protocol=protocol, data=data,
                             annots=annots, body_models=body_models, split=split)
            started = ensure_ray(address)
            try:
                payload, _ = run_eval(EvalJob(cfg, output_json, mlflow_uri, mlflow, infer_cfg), run_infer)
            finally:
                if started:
                    import ray

                    ray.shutdown()
        except (ConfigError, EvalError, UnsafePickleError, ValueError, FileNotFoundError) as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(1) from err
        typer.echo(json.dumps(payload, indent=2, default=float))

    command.__doc__ = f"Evaluate on {benchmark} with the official protocol (or --protocol fixed)."
    eval_app.command(benchmark)(command)


for _benchmark in ("agora", "relative-human", "cmu-panoptic", "3dpw"):
    _benchmark_command(_benchmark)


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # python -m jobs.cli
    app()
