"""A z-buffer triangle rasterizer in plain torch: exact, batched, bounded memory, CPU or CUDA.

Every triangle is expanded into the pixel centres of its bounding box (the box is tight, so a
triangle smaller than a pixel usually yields none or one), the screen-space barycentrics and the
inverse depth — both affine in the pixel position — are evaluated there, and the candidates
inside the triangle are reduced into a per-pixel minimum of one int64 key::

    key = float32_bits(depth) << 32 | face

Positive float32 numbers order like their bit patterns, so ``amin`` over the keys keeps the
nearest surface and, on a tie, the smallest face index: the result does not depend on the order
of the work (deterministic on CPU and CUDA), and depth and face id come from a single
``scatter_reduce``. Triangles are processed in chunks of at most ``max_candidates`` pixel
candidates, so memory stays bounded whatever the scene (a single triangle larger than the budget
forms its own chunk: at most one image's worth of candidates).

Conventions (see :mod:`core.render.camera`): pixel (r, c) is sampled at (c + 0.5, r + 0.5);
a sample on a triangle's edge counts as inside (shared edges are covered by both neighbours and
the z-buffer picks one). Depth is the camera-frame z of the surface, interpolated perspective-
correctly (1/z is affine in screen space). Triangles with a vertex closer than ``near`` are
dropped, not clipped: meshes must lie in front of the camera (people do).

Back faces: ``cull="none"`` (default) rasterizes both sides, so open meshes (planes, clothing
shells) are seen from behind too and closed meshes need no consistent winding. ``cull="back"``
drops triangles whose outward normal (right-hand rule on the face's vertex order, the SMPL
convention: a face towards the camera then runs counter-clockwise in the displayed image) points
away from the camera: a closed, consistently wound mesh renders the same (up to sub-pixel
silhouette samples), with half the work. ``cull="front"`` drops the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from core.render.camera import PinholeCamera

Cull = Literal["none", "back", "front"]
BACKGROUND_KEY = torch.iinfo(torch.int64).max
FACE_BITS = 32
# Triangles whose doubled screen area is below this (px^2) cover no pixel centre reliably.
MIN_DOUBLE_AREA = 1e-9


@dataclass(frozen=True)
class RasterSettings:
    """near: metres; cull: which faces to drop (module docstring); max_candidates: pixel
    candidates evaluated at once (memory ~ 60 bytes each)."""

    near: float = 1e-2
    cull: Cull = "none"
    max_candidates: int = 1 << 21

    def __post_init__(self) -> None:
        if self.cull not in ("none", "back", "front"):
            raise ValueError(f"cull must be 'none', 'back' or 'front', got {self.cull!r}")
        if self.near <= 0 or self.max_candidates <= 0:
            raise ValueError("near and max_candidates must be positive")


@dataclass(frozen=True)
class Fragments:
    """What a pixel sees. face: (B, H, W) int64 index into the packed faces, -1 = background;
    depth: (B, H, W) float32 camera-frame z in metres, +inf = background."""

    face: torch.Tensor
    depth: torch.Tensor

    @property
    def foreground(self) -> torch.Tensor:
        return self.face >= 0


@dataclass(frozen=True)
class _ScreenTriangles:
    """Triangles that reach at least one pixel centre, with their affine pixel functions.

    coeffs: (T, 9) float32 = (w0, w1, 1/z) each as (value at the box origin, d/dx, d/dy), where
    w0, w1 are the screen barycentrics of vertices 0 and 1; origin: (T, 2) int64 first pixel
    (column, row) of the box; size: (T, 2) int64 box (width, height) in pixels; base: (T,) int64
    linear index of the origin pixel in the (B*H*W) buffer; face: (T,) int64 packed face index.
    """

    coeffs: torch.Tensor
    origin: torch.Tensor
    size: torch.Tensor
    base: torch.Tensor
    face: torch.Tensor


def project_verts(verts: torch.Tensor, vert_image: torch.Tensor, camera: PinholeCamera) -> torch.Tensor:
    """Packed verts (Nv, 3) metres of images ``vert_image`` (Nv,) -> (Nv, 2) continuous pixels."""
    focal = camera.focal.to(verts)[vert_image].unsqueeze(1)
    center = camera.center.to(verts)[vert_image]
    return verts[:, :2] / verts[:, 2:].clamp_min(1e-12) * focal + center


def _screen_triangles(verts: torch.Tensor, faces: torch.Tensor, vert_image: torch.Tensor, camera: PinholeCamera,
                      settings: RasterSettings) -> _ScreenTriangles:
    height, width = camera.height, camera.width
    xy = project_verts(verts, vert_image, camera)[faces]  # (T, 3, 2)
    # Pixel centres c + 0.5 inside [min, max]: c in [ceil(min - 0.5), floor(max - 0.5)].
    lo = torch.ceil(xy.amin(dim=1) - 0.5).clamp_min(0)
    hi = torch.floor(xy.amax(dim=1) - 0.5)
    hi = torch.minimum(hi, torch.tensor([width - 1.0, height - 1.0], dtype=xy.dtype, device=xy.device))
    z = verts[:, 2][faces]
    keep = (hi >= lo).all(dim=1) & (z > settings.near).all(dim=1)
    face = keep.nonzero().squeeze(1)
    xy, z, lo, hi = xy[face], z[face], lo[face], hi[face]
    p0, p1, p2 = xy[:, 0], xy[:, 1], xy[:, 2]
    double_area = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])
    keep = double_area.abs() > MIN_DOUBLE_AREA
    if settings.cull == "back":  # outward normal towards the camera <=> negative area with y down
        keep &= double_area < 0
    elif settings.cull == "front":
        keep &= double_area > 0
    kept = keep.nonzero().squeeze(1)
    face, p0, p1, p2, z, lo, hi = face[kept], p0[kept], p1[kept], p2[kept], z[kept], lo[kept], hi[kept]
    inv_area = 1.0 / double_area[kept]
    origin_xy = lo + 0.5

    def barycentric(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(value at origin, d/dx, d/dy) of the barycentric of the vertex opposite edge a -> b."""
        dx, dy = (b[:, 0] - a[:, 0]) * inv_area, (b[:, 1] - a[:, 1]) * inv_area
        value = dx * (origin_xy[:, 1] - a[:, 1]) - dy * (origin_xy[:, 0] - a[:, 0])
        return torch.stack([value, -dy, dx], dim=1)

    w0, w1 = barycentric(p1, p2), barycentric(p2, p0)
    w2 = torch.stack([1 - w0[:, 0] - w1[:, 0], -w0[:, 1] - w1[:, 1], -w0[:, 2] - w1[:, 2]], dim=1)
    inv_z = 1.0 / z
    inv_depth = w0 * inv_z[:, :1] + w1 * inv_z[:, 1:2] + w2 * inv_z[:, 2:]
    origin = lo.long()
    base = (vert_image[faces[face, 0]] * height + origin[:, 1]) * width + origin[:, 0]
    size = (hi - lo + 1).long()
    return _ScreenTriangles(torch.cat([w0, w1, inv_depth], dim=1), origin, size, base, face)


