"""A z-buffer triangle rasterizer in plain torch: exact, batched, bounded memory, CPU or CUDA.

Every triangle is expanded into the pixel centres of its bounding box (the box is tight, so a
triangle smaller than a pixel usually yields none or one), the screen-space barycentrics and the
inverse depth — both affine in the pixel position — are evaluated there, and the candidates
inside the triangle are reduced into a per-pixel minimum of one int64 key::

    key = float32_bits(depth) << 32 | face

Positive float32 numbers order like their bit patterns, so ``amin`` over the keys keeps the
nearest surface and, on a tie, the smallest face index: the result does not depend on the order
of the work (deterministic on CPU and CUDA), and depth and face id come from a single
``scatter_reduce``. Triangles are set up ``max_faces`` at a time and their pixels evaluated
``max_candidates`` at a time, so memory stays bounded whatever the batch (a single triangle larger
than the budget forms its own chunk: at most one image's worth of candidates). Not differentiable
(runs under ``torch.no_grad``).

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
# Integers below 2^24 are exact in float32.
FLOAT_EXACT = 1 << 24


@dataclass(frozen=True)
class RasterSettings:
    """near: metres; cull: which faces to drop (module docstring); max_faces: triangles set up
    at once (memory ~ 250 bytes each); max_candidates: pixel candidates evaluated at once (memory
    ~ 100 bytes each). The defaults keep the working set small enough for the CPU caches
    (measured with bench/bench_render.py) and peak memory near 100 MB."""

    near: float = 1e-2
    cull: Cull = "none"
    max_faces: int = 1 << 17
    max_candidates: int = 1 << 18

    def __post_init__(self) -> None:
        if self.cull not in ("none", "back", "front"):
            raise ValueError(f"cull must be 'none', 'back' or 'front', got {self.cull!r}")
        if self.near <= 0 or self.max_faces <= 0 or self.max_candidates <= 0:
            raise ValueError("near, max_faces and max_candidates must be positive")


@dataclass(frozen=True)
class Fragments:
    """What a pixel sees. face: (B, H, W) int64 index into the packed faces, -1 = background;
    depth: (B, H, W) float32 camera-frame z in metres, +inf = background."""

    face: torch.Tensor
    depth: torch.Tensor


@dataclass(frozen=True)
class _ScreenTriangles:
    """Triangles that reach at least one pixel centre, with their affine pixel functions.

    coeffs: (T, 9) float32 = (w0, w1, 1/z) each as (value at the box origin, d/dx, d/dy), where
    w0, w1 are the screen barycentrics of vertices 0 and 1 and the box origin is its first pixel
    centre; box_width, count: (T,) int64 pixels per box row and in all; base: (T,) int64 linear
    index of the origin pixel in the (B*H*W) buffer; face: (T,) int64 packed face index.
    """

    coeffs: torch.Tensor
    box_width: torch.Tensor
    count: torch.Tensor
    base: torch.Tensor
    face: torch.Tensor


def project_verts(verts: torch.Tensor, vert_image: torch.Tensor, camera: PinholeCamera) -> torch.Tensor:
    """Packed verts (Nv, 3) metres of images ``vert_image`` (Nv,) -> (Nv, 2) continuous pixels."""
    focal = camera.focal.to(verts).index_select(0, vert_image).unsqueeze(1)
    center = camera.center.to(verts).index_select(0, vert_image)
    return verts[:, :2] / verts[:, 2:].clamp_min(1e-12) * focal + center


def _screen_triangles(projected: tuple[torch.Tensor, torch.Tensor, torch.Tensor], faces: torch.Tensor,
                      first_face: int, vert_image: torch.Tensor, camera: PinholeCamera,
                      settings: RasterSettings) -> _ScreenTriangles:
    """projected: per vertex (u, v, z), each (Nv,); faces: (T, 3), the packed faces from
    ``first_face`` on."""
    # Structure of arrays (one 1D tensor per corner coordinate): torch's gathers and reductions
    # over small middle dimensions are several times slower on CPU than these elementwise ops.
    u, v, depth = projected
    corners = [faces[:, k].contiguous() for k in range(3)]
    x0, x1, x2 = (u.index_select(0, c) for c in corners)
    y0, y1, y2 = (v.index_select(0, c) for c in corners)
    z0, z1, z2 = (depth.index_select(0, c) for c in corners)
    # Pixel centres c + 0.5 inside [min, max]: c in [ceil(min - 0.5), floor(max - 0.5)].
    lo_x = torch.ceil(torch.minimum(torch.minimum(x0, x1), x2) - 0.5).clamp_min(0)
    lo_y = torch.ceil(torch.minimum(torch.minimum(y0, y1), y2) - 0.5).clamp_min(0)
    hi_x = torch.floor(torch.maximum(torch.maximum(x0, x1), x2) - 0.5).clamp_max(camera.width - 1)
    hi_y = torch.floor(torch.maximum(torch.maximum(y0, y1), y2) - 0.5).clamp_max(camera.height - 1)
    double_area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    keep = (hi_x >= lo_x) & (hi_y >= lo_y) & (torch.minimum(torch.minimum(z0, z1), z2) > settings.near)
    keep &= double_area.abs() > MIN_DOUBLE_AREA
    if settings.cull == "back":  # outward normal towards the camera <=> negative area with y down
        keep &= double_area < 0
    elif settings.cull == "front":
        keep &= double_area > 0
    face = keep.nonzero().squeeze(1)
    x0, y0, x1, y1, x2, y2, z0, z1, z2, lo_x, lo_y, hi_x, hi_y, double_area = (
        t.index_select(0, face) for t in (x0, y0, x1, y1, x2, y2, z0, z1, z2, lo_x, lo_y, hi_x, hi_y, double_area))
    inv_area = 1.0 / double_area
    ox, oy = lo_x + 0.5, lo_y + 0.5

    def barycentric(ax: torch.Tensor, ay: torch.Tensor, bx: torch.Tensor, by: torch.Tensor) -> list[torch.Tensor]:
        """(value at origin, d/dx, d/dy) of the barycentric of the vertex opposite edge a -> b."""
        dx, dy = (bx - ax) * inv_area, (by - ay) * inv_area
        return [dx * (oy - ay) - dy * (ox - ax), -dy, dx]

    w0, w1 = barycentric(x1, y1, x2, y2), barycentric(x2, y2, x0, y0)
    w2 = [1 - w0[0] - w1[0], -w0[1] - w1[1], -w0[2] - w1[2]]
    r0, r1, r2 = 1.0 / z0, 1.0 / z1, 1.0 / z2
    inv_depth = [a * r0 + b * r1 + c * r2 for a, b, c in zip(w0, w1, w2, strict=True)]
    coeffs = torch.stack(w0 + w1 + inv_depth, dim=1)
    box_width = (hi_x - lo_x + 1).long()
    count = box_width * (hi_y - lo_y + 1).long()
    image = vert_image.index_select(0, corners[0].index_select(0, face))
    base = (image * camera.height + lo_y.long()) * camera.width + lo_x.long()
    return _ScreenTriangles(coeffs, box_width, count, base, face + first_face)


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
    counts = tris.count[start:stop]
    total = int(counts.sum())
    device = zbuffer.device
    tri = torch.repeat_interleave(torch.arange(stop - start, device=device), counts, output_size=total)
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(total, device=device) - first.index_select(0, tri)
    box_width = tris.box_width[start:stop].index_select(0, tri)
    if total < FLOAT_EXACT:  # float division is exact here and much faster than int64 division
        fl, fw = local.float(), box_width.float()
        fy = torch.floor((fl + 0.5) / fw)
        fx = fl - fy * fw
    else:
        dy = torch.div(local, box_width, rounding_mode="floor")
        fx, fy = (local - dy * box_width).float(), dy.float()
    c = tris.coeffs[start:stop].index_select(0, tri)
    w0 = c[:, 0] + c[:, 1] * fx + c[:, 2] * fy
    w1 = c[:, 3] + c[:, 4] * fx + c[:, 5] * fy
    hit = ((w0 >= 0) & (w1 >= 0) & (w0 + w1 <= 1)).nonzero().squeeze(1)
    tri, fx, fy, c = tri.index_select(0, hit), fx.index_select(0, hit), fy.index_select(0, hit), c.index_select(0, hit)
    depth = 1.0 / (c[:, 6] + c[:, 7] * fx + c[:, 8] * fy)
    key = (depth.view(torch.int32).long() << FACE_BITS) | tris.face[start:stop].index_select(0, tri)
    pixel = tris.base[start:stop].index_select(0, tri) + fy.long() * width + fx.long()
    zbuffer.scatter_reduce_(0, pixel, key, reduce="amin")


@torch.no_grad()
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
    verts = verts.float()
    uv = project_verts(verts, vert_image, camera)
    projected = (uv[:, 0].contiguous(), uv[:, 1].contiguous(), verts[:, 2].contiguous())
    for first in range(0, faces.shape[0], settings.max_faces):
        tris = _screen_triangles(projected, faces[first:first + settings.max_faces], first, vert_image, camera,
                                 settings)
        for start, stop in _chunks(tris.count, settings.max_candidates):
            _reduce_chunk(tris, start, stop, width, zbuffer)
    background = zbuffer == BACKGROUND_KEY
    face = torch.where(background, -1, zbuffer & ((1 << FACE_BITS) - 1))
    depth = (zbuffer >> FACE_BITS).int().view(torch.float32)
    depth = torch.where(background, torch.inf, depth)
    shape = (count, height, width)
    return Fragments(face=face.view(shape), depth=depth.view(shape))


@dataclass(frozen=True)
class Foreground:
    """The K foreground pixels of a batch, in flat (B*H*W) order.

    pixel: (K,) int64 flat index; image: (K,) int64; u, v: (K,) float32 pixel-centre coordinates;
    face: (K,) int64 packed face; weights: (K, 3) float32 perspective-correct barycentrics summing
    to 1, so that a vertex attribute a interpolates as ``sum_i weights[:, i] * a[faces[face, i]]``.
    """

    pixel: torch.Tensor
    image: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    face: torch.Tensor
    weights: torch.Tensor


@torch.no_grad()
def foreground(fragments: Fragments, verts: torch.Tensor, faces: torch.Tensor, vert_image: torch.Tensor,
               camera: PinholeCamera) -> Foreground:
    """The foreground pixels of ``fragments`` with their barycentrics; same packed inputs as
    :func:`rasterize`."""
    face_flat = fragments.face.reshape(-1)
    pixel = (face_flat >= 0).nonzero().squeeze(1)
    face = face_flat.index_select(0, pixel)
    image, rest = pixel // (camera.height * camera.width), pixel % (camera.height * camera.width)
    row = rest // camera.width
    u, v = (rest - row * camera.width).float() + 0.5, row.float() + 0.5
    uv = project_verts(verts.float(), vert_image, camera)
    depth = verts[:, 2].float()
    corners = [faces[:, k].index_select(0, face) for k in range(3)]
    xs = [uv[:, 0].index_select(0, c) for c in corners]
    ys = [uv[:, 1].index_select(0, c) for c in corners]

    def edge(a: int, b: int) -> torch.Tensor:
        return (xs[b] - xs[a]) * (v - ys[a]) - (ys[b] - ys[a]) * (u - xs[a])

    # Screen barycentrics (up to the common area factor) divided by depth, then normalised:
    # attributes interpolate linearly in 1/z-weighted screen space under perspective.
    weights = torch.stack([edge(1, 2) / depth.index_select(0, corners[0]),
                           edge(2, 0) / depth.index_select(0, corners[1]),
                           edge(0, 1) / depth.index_select(0, corners[2])], dim=1)
    return Foreground(pixel, image, u, v, face, weights / weights.sum(dim=1, keepdim=True))
