"""Stage 2 of ``meshfleet render``: frame rows -> panel rows (the picture of each frame).

A panel is the chosen views side by side, each as high as the frame: ``overlay`` (the meshes on
the frame, depth-correct through the z-buffer, one colour per track, ``alpha`` < 1 lets the frame
show through; the 2D joints ``pj2d_org`` and the SMPL bones on top), ``side`` (seen from the right:
depth grows to the right) and ``top`` (bird's-eye: depth grows upwards), both square.

Meshes: the saved ``verts`` when usable, else the body model of the results (SMPL for 10 betas;
SMPL-A, or SMIL for infants, for 11) on ``smpl_thetas`` / ``smpl_betas`` -- shifted like the
stored joints (minus the hip midpoint for root-aligned results) -- plus ``cam_trans``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from core.body_models import BodyModelSet, root_offset
from core.render import (
    SIDE,
    TOP,
    PeopleMeshes,
    PinholeCamera,
    RenderSettings,
    ShadingSettings,
    draw_joints,
    overlay,
    panel,
    render,
    track_palette,
    view_of,
)
from pipelines.body_model_sets import load_body_model_set
from pipelines.render.plan import VIEWS, ResultsInfo

Batch = dict[str, np.ndarray]
VIEW_BACKGROUND = (0.16, 0.17, 0.2)  # dark slate behind the side / top views
SMPL_JOINTS = 24  # the kinematic tree's joints, drawn with their bones (the first 24 of the 71)
LABEL_HEIGHT_SHARE = 0.06  # view label text height, share of the picture height


@dataclass(frozen=True)
class DrawOptions:
    """views: which pictures, in order (of ``VIEWS``); alpha in (0, 1]: mesh opacity on the overlay;
    joints: draw ``pj2d_org``; device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``;
    body_models: ``open`` or a folder / s3:// prefix (``--body-models``)."""

    views: tuple[str, ...] = VIEWS
    alpha: float = 1.0
    joints: bool = True
    device: str = "auto"
    body_models: str = "open"

    def __post_init__(self) -> None:
        unknown = [v for v in self.views if v not in VIEWS]
        if unknown or not self.views:
            raise ValueError(f"views must be some of {', '.join(VIEWS)}, got {','.join(self.views) or 'none'}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, not {self.device!r}")


