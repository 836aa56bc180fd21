"""The one place where scene sampling meets the renderer.

TEMPORARY GLUE: until core's renderer lands, ``render_people`` splats vertices into a z-buffer (no
triangles). Replace the two functions' bodies by calls to the renderer; their signatures stay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.scenes.record import Camera, Look


@dataclass
class RenderedFrame:
    """colour (H, W, 3) float32 shaded RGB in [0, 1] (meaningful where ids > 0); depth (H, W) float32
    camera z in metres (inf on the background); ids (H, W) int32: 0 background, person index + 1."""

    colour: np.ndarray
    depth: np.ndarray
    ids: np.ndarray


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(P, V, 3), (F, 3) -> (P, V, 3) unit area-weighted vertex normals."""
    tri = verts[:, faces]
    face_n = np.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])
    normals = np.zeros_like(verts)
    for k in range(3):
        for p in range(len(verts)):
            np.add.at(normals[p], faces[:, k], face_n[p])
    return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


def shade(colors: np.ndarray, normals: np.ndarray, look: Look) -> np.ndarray:
    """Lambert shading with ambient light and a tint; normals facing away from the light get ambient."""
    lambert = np.clip(-(normals @ np.asarray(look.light_dir)), 0.0, 1.0)[..., None]
    return np.clip(colors * (look.ambient + look.diffuse * lambert) * np.asarray(look.tint), 0.0, 1.0)


def _splat(points: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    uv = camera.project(points)
    col, row = np.floor(uv[..., 0]).astype(np.int64), np.floor(uv[..., 1]).astype(np.int64)
    inside = (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height) & (points[..., 2] > 1e-3)
    return row, col, inside


def render_people(verts: np.ndarray, faces: np.ndarray, colors: np.ndarray, camera: Camera, look: Look
                  ) -> RenderedFrame:
    """P people (verts (P, V, 3) camera frame, faces (F, 3), colors (P, V, 3) albedo) -> one frame."""
    h, w = camera.height, camera.width
    depth = np.full(h * w, np.inf, np.float32)
    ids = np.zeros(h * w, np.int32)
    colour = np.zeros((h * w, 3), np.float32)
    if len(verts):
        shaded = shade(colors, vertex_normals(verts, faces), look)
        row, col, inside = _splat(verts, camera)
        person = np.broadcast_to(np.arange(len(verts))[:, None], inside.shape)
        pix, z = (row * w + col)[inside], verts[..., 2][inside]
        order = np.lexsort((-z, pix))  # per pixel, nearest last
        pix, z = pix[order], z[order]
        depth[pix] = z
        ids[pix] = person[inside][order] + 1
        colour[pix] = shaded[inside][order]
    return RenderedFrame(colour.reshape(h, w, 3), depth.reshape(h, w), ids.reshape(h, w))


def solo_pixel_counts(verts: np.ndarray, faces: np.ndarray, camera: Camera) -> np.ndarray:
    """(P,) pixels inside the image that each person covers when rendered alone (no occluders)."""
    counts = np.zeros(len(verts), np.int64)
    for p in range(len(verts)):
        row, col, inside = _splat(verts[p:p + 1], camera)
        counts[p] = len(np.unique((row * camera.width + col)[inside]))
    return counts