def _chunks(counts: torch.Tensor, budget: int) -> list[tuple[int, int]]:
    """Split triangles (in order) into [start, stop) ranges of at most ``budget`` candidates."""
    ends = torch.cumsum(counts, 0)
    bounds: list[tuple[int, int]] = []
    start, done, total = 0, 0, int(ends[-1]) if len(ends) else 0
    while done < total:
        stop = int(torch.searchsorted(ends, done + budget, right=True))
        stop = max(stop, start + 1)  # one oversized triangle forms its own chunk
        bounds.append((start, stop))
        done = int(ends[stop - 1])
        start = stop
    return bounds


def _reduce_chunk(tris: _ScreenTriangles, start: int, stop: int, width: int, zbuffer: torch.Tensor) -> None:
    """Evaluate the candidates of triangles [start, stop) and min-reduce them into ``zbuffer``."""
    size = tris.size[start:stop]
    counts = size[:, 0] * size[:, 1]
    total = int(counts.sum())
    device = zbuffer.device
    tri = torch.repeat_interleave(torch.arange(stop - start, device=device), counts, output_size=total)
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(total, device=device) - first[tri]
    box_width = size[tri, 0]
    dy = torch.div(local, box_width, rounding_mode="floor")
    dx = local - dy * box_width
    c = tris.coeffs[start:stop][tri]
    fx, fy = dx.to(c.dtype), dy.to(c.dtype)
    w0 = c[:, 0] + c[:, 1] * fx + c[:, 2] * fy
    w1 = c[:, 3] + c[:, 4] * fx + c[:, 5] * fy
    inside = (w0 >= 0) & (w1 >= 0) & (w0 + w1 <= 1)
    hit = inside.nonzero().squeeze(1)
    tri, dx, dy, fx, fy, c = tri[hit], dx[hit], dy[hit], fx[hit], fy[hit], c[hit]
    depth = 1.0 / (c[:, 6] + c[:, 7] * fx + c[:, 8] * fy)
    key = (depth.view(torch.int32).long() << FACE_BITS) | tris.face[start:stop][tri]
    pixel = tris.base[start:stop][tri] + dy * width + dx
    zbuffer.scatter_reduce_(0, pixel, key, reduce="amin")