def pick_device(device: str) -> torch.device:
    """``auto``: CUDA when a GPU is present, else CPU; ``cuda`` without one is an error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU here (use --device auto or cpu)")
    return torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")


class PanelRenderer:
    """Built once per worker: the body models (loaded on first need) on the chosen device."""

    def __init__(self, options: DrawOptions, info: ResultsInfo):
        self.options, self.info = options, info
        self.device = pick_device(options.device)
        self._models: BodyModelSet | None = None

    @property
    def models(self) -> BodyModelSet:
        if self._models is None:
            models = load_body_model_set(self.options.body_models, self.info.gender, for_bev=self.info.num_betas > 10)
            self._models = models.eval().to(self.device)
        return self._models

    def __call__(self, batch: Batch) -> Batch:
        shapes = [np.asarray(image).shape for image in batch["image"]]
        panels: list[np.ndarray] = [np.zeros(0)] * len(shapes)
        for shape in dict.fromkeys(shapes):  # one render call per frame size
            rows = np.array([i for i, s in enumerate(shapes) if s == shape])
            for row, picture in zip(rows, self.panels(_take(batch, rows)), strict=True):
                panels[row] = picture
        return {"unit": batch["unit"], "frame": batch["frame"], "error": batch["error"], "panel": _stack(panels)}

    def panels(self, batch: Batch) -> list[np.ndarray]:
        """Panels of frames of one size: (n,) uint8 (H, W', 3) RGB."""
        images = np.stack([np.asarray(image) for image in batch["image"]])
        n, height, width = images.shape[:3]
        counts = batch["people"].astype(np.int64)
        slots = np.concatenate([np.arange(c) for c in counts]).astype(np.int64) if counts.sum() else \
            np.zeros(0, np.int64)
        frame_of = np.repeat(np.arange(n), counts)
        verts = self.meshes(batch, frame_of, slots)
        colors = torch.from_numpy(track_palette(batch["key"][frame_of, slots])).float().to(self.device)
        image_of = torch.from_numpy(frame_of).to(self.device)
        pictures: dict[str, list[np.ndarray]] = {}
        if "overlay" in self.options.views:
            pictures["overlay"] = self.overlays(batch, images, verts, image_of, colors, frame_of, slots)
        for name, rotation in (("side", SIDE), ("top", TOP)):
            if name in self.options.views:
                pictures[name] = self.view(batch, 0 if name == "side" else 1, rotation, height, verts, image_of,
                                           colors, name)
        return [panel([pictures[v][i] for v in self.options.views], height) for i in range(n)]

    def meshes(self, batch: Batch, frame_of: np.ndarray, slots: np.ndarray) -> torch.Tensor:
        """(P, V, 3) camera-frame vertices of the batch's people, in (frame, slot) order."""
        trans = torch.from_numpy(batch["cam_trans"][frame_of, slots]).to(self.device)
        if "verts" in batch and batch["verts"].shape[2] == self.models.num_verts:
            return torch.from_numpy(batch["verts"][frame_of, slots]).to(self.device) + trans[:, None]
        betas = torch.from_numpy(batch["betas"][frame_of, slots]).to(self.device)
        thetas = torch.from_numpy(batch["thetas"][frame_of, slots]).to(self.device)
        if len(betas) == 0:
            return torch.zeros(0, self.models.num_verts, 3, device=self.device)
        with torch.no_grad():
            body = self.models.smpl_forward(betas, thetas) if self.info.num_betas <= 10 else \
                self.models.smpla_forward(betas, thetas)
        verts = body.verts - root_offset(body)[:, None] if self.info.root_aligned else body.verts
        return verts + trans[:, None]

    def overlays(self, batch: Batch, images: np.ndarray, verts: torch.Tensor, image_of: torch.Tensor,
                 colors: torch.Tensor, frame_of: np.ndarray, slots: np.ndarray) -> list[np.ndarray]:
        n, height, width = images.shape[:3]
        camera = PinholeCamera(torch.from_numpy(batch["camera"][:, 0].copy()),
                               torch.from_numpy(batch["camera"][:, 1:].copy()), height, width)
        out = render(PeopleMeshes(verts, self.models.smpl.faces, image_of, colors), camera)
        color, mask = out.color.cpu().numpy(), (out.instance > 0).cpu().numpy()
        parents = self.models.smpl.parents.cpu().numpy()[:SMPL_JOINTS]
        bones = [(int(parents[j]), j) for j in range(1, SMPL_JOINTS)]
        pictures = []
        for i in range(n):
            picture = overlay(images[i], color[i], mask[i], self.options.alpha)
            if self.options.joints and batch["people"][i]:
                mine = frame_of == i
                picture = draw_joints(picture, batch["pj2d"][i, slots[mine], :SMPL_JOINTS],
                                      colors[torch.from_numpy(mine).to(self.device)].cpu().numpy(), bones,
                                      radius=max(1, round(min(height, width) / 160)),
                                      thickness=max(1, round(min(height, width) / 320)))
            pictures.append(picture)
        return pictures

    def view(self, batch: Batch, which: int, rotation: tuple, size: int, verts: torch.Tensor,
             image_of: torch.Tensor, colors: torch.Tensor, label: str) -> list[np.ndarray]:
        """The side (which 0) or top (1) pictures, size x size, of every frame, each with its unit's view."""
        n = len(batch["frame"])
        params = torch.from_numpy(batch["views"][:, which]).to(self.device)  # (n, 4) centre, distance
        first = view_of(rotation, params[0, :3], float(params[0, 3]), size, size)
        centers, distances = params[image_of, :3], params[image_of, 3]
        moved = (verts - centers[:, None]) @ first.rotation.T
        moved[..., 2] += distances[:, None]
        camera = PinholeCamera(first.camera.focal.expand(n).clone(), first.camera.center.expand(n, 2).clone(),
                               size, size)
        settings = RenderSettings(shading=ShadingSettings(background=VIEW_BACKGROUND))
        out = render(PeopleMeshes(moved, self.models.smpl.faces, image_of, colors), camera, settings)
        color = out.color.cpu().numpy()
        return [_labelled((np.clip(color[i], 0, 1) * 255).round().astype(np.uint8), label) for i in range(n)]


def _labelled(picture: np.ndarray, text: str) -> np.ndarray:
    scale = max(picture.shape[0] * LABEL_HEIGHT_SHARE / 22, 0.3)  # Hershey simplex is ~22 px high at scale 1
    at = (max(2, picture.shape[0] // 40), max(10, int(picture.shape[0] * LABEL_HEIGHT_SHARE) + 2))
    return cv2.putText(np.ascontiguousarray(picture), text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, (220, 220, 220), 1,
                       cv2.LINE_AA)


def _take(batch: Batch, rows: np.ndarray) -> Batch:
    return {k: (np.asarray(v)[rows] if np.asarray(v).dtype != object else np.stack(list(np.asarray(v)[rows])))
            for k, v in batch.items()}


def _stack(pictures: list[np.ndarray]) -> np.ndarray:
    """Pictures of one shape as an (n, H, W, 3) array; of several shapes, an object array of them."""
    if len({p.shape for p in pictures}) == 1:
        return np.stack(pictures)
    out = np.empty(len(pictures), dtype=object)
    out[:] = pictures
    return out
