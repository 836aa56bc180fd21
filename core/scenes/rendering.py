"""The one place where scene sampling meets the renderer (:mod:`core.render`).

A frame is one ``render`` call (colour, depth, instance ids of all people); the pixels each person
covers alone (for occlusion) come from one batched ``rasterize`` call with every person in an image
of their own. The scene's light and tint become the renderer's shading settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.render import PeopleMeshes, PinholeCamera, RasterSettings, RenderSettings, ShadingSettings, rasterize, render
from core.scenes.record import Camera, Look


@dataclass
class RenderedFrame:
    """colour (H, W, 3) float32 shaded RGB in [0, 1] (meaningful where ids > 0); depth (H, W) float32
    camera z in metres (inf on the background); ids (H, W) int32: 0 background, person index + 1."""

    colour: np.ndarray
    depth: np.ndarray
    ids: np.ndarray


def _cameras(camera: Camera, count: int) -> PinholeCamera:
    cx, cy = camera.principal_point
    return PinholeCamera(torch.full((count,), camera.focal, dtype=torch.float32),
                         torch.tensor([[cx, cy]], dtype=torch.float32).expand(count, 2).contiguous(),
                         camera.height, camera.width)


def render_people(verts: np.ndarray, faces: np.ndarray, colors: np.ndarray, camera: Camera, look: Look
                  ) -> RenderedFrame:
    """P people (verts (P, V, 3) camera frame, faces (F, 3), colors (P, V, 3) albedo) -> one frame, lit
    by the scene's light (the tint multiplies the albedo: Lambert shading is linear in it)."""
    tint = np.asarray(look.tint, np.float32)
    meshes = PeopleMeshes.from_images([torch.from_numpy(np.ascontiguousarray(verts, np.float32))],
                                      torch.from_numpy(faces), [torch.from_numpy(colors * tint)])
    shading = ShadingSettings(light_direction=look.light_dir, ambient=look.ambient, diffuse=look.diffuse)
    out = render(meshes, _cameras(camera, 1), RenderSettings(shading=shading))
    return RenderedFrame(out.color[0].numpy(), out.depth[0].numpy(), out.instance[0].numpy().astype(np.int32))


def solo_pixel_counts(verts: np.ndarray, faces: np.ndarray, camera: Camera) -> np.ndarray:
    """(P,) pixels inside the image that each person covers when rendered alone (no occluders)."""
    count, num_verts = verts.shape[:2]
    if count == 0:
        return np.zeros(0, np.int64)
    packed = torch.from_numpy(np.ascontiguousarray(verts, np.float32)).reshape(-1, 3)
    offsets = torch.arange(count).view(-1, 1, 1) * num_verts
    packed_faces = (torch.from_numpy(faces).unsqueeze(0) + offsets).reshape(-1, 3)
    fragments = rasterize(packed, packed_faces, torch.arange(count).repeat_interleave(num_verts),
                          _cameras(camera, count), RasterSettings())
    return (fragments.face >= 0).flatten(1).sum(dim=1).numpy().astype(np.int64)