def rasterize(verts: torch.Tensor, faces: torch.Tensor, vert_image: torch.Tensor, camera: PinholeCamera,
              settings: RasterSettings = RasterSettings()) -> Fragments:
    """Rasterize packed triangles into the B images of ``camera``.

    verts: (Nv, 3) float camera-frame metres; faces: (T, 3) int64 indices into ``verts``;
    vert_image: (Nv,) int64 image of each vertex in [0, B) (a face is drawn in the image of its
    first vertex). Runs on the device of ``verts``.
    Returns :class:`Fragments` of shape (B, H, W).
    """
    if faces.shape[0] >= 1 << (FACE_BITS - 1):
        raise ValueError(f"at most 2^31 faces per call, got {faces.shape[0]}")
    height, width, count = camera.height, camera.width, camera.batch_size
    device = verts.device
    zbuffer = torch.full((count * height * width,), BACKGROUND_KEY, dtype=torch.int64, device=device)
    if faces.shape[0]:
        tris = _screen_triangles(verts.float(), faces, vert_image, camera, settings)
        for start, stop in _chunks(tris.size[:, 0] * tris.size[:, 1], settings.max_candidates):
            _reduce_chunk(tris, start, stop, width, zbuffer)
    background = zbuffer == BACKGROUND_KEY
    face = torch.where(background, -1, zbuffer & ((1 << FACE_BITS) - 1))
    depth = (zbuffer >> FACE_BITS).int().view(torch.float32)
    depth = torch.where(background, torch.inf, depth)
    shape = (count, height, width)
    return Fragments(face=face.view(shape), depth=depth.view(shape))


def pixel_barycentrics(fragments: Fragments, verts: torch.Tensor, faces: torch.Tensor, vert_image: torch.Tensor,
                       camera: PinholeCamera) -> tuple[torch.Tensor, torch.Tensor]:
    """Perspective-correct barycentrics of the foreground pixels.

    Same packed inputs as :func:`rasterize`. Returns (pixel (K,) int64 flat index into the
    (B*H*W) image grid, weights (K, 3) float32 summing to 1), K = number of foreground pixels,
    so that a vertex attribute a interpolates as ``sum_i weights[:, i] * a[faces[face, i]]``.
    """
    face_flat = fragments.face.reshape(-1)
    pixel = (face_flat >= 0).nonzero().squeeze(1)
    face = face_flat[pixel]
    corners = faces[face]
    xy = project_verts(verts.float(), vert_image, camera)[corners]
    z = verts[:, 2].float()[corners]
    column = (pixel % camera.width).to(xy.dtype) + 0.5
    row = (pixel // camera.width % camera.height).to(xy.dtype) + 0.5
    p0, p1, p2 = xy[:, 0], xy[:, 1], xy[:, 2]

    def edge(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (b[:, 0] - a[:, 0]) * (row - a[:, 1]) - (b[:, 1] - a[:, 1]) * (column - a[:, 0])

    screen = torch.stack([edge(p1, p2), edge(p2, p0), edge(p0, p1)], dim=1)  # proportional to area
    weights = screen / z  # perspective correction: interpolate w / z, then normalise
    return pixel, weights / weights.sum(dim=1, keepdim=True)
