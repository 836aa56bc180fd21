"""Rendering of people's meshes: z-buffer rasterizer, shading, compositing and views, in plain torch.

Used by ``meshfleet synth`` (training scenes with exact masks and depth) and ``meshfleet render``
(overlays of results). Runs on the device of its inputs (CPU or CUDA), headless, no system libraries.
"""

from core.render.camera import PinholeCamera, canonical_camera, canonical_cameras
from core.render.compose import draw_joints, overlay, panel, to_uint8, track_palette
from core.render.rasterizer import Foreground, Fragments, RasterSettings, foreground, rasterize
from core.render.renderer import PeopleMeshes, Rendering, RenderSettings, render
from core.render.shading import Pattern, ShadingSettings, Stripes, SurfaceSample
from core.render.views import SIDE, TOP, View, fit_view

__all__ = [
    "SIDE", "TOP", "Foreground", "Fragments", "Pattern", "PeopleMeshes", "PinholeCamera", "RasterSettings",
    "RenderSettings", "Rendering", "ShadingSettings", "Stripes", "SurfaceSample", "View", "canonical_camera",
    "canonical_cameras", "draw_joints", "fit_view", "foreground", "overlay", "panel", "rasterize", "render",
    "to_uint8", "track_palette",
]
