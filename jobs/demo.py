"""``meshfleet demo``: the whole ``infer`` path on a small built-in input, fully offline.

Until real weights and SMPL files are at hand, the demo generates a synthetic SMPL set and a
random-initialised checkpoint in the official formats. Its numbers are not meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2

from jobs.synthetic import (
    draw_scene,
    write_random_checkpoint,
    write_synthetic_body_models,
    write_video,
)

CHECKPOINT_NAMES = {"romp": "ROMP.pkl", "bev": "BEV.pth"}


@dataclass(frozen=True)
class DemoAssets:
    body_models: Path
    checkpoint: Path
    inputs: tuple[str, ...]


def prepare_demo_assets(workdir: Path, model: str) -> DemoAssets:
    """Write (once) synthetic body models, a random checkpoint and a small corpus under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    body_models = workdir / "body_models"
    if not (body_models / "SMPL_NEUTRAL.pkl").is_file():
        write_synthetic_body_models(body_models)
    checkpoint = workdir / "checkpoints" / CHECKPOINT_NAMES[model]
    if not checkpoint.is_file():
        write_random_checkpoint(model, checkpoint)
    corpus = workdir / "corpus"
    corpus.mkdir(exist_ok=True)
    scenes = {"street.jpg": (480, 640, 3), "portrait.png": (640, 360, 1), "panorama.jpg": (160, 480, 5)}
    for i, (name, (h, w, people)) in enumerate(scenes.items()):
        if not (corpus / name).is_file():
            cv2.imwrite(str(corpus / name), draw_scene(h, w, people, seed=i))
    video = corpus / "walk.mp4"
    if not video.is_file():
        write_video(video, [draw_scene(240, 320, 2, seed=100 + t) for t in range(8)])
    return DemoAssets(body_models, checkpoint, (str(corpus),))
