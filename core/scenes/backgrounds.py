"""Backgrounds behind the people, compositing, and image degradations (all (H, W, 3) float RGB in [0, 1]).

``floor`` is perspective-correct: every pixel's viewing ray is intersected with the scene's ground
plane, so the tiles recede toward the horizon the people stand on.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.scenes.record import Camera, Look

HORIZON_HAZE_M = 40.0  # distance over which floor tiles fade into the wall colour


def _gradient(height: int, width: int, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    return np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).copy()


def _value_noise(height: int, width: int, cell_px: float, seed: int) -> np.ndarray:
    """(H, W) smooth noise in [0, 1]: a random grid of ``cell_px`` cells, bicubically upsampled, two octaves."""
    rng = np.random.default_rng(seed)
    out = np.zeros((height, width))
    for octave, weight in ((1.0, 0.65), (0.35, 0.35)):
        cell = max(2.0, cell_px * octave)
        grid = rng.random((int(height / cell) + 3, int(width / cell) + 3)).astype(np.float32)
        big = cv2.resize(grid, (int(grid.shape[1] * cell), int(grid.shape[0] * cell)), interpolation=cv2.INTER_CUBIC)
        out += weight * big[:height, :width]
    return np.clip(out, 0.0, 1.0)


def _floor(camera: Camera, look: Look) -> np.ndarray:
    """Checkered floor of ``look.scale`` m tiles below the horizon, a gradient wall above it."""
    h, w = camera.height, camera.width
    cx, cy = camera.principal_point
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([(u - cx) / camera.focal, (v - cy) / camera.focal, np.ones_like(u)], axis=-1)
    level = rays @ camera.level_from_camera().T  # y along gravity
    down = level[..., 1]
    hit = down > 1e-6
    t = np.where(hit, camera.height_m / np.maximum(down, 1e-6), 0.0)
    gx, gz = level[..., 0] * t, level[..., 2] * t
    tiles = (np.floor(gx / look.scale) + np.floor(gz / look.scale)) % 2
    a, b = np.array(look.colors[0]), np.array(look.colors[1])
    floor = np.where(tiles[..., None] > 0, a, 0.55 * a + 0.45 * b)
    wall = _gradient(h, w, b * 0.9, b * 0.6 + 0.2)
    haze = np.clip(np.hypot(gx, gz) / HORIZON_HAZE_M, 0.0, 1.0)[..., None]
    floor = floor * (1 - haze) + wall * haze
    return np.where(hit[..., None], floor, wall)


def crop_window(image_hw: tuple[int, int], target_hw: tuple[int, int], crop: tuple[float, float, float]
                ) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a window with the target's aspect ratio, ``crop[2]`` times the largest one,
    placed at fractions (crop[0], crop[1]) of the room left around it."""
    ih, iw = image_hw
    aspect = target_hw[1] / target_hw[0]
    win_w = min(iw, ih * aspect) * crop[2]
    win_h = win_w / aspect
    x0, y0 = (iw - win_w) * crop[0], (ih - win_h) * crop[1]
    return int(x0), int(y0), max(int(x0) + 1, int(x0 + win_w)), max(int(y0) + 1, int(y0 + win_h))


def make_background(camera: Camera, look: Look, folder_image: np.ndarray | None = None) -> np.ndarray:
    """The scene's background, (H, W, 3) float32 RGB. ``folder_image`` (h, w, 3) uint8 RGB is needed
    for ``look.background == 'folder'``."""
    h, w = camera.height, camera.width
    a, b = np.array(look.colors[0]), np.array(look.colors[1])
    if look.background == "folder":
        if folder_image is None:
            raise ValueError("a 'folder' background needs the background image")
        x0, y0, x1, y1 = crop_window(folder_image.shape[:2], (h, w), look.crop)
        window = folder_image[y0:y1, x0:x1].astype(np.float32) / 255.0
        return cv2.resize(window, (w, h), interpolation=cv2.INTER_AREA)
    if look.background == "noise":
        noise = _value_noise(h, w, look.scale * 0.1 * max(h, w), look.texture_seed)[..., None]
        image = a * (1 - noise) + b * noise
    elif look.background == "floor":
        image = _floor(camera, look)
    else:
        image = _gradient(h, w, a, b)
    return image.astype(np.float32)


def composite(colour: np.ndarray, ids: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Rendered people (H, W, 3) over the background where ``ids`` (H, W) > 0."""
    return np.where(ids[..., None] > 0, colour, background).astype(np.float32)


def degrade(image: np.ndarray, look: Look, seed: int) -> np.ndarray:
    """Gaussian blur (``look.blur_sigma`` px) and pixel noise (``look.noise_sigma`` 8-bit levels, drawn
    from ``seed``) -> (H, W, 3) uint8 RGB."""
    out: np.ndarray = image.astype(np.float32)
    if look.blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), look.blur_sigma)
    out = out * np.float32(255.0)
    if look.noise_sigma > 0:
        out += np.random.default_rng(seed).standard_normal(out.shape, dtype=np.float32) * np.float32(look.noise_sigma)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
