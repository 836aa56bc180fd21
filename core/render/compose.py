"""Compositing for ``meshfleet render``: overlays, track colours, 2D joints, panels.

Pure functions of numpy arrays. Images are (H, W, 3) uint8 **RGB** (convert OpenCV's BGR with
``image[:, :, ::-1]``); colours are float RGB in [0, 1]. Joint coordinates follow
:mod:`core.render.camera`: continuous pixels, pixel (r, c) centred at (c + 0.5, r + 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# Hue step between consecutive track ids: the golden ratio conjugate spreads any run of ids
# evenly around the colour wheel (each new hue lands in the largest gap).
GOLDEN_HUE_STEP = 0.618033988749895
UNTRACKED_GREY = (0.6, 0.6, 0.6)
SUBPIXEL_BITS = 4  # cv2 drawing with 1/16 px precision
MAX_COORD = 1e6


def to_uint8(color: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.rint(np.asarray(color, dtype=np.float32) * 255), 0, 255).astype(np.uint8)


def overlay(image: np.ndarray, color: np.ndarray, mask: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Blend a rendering onto an image where ``mask`` is set.

    image: (H, W, 3) uint8; color: (H, W, 3) float in [0, 1] (``Rendering.color[i]``); mask:
    (H, W) bool or int (``Rendering.instance[i] > 0``); alpha in [0, 1]: 1 paints the meshes
    opaque, smaller values leave the image visible through them. Returns a new uint8 image.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if image.shape[:2] != mask.shape or color.shape != image.shape:
        raise ValueError(f"image {image.shape}, color {color.shape} and mask {mask.shape} differ in size")
    out = image.astype(np.float32) / 255
    on = np.asarray(mask).astype(bool)
    out[on] = alpha * np.asarray(color, dtype=np.float32)[on] + (1 - alpha) * out[on]
    return to_uint8(out)


def track_palette(track_ids: np.ndarray | Sequence[int], saturation: float = 0.65, value: float = 0.95) -> np.ndarray:
    """(N,) int track ids -> (N, 3) float RGB: one fixed, well-spread colour per id; ids < 0
    (no track) are grey. The same id gets the same colour in every frame and every run."""
    ids = np.asarray(track_ids, dtype=np.int64)
    hue = np.mod(ids * GOLDEN_HUE_STEP, 1.0)
    rgb = _hsv_to_rgb(hue, saturation, value)
    rgb[ids < 0] = UNTRACKED_GREY
    return rgb


def _hsv_to_rgb(hue: np.ndarray, saturation: float, value: float) -> np.ndarray:
    """Vectorised HSV -> RGB, hue in [0, 1)."""
    k = np.mod(np.array([5.0, 3.0, 1.0]) + hue[:, None] * 6, 6)
    return value - value * saturation * np.clip(np.minimum(k, 4 - k), 0, 1)


def draw_joints(image: np.ndarray, joints: np.ndarray, colors: np.ndarray,
                bones: Sequence[tuple[int, int]] = (), visible: np.ndarray | None = None,
                radius: int = 3, thickness: int = 2) -> np.ndarray:
    """Draw 2D joints (and bones between them) on a copy of ``image``.

    joints: (N, K, 2) continuous pixels; colors: (N, 3) float RGB per person; bones: (parent,
    child) joint pairs; visible: optional (N, K) bool, hidden joints (and their bones) skipped.
    Points outside the image are clipped by OpenCV. Returns the new uint8 image.
    """
    out = np.ascontiguousarray(image).copy()
    joints = np.asarray(joints, dtype=np.float64)
    shown = np.ones(joints.shape[:2], dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    shown = shown & np.isfinite(joints).all(axis=2)
    joints = np.nan_to_num(joints)
    # Fixed point with the pixel centre convention: cv2 puts integer coordinates on pixel centres.
    # Far-off points are clipped first so the fixed-point values stay within OpenCV's int32.
    fixed = np.rint((np.clip(joints, -MAX_COORD, MAX_COORD) - 0.5) * (1 << SUBPIXEL_BITS)).astype(np.int64)
    for person, color in enumerate(to_uint8(np.asarray(colors))):
        rgb = tuple(int(c) for c in color)
        for a, b in bones:
            if shown[person, a] and shown[person, b]:
                cv2.line(out, _point(fixed[person, a]), _point(fixed[person, b]), rgb, thickness,
                         cv2.LINE_AA, SUBPIXEL_BITS)
        for k in np.flatnonzero(shown[person]):
            cv2.circle(out, _point(fixed[person, k]), radius << SUBPIXEL_BITS, rgb, -1, cv2.LINE_AA,
                       SUBPIXEL_BITS)
    return out


def _point(xy: np.ndarray) -> tuple[int, int]:
    return int(xy[0]), int(xy[1])


def panel(images: Sequence[np.ndarray], height: int) -> np.ndarray:
    """Resize uint8 images to ``height`` (keeping aspect) and place them side by side."""
    if not images:
        raise ValueError("panel needs at least one image")
    resized = [cv2.resize(im, (max(1, round(im.shape[1] * height / im.shape[0])), height),
                          interpolation=cv2.INTER_AREA) for im in images]
    return np.concatenate(resized, axis=1)
