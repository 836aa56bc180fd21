"""The ``meshfleet`` command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.settings import OFFICIAL_THRESHOLDS, PredictorSettings, bev_variant_for
from jobs.config import ConfigError, InferConfig
from pipelines.ray_job import Resources

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
            resources=Resources(actors=actors, gpus_per_actor=gpus_per_actor, cpus_per_actor=cpus_per_actor),
        ).validate()
    except (ConfigError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    _run_and_report(cfg)


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


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # python -m jobs.cli
    app()
