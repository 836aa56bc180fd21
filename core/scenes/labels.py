"""Per-person labels of one rendered frame: 2D joints, visibility, box, occlusion, truncation, layers.

Definitions (they are the training-annotation contract's, README "Training annotation dataset"):

* ``joints2d``: the 71 camera-frame joints projected with the scene camera, px.
* ``visible``: the joint projects inside the image and no rendered surface lies more than
  :data:`VISIBILITY_TOLERANCE_M` in front of it (a depth test against the frame's z-buffer: joints sit
  inside the body, so the person's own surface in front of them is allowed for; another person, or the
  person's own far-side body part, in front of it hides it).
* ``bbox``: (x0, y0, x1, y1) px of the visible instance mask (pixel edges; NaN without visible pixels).
* ``occlusion``: 1 - visible mask pixels / pixels the person covers inside the image when rendered
  alone (NaN if it covers none).
* ``truncation``: the share of the person's projected surface area (triangles, front and back) whose
  centroid falls outside the image.
* ``present``: the box of the 71 projected joints, clipped to the image, has a positive area (MOT
  boxes are built the same way from ``pj2d_org``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.scenes.placement import depth_layers
from core.scenes.record import Camera
from core.scenes.rendering import RenderedFrame

VISIBILITY_TOLERANCE_M = 0.15  # about the largest depth of a joint below the body surface (pelvis, adult)
# The 14 LSP-style joints of the H36M-17 block (joints 54-70 of the 71: 54 + [0..12, 14]); CMU Panoptic
# keeps a person only with more than 5 of these inside the image.
LSP14 = tuple(54 + j for j in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14))


@dataclass
class FrameLabels:
    """P people of one frame. joints2d (P, 71, 2) float32 px; in_image / visible (P, 71) bool; bbox
    (P, 4) float32; pixels (P,) visible mask pixels; occlusion, truncation (P,) float32; depth_layer (P,)
    int8 and layers_ok (whether they are consistent Relative-Human layers); present (P,) bool."""

    joints2d: np.ndarray
    in_image: np.ndarray
    visible: np.ndarray
    bbox: np.ndarray
    pixels: np.ndarray
    occlusion: np.ndarray
    truncation: np.ndarray
    depth_layer: np.ndarray
    layers_ok: bool
    present: np.ndarray


def mask_boxes(ids: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) instance ids -> ((count, 4) float32 boxes x0, y0, x1, y1 with NaN rows for absent people,
    (count,) pixel counts)."""
    boxes = np.full((count, 4), np.nan, np.float32)
    flat = ids.reshape(-1)
    pixels = np.bincount(flat, minlength=count + 1)[1:count + 1]
    rows, cols = np.nonzero(ids)
    values = ids[rows, cols] - 1
    for p in np.flatnonzero(pixels):
        r, c = rows[values == p], cols[values == p]
        boxes[p] = (c.min(), r.min(), c.max() + 1, r.max() + 1)
    return boxes, pixels


def truncation(verts: np.ndarray, faces: np.ndarray, camera: Camera) -> np.ndarray:
    """(P, V, 3), (F, 3) -> (P,) share of projected triangle area whose centroid is outside the image."""
    uv = camera.project(verts)[:, faces]  # (P, F, 3, 2)
    edge1, edge2 = uv[:, :, 1] - uv[:, :, 0], uv[:, :, 2] - uv[:, :, 0]
    area = np.abs(edge1[..., 0] * edge2[..., 1] - edge1[..., 1] * edge2[..., 0]) / 2
    centre = uv.mean(axis=2)
    inside = (centre[..., 0] >= 0) & (centre[..., 0] < camera.width) & (centre[..., 1] >= 0) & \
        (centre[..., 1] < camera.height)
    total = area.sum(axis=1)
    return np.where(total > 0, (area * ~inside).sum(axis=1) / np.maximum(total, 1e-12), 1.0).astype(np.float32)


def frame_labels(joints: np.ndarray, verts: np.ndarray, faces: np.ndarray, trans: np.ndarray, camera: Camera,
                 frame: RenderedFrame, solo_pixels: np.ndarray) -> FrameLabels:
    """Labels of P people: joints (P, 71, 3) and verts (P, V, 3) in the camera frame (translation
    included), trans (P, 3), the rendered frame and (P,) pixels each covers alone."""
    count = len(joints)
    uv = camera.project(joints).astype(np.float32)
    col, row = np.floor(uv[..., 0]).astype(np.int64), np.floor(uv[..., 1]).astype(np.int64)
    in_image = (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height) & (joints[..., 2] > 0)
    surface = np.full(in_image.shape, np.inf, np.float32)
    surface[in_image] = frame.depth[row[in_image], col[in_image]]
    visible = in_image & (surface >= joints[..., 2] - VISIBILITY_TOLERANCE_M)
    boxes, pixels = mask_boxes(frame.ids, count)
    with np.errstate(divide="ignore", invalid="ignore"):
        occlusion = np.where(solo_pixels > 0, 1.0 - np.minimum(pixels, solo_pixels) / solo_pixels, np.nan)
    layers, ok = depth_layers(trans[:, 2].astype(np.float64))
    lo = np.clip(uv.min(axis=1), 0, [camera.width, camera.height])
    hi = np.clip(uv.max(axis=1), 0, [camera.width, camera.height])
    present = ((hi - lo) > 0).all(axis=1)
    return FrameLabels(uv, in_image, visible, boxes, pixels, occlusion.astype(np.float32),
                       truncation(verts, faces, camera) if count else np.zeros(0, np.float32), layers, ok, present)


def keep_for_still(labels: FrameLabels, camera: Camera, min_joints: int, max_occlusion: float) -> np.ndarray:
    """(P,) people a still image keeps: present, visible somewhere, occluded at most ``max_occlusion``,
    with at least ``min_joints`` of the 14 LSP joints strictly inside the image (CMU's test)."""
    lsp = labels.joints2d[:, list(LSP14)]
    lsp_inside = ((lsp[..., 0] > 0) & (lsp[..., 0] < camera.width) & (lsp[..., 1] > 0) &
                  (lsp[..., 1] < camera.height)).sum(axis=1)
    return labels.present & (labels.pixels > 0) & (np.nan_to_num(labels.occlusion, nan=1.0) <= max_occlusion) & \
        (lsp_inside >= min_joints)
