"""Render people's meshes into colour, depth and instance-id images: the one entry point.

    meshes = PeopleMeshes.from_images([verts_img0, verts_img1], faces, colors=...)
    out = render(meshes, canonical_cameras([(h, w), (h, w)]))
    out.color (B, H, W, 3) · out.depth (B, H, W) · out.instance (B, H, W)

``instance`` is the mask contract of ``meshfleet synth``: 0 = background, else the person's index
within its image + 1 (people in the order they were given for that image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from core.render.camera import PinholeCamera
from core.render.rasterizer import Foreground, Fragments, RasterSettings, foreground, rasterize
from core.render.shading import (
    Pattern,
    ShadingSettings,
    SurfaceSample,
    face_normals,
    lambert,
    towards_camera,
    vertex_normals,
)

DEFAULT_COLOR = (0.65, 0.74, 0.86)


@dataclass(frozen=True)
class PeopleMeshes:
    """All people of a batch of images, with one shared topology.

    verts: (N, V, 3) float camera-frame metres; faces: (F, 3) int64; image: (N,) int64 image of
    each person in [0, B); colors: (N, 3) per-person or (N, V, 3) per-vertex RGB in [0, 1];
    attributes: optional (N, V, C) per-vertex values interpolated for a :data:`Pattern`.
    """

    verts: torch.Tensor
    faces: torch.Tensor
    image: torch.Tensor
    colors: torch.Tensor
    attributes: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n, v = self.verts.shape[:2]
        if self.verts.ndim != 3 or self.verts.shape[2] != 3:
            raise ValueError(f"verts must be (N, V, 3), got {tuple(self.verts.shape)}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3), got {tuple(self.faces.shape)}")
        if self.image.shape != (n,):
            raise ValueError(f"image must be ({n},), got {tuple(self.image.shape)}")
        if self.colors.shape not in ((n, 3), (n, v, 3)):
            raise ValueError(f"colors must be ({n}, 3) or ({n}, {v}, 3), got {tuple(self.colors.shape)}")
        if self.attributes is not None and self.attributes.shape[:2] != (n, v):
            raise ValueError(f"attributes must be ({n}, {v}, C), got {tuple(self.attributes.shape)}")

    @classmethod
    def from_images(cls, verts: Sequence[torch.Tensor], faces: torch.Tensor,
                    colors: Sequence[torch.Tensor] | None = None,
                    attributes: Sequence[torch.Tensor] | None = None) -> PeopleMeshes:
        """Per image, (P_i, V, 3) verts (P_i may be 0) and optionally (P_i, 3) or (P_i, V, 3)
        colors (one form for all images) and (P_i, V, C) attributes -> one batch on the device of
        the verts; person p of image i gets instance id p + 1."""
        if not verts:
            num_verts = int(faces.max()) + 1 if faces.numel() else 0
            verts = [torch.zeros(0, num_verts, 3, device=faces.device)]
        device = verts[0].device
        flat = torch.cat([v.float() for v in verts])
        image = torch.repeat_interleave(torch.arange(len(verts), device=device),
                                        torch.tensor([len(v) for v in verts], device=device))
        if colors is None:
            rgb = torch.tensor(DEFAULT_COLOR, device=device).expand(len(flat), 3)
        else:
            rgb = torch.cat([c.float() for c in colors]).to(device)
        extra = None if attributes is None else torch.cat([a.float() for a in attributes]).to(device)
        return cls(flat, faces.long().to(device), image, rgb, extra)

    def person_in_image(self) -> torch.Tensor:
        """(N,) int64 index of each person among the people of its image, in batch order."""
        n = self.image.shape[0]
        order = torch.argsort(self.image, stable=True)
        sorted_image = self.image[order]
        first = torch.searchsorted(sorted_image, sorted_image)  # first row of the same image
        rank = torch.arange(n, device=self.image.device) - first
        return torch.empty_like(rank).scatter_(0, order, rank)


@dataclass(frozen=True)
class RenderSettings:
    """raster: z-buffer settings (culling, near plane, memory); shading: light and colours;
    barycentrics: also return per-pixel perspective-correct barycentrics."""

    raster: RasterSettings = field(default_factory=RasterSettings)
    shading: ShadingSettings = field(default_factory=ShadingSettings)
    barycentrics: bool = False


@dataclass(frozen=True)
class Rendering:
    """color: (B, H, W, 3) float32 RGB in [0, 1]; depth: (B, H, W) float32 camera-frame z in
    metres, +inf = background; instance: (B, H, W) int64, 0 = background, else person index within
    the image + 1; face: (B, H, W) int64 face of that person's mesh, -1 = background;
    barycentrics: (B, H, W, 3) float32 perspective-correct weights (zero on background), if asked."""

    color: torch.Tensor
    depth: torch.Tensor
    instance: torch.Tensor
    face: torch.Tensor
    barycentrics: torch.Tensor | None = None


@torch.no_grad()
def render(meshes: PeopleMeshes, camera: PinholeCamera, settings: RenderSettings = RenderSettings(),
           pattern: Pattern | None = None) -> Rendering:
    """Render ``meshes`` into the ``camera.batch_size`` images of ``camera``, on the meshes' device.

    Deterministic: depth, face and instance ids are integer min-reductions (same on every run and,
    up to float rounding at shared edges, on CPU and CUDA); on CUDA the smooth normals' float
    atomics may change colours in the last bits. Not differentiable.
    """
    if meshes.image.numel() and int(meshes.image.max()) >= camera.batch_size:
        raise ValueError(f"a person is in image {int(meshes.image.max())}, but there are {camera.batch_size} cameras")
    num_people, num_verts = meshes.verts.shape[:2]
    num_faces = max(meshes.faces.shape[0], 1)
    device = meshes.verts.device
    camera = camera.to(device)
    offsets = torch.arange(num_people, device=device).view(-1, 1, 1) * num_verts
    packed_faces = (meshes.faces.unsqueeze(0) + offsets).reshape(-1, 3)
    vert_image = meshes.image.repeat_interleave(num_verts)
    packed_verts = meshes.verts.reshape(-1, 3).float()
    fragments = rasterize(packed_verts, packed_faces, vert_image, camera, settings.raster)
    seen = foreground(fragments, packed_verts, packed_faces, vert_image, camera)
    person = torch.div(seen.face, num_faces, rounding_mode="floor")
    face = seen.face - person * num_faces
    shape = fragments.face.shape
    color = _background(camera, settings.shading, device)
    color.view(-1, 3)[seen.pixel] = _shade(meshes, person, face, seen, fragments, camera, settings.shading, pattern)
    instance = torch.zeros(fragments.face.numel(), dtype=torch.long, device=device)
    instance[seen.pixel] = meshes.person_in_image().index_select(0, person) + 1
    local_face = torch.full_like(instance, -1)
    local_face[seen.pixel] = face
    bary = None
    if settings.barycentrics:
        bary = torch.zeros(fragments.face.numel(), 3, device=device)
        bary[seen.pixel] = seen.weights
        bary = bary.view(*shape, 3)
    return Rendering(color, fragments.depth, instance.view(shape), local_face.view(shape), bary)


def _background(camera: PinholeCamera, shading: ShadingSettings, device: torch.device) -> torch.Tensor:
    rgb = torch.tensor(shading.background, dtype=torch.float32, device=device)
    return rgb.expand(camera.batch_size, camera.height, camera.width, 3).contiguous()


def _shade(meshes: PeopleMeshes, person: torch.Tensor, face: torch.Tensor, seen: Foreground, fragments: Fragments,
           camera: PinholeCamera, shading: ShadingSettings, pattern: Pattern | None) -> torch.Tensor:
    """Lit RGB (K, 3) of the K foreground pixels."""
    num_verts = meshes.verts.shape[1]
    # Rows of the seen corners in the (N*V) flattened per-vertex tables, (K, 3).
    rows = meshes.faces.index_select(0, face) + (person * num_verts).unsqueeze(1)

    def interpolate(per_vertex: torch.Tensor) -> torch.Tensor:
        """(N, V, C) -> (K, C) at the pixels, with the perspective-correct weights."""
        table = per_vertex.reshape(-1, per_vertex.shape[-1])
        values = table.index_select(0, rows.reshape(-1)).view(-1, 3, table.shape[1])
        w = seen.weights
        return values[:, 0] * w[:, :1] + values[:, 1] * w[:, 1:2] + values[:, 2] * w[:, 2:]

    points = _pixel_points(fragments, seen, camera)
    if shading.smooth:
        normals = torch.nn.functional.normalize(interpolate(vertex_normals(meshes.verts, meshes.faces)), dim=1)
    else:
        table = face_normals(meshes.verts, meshes.faces).reshape(-1, 3)
        normals = table.index_select(0, person * meshes.faces.shape[0] + face)
    normals = towards_camera(normals, points)
    colors = meshes.colors.index_select(0, person) if meshes.colors.ndim == 2 else interpolate(meshes.colors)
    if pattern is not None:
        attributes = None if meshes.attributes is None else interpolate(meshes.attributes)
        colors = pattern(SurfaceSample(person, face, seen.weights, points, normals, colors, attributes))
    return lambert(colors, normals, shading)


def _pixel_points(fragments: Fragments, seen: Foreground, camera: PinholeCamera) -> torch.Tensor:
    """(K, 3) camera-frame points seen at the foreground pixel centres."""
    z = fragments.depth.reshape(-1).index_select(0, seen.pixel)
    focal = camera.focal.index_select(0, seen.image)
    center = camera.center.index_select(0, seen.image)
    return torch.stack([(seen.u - center[:, 0]) / focal * z, (seen.v - center[:, 1]) / focal * z, z], dim=1)
