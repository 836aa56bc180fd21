"""``meshfleet demo``: synth -> infer -> track -> eval -> leaderboard -> render on held-out scenes."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs.cli_base import USAGE_ERROR, VERBOSE_HELP
from jobs.cli_common import fail, setup_logging

CHECKPOINT_HELP = ("Checkpoint: 'demo' (the compact ROMP meshfleet trained on its own synthetic scenes and "
                   "ships), or a file such as the official ROMP.pkl / BEV.pth (then give --body-models).")
BODY_HELP = "Body models: 'open' (shipped, license-free) or a folder with the SMPL files for official weights."


def demo(
    workdir: Annotated[str, typer.Option(help="Where the scenes, results, metrics, pages and pictures go.")] = (
        "meshfleet-demo"),
    scenes: Annotated[int, typer.Option(help="Held-out still images to generate and score.")] = 24,
    frames: Annotated[int, typer.Option(help="Frames of the held-out video (tracking).")] = 48,
    checkpoint: Annotated[str, typer.Option(help=CHECKPOINT_HELP)] = "demo",
    model: Annotated[str, typer.Option(help="romp, bev, or auto (from the checkpoint).")] = "auto",
    body_models: Annotated[str, typer.Option(help=BODY_HELP)] = "open",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    steps: Annotated[str, typer.Option(help="Comma-separated subset of synth,infer,eval,render,leaderboard.")] = (
        "synth,infer,eval,render,leaderboard"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
) -> None:
    """Generate held-out synthetic scenes and a video, run the shipped checkpoint over them (infer with
    tracking), score them (AGORA protocol: F1, MPJPE; tracking: IDF1), build the leaderboard page and
    render the results. Offline; a few minutes on 2 CPU cores. A rerun reuses what is done."""
    from core.checkpoints import CheckpointError
    from core.smpl_pickle import BodyModelFileError
    from jobs.config import ConfigError
    from jobs.demo import DemoConfig, run_demo

    setup_logging(verbose)
    try:
        cfg = DemoConfig(workdir=workdir, scenes=scenes, frames=frames, checkpoint=checkpoint, model=model,
                         body_models=body_models, device=device,
                         steps=tuple(s.strip() for s in steps.split(",") if s.strip())).validate()
        report = run_demo(cfg, say=typer.echo)
    except (CheckpointError, BodyModelFileError, ConfigError, ValueError) as err:
        fail(err, USAGE_ERROR)
    typer.echo("\nmeshfleet demo (held-out synthetic scenes, shipped checkpoint):" if checkpoint == "demo"
               else f"\nmeshfleet demo ({checkpoint}):")
    for line in report.lines():
        typer.echo(line)
