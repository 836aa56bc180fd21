"""``meshfleet synth``: the command line of the synthetic-scene job (jobs/synth.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from core.scenes.settings import AGE_NAMES, parse_size
from jobs.cli_base import DRY_HELP, SPEC_HELP, USAGE_ERROR, VERBOSE_HELP
from jobs.cli_common import (
    console,
    explicit_params,
    fail,
    input_error_code,
    print_spec,
    resolve,
    set_path,
    setup_logging,
)

DEFAULT_AGES = "adult=0.7,teen=0.1,kid=0.12,baby=0.08"
SIZES_HELP = "Image size WxH; repeat or comma-separate for several (one drawn per scene). Default: " \
             "512x512, 640x360, 384x512 and the long 1024x384."


def _pair(text: str, name: str, kind: type) -> list:
    """``"1-10"`` -> [1, 10] (``kind`` int or float); errors name the option."""
    try:
        low, high = (kind(v) for v in text.split("-", 1)) if "-" in text.lstrip("-") else (kind(text),) * 2
    except ValueError:
        fail(f"--{name}: expected MIN-MAX, got {text!r}", USAGE_ERROR)
    return [low, high]


def _ages(text: str) -> list[float]:
    """``"adult=0.7,kid=0.3"`` (missing ages get 0) or four shares ``"0.7,0.1,0.12,0.08"``."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if all("=" in p for p in parts):
            named = {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
            unknown = sorted(set(named) - set(AGE_NAMES))
            if unknown:
                fail(f"--ages: unknown age {unknown[0]!r} (known: {', '.join(AGE_NAMES)})", USAGE_ERROR)
            return [named.get(name, 0.0) for name in AGE_NAMES]
        shares = [float(p) for p in parts]
    except ValueError:
        fail(f"--ages: expected adult=0.7,teen=0.1,... or four numbers, got {text!r}", USAGE_ERROR)
    if len(shares) != 4:
        fail(f"--ages: expected four shares ({', '.join(AGE_NAMES)}), got {len(shares)}", USAGE_ERROR)
    return shares


def _sizes(values: list[str]) -> list[str]:
    sizes = [s.strip() for v in values for s in v.split(",") if s.strip()]
    for size in sizes:
        try:
            parse_size(size)
        except ValueError as err:
            fail(f"--size: {err}", USAGE_ERROR)
    return sizes


def synth(
    ctx: typer.Context,
    output: Annotated[str | None, typer.Option(help="Output folder or s3:// prefix of the dataset.")] = None,
    scenes: Annotated[int, typer.Option(help="Number of scenes (images, or videos with --video).")] = 100,
    seed: Annotated[int, typer.Option(help="Dataset seed: scene i is drawn from (seed, i).")] = 0,
    video: Annotated[bool, typer.Option("--video/--no-video", help="Make videos (MP4) of people walking.")] = False,
    frames: Annotated[int, typer.Option(help="--video: frames per video.")] = 48,
    fps: Annotated[float, typer.Option(help="--video: frame rate.")] = 24.0,
    people: Annotated[str, typer.Option(help="People per scene, MIN-MAX.")] = "1-10",
    ages: Annotated[str, typer.Option(help="Age shares (normalised); missing ages get 0.")] = DEFAULT_AGES,
    size: Annotated[list[str] | None, typer.Option(help=SIZES_HELP)] = None,
    fov: Annotated[str, typer.Option(help="Field of view over the longer side, degrees, MIN-MAX.")] = "50-70",
    backgrounds: Annotated[str | None, typer.Option(help="Folder of images used as backgrounds (with procedural ones).")
                           ] = None,
    motions: Annotated[list[str] | None, typer.Option(
        help="Motion files or folders of them, repeatable: AMASS-style .npz (array 'poses', T x >= 66 "
             "axis-angle) or .bvh on SMPL's 24 joint names (as `meshfleet export bvh` writes; rotations only, "
             "rest pose SMPL's T-pose). Yours to obtain: meshfleet never downloads them.")] = None,
    body_models: Annotated[str, typer.Option(
        "--body-models", help="'open' (the shipped open set) or a folder of SMPL-format files.")] = "open",
    scenes_per_unit: Annotated[int, typer.Option(help="Scenes per work unit (one labels file each).")] = 16,
    workers: Annotated[int | None, typer.Option(help="Ray workers. Default: one per CPU.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start over: delete what --output holds.")] = False,
    address: Annotated[str | None, typer.Option(help="Ray cluster to attach to. Default: embedded local Ray.")] = None,
    ray: Annotated[bool, typer.Option("--ray/--no-ray", help="--no-ray makes the scenes in this process.")] = True,
    spec: Annotated[Path | None, typer.Option(help=SPEC_HELP)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_HELP)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
) -> None:
    """Synthetic multi-person scenes with exact labels: images (or videos), instance masks, training
    annotations, the AGORA / Relative Human / CMU Panoptic / MOT layouts and an oracle results dataset.

    Rerunning resumes; a larger --scenes makes only the new scenes; the same seed gives the same bytes.
    """
    setup_logging(verbose)
    if spec is None and output is None:
        fail("give --output (or --spec FILE)", USAGE_ERROR)
    values: dict[str, Any] = {
        "output": output, "scenes": scenes, "seed": seed, "body_models": body_models, "backgrounds": backgrounds,
        "motions": list(motions or []), "scenes_per_unit": scenes_per_unit, "workers": workers,
        "overwrite": overwrite, "address": address, "use_ray": ray,
        "settings.people": _pair(people, "people", int), "settings.ages": _ages(ages),
        "settings.camera.fov_deg": _pair(fov, "fov", float),
        "settings.video": {"frames": frames, "fps": fps} if video else None,
    }
    if size:
        values["settings.camera.sizes"] = _sizes(size)
    given = explicit_params(ctx)
    option_of = {"use_ray": "ray", "settings.people": "people", "settings.ages": "ages",
                 "settings.camera.fov_deg": "fov", "settings.camera.sizes": "size"}
    flags: dict = {}
    explicit: dict = {}
    for path, value in values.items():
        if value is None and path != "settings.video":
            continue
        set_path(flags, path, value)
        if option_of.get(path, path.rsplit(".", 1)[-1]) in given or (path == "settings.video" and given & {
                "video", "frames", "fps"}):
            set_path(explicit, path, value)
    config = resolve("synth", flags, explicit, spec)
    if dry_run:
        print_spec("synth", config)
        return
    raise typer.Exit(run_synth_and_report(config))


def run_synth_and_report(cfg: Any) -> int:
    from core.smpl_pickle import BodyModelFileError
    from jobs.config import ConfigError
    from jobs.infer_report import EXIT_INTERRUPTED, RESUME, sigterm_as_interrupt
    from jobs.progress import ProgressDisplay
    from jobs.synth import run_synth
    from pipelines.jobstate import JobMismatchError
    from pipelines.skeleton import Interrupted

    try:
        cfg.validate()
    except (ConfigError, ValueError) as err:
        fail(err, USAGE_ERROR)
    display = ProgressDisplay(what="scenes")
    try:
        with sigterm_as_interrupt():
            summary = run_synth(cfg, display.progress)
    except (Interrupted, KeyboardInterrupt) as stop:
        display.close()
        where = f"after {stop.progress.units_done} of {stop.progress.units_total} units" \
            if isinstance(stop, Interrupted) else "before any unit was committed"
        console.print(f"interrupted {where} — {RESUME}", highlight=False)
        return EXIT_INTERRUPTED
    except (BodyModelFileError, JobMismatchError, ConfigError, ValueError, OSError) as err:
        display.close(ok=False)
        fail(err, input_error_code(err))
    display.close()
    typer.echo(summary.line() + f"\ndataset: {cfg.output}")
    return 0
