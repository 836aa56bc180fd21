"""Surface colour of the visible pixels: base colours, procedural patterns, Lambert + ambient light.

All functions work on the K foreground pixels of a batch (flat tensors), in the camera frame
(x right, y down, z forward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ShadingSettings:
    """light_direction: camera-frame vector from the surface towards the light (normalised when
    used; the default comes from above and behind the camera); ambient + diffuse: the Lambert
    terms (a surface facing the light gets base colour x (ambient + diffuse)); smooth: interpolate
    vertex normals (else one flat normal per face); background: RGB in [0, 1]."""

    light_direction: tuple[float, float, float] = (0.0, -0.5, -1.0)
    ambient: float = 0.4
    diffuse: float = 0.6
    smooth: bool = True
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if sum(c * c for c in self.light_direction) == 0:
            raise ValueError("light_direction must be non-zero")
        if self.ambient < 0 or self.diffuse < 0:
            raise ValueError("ambient and diffuse must be >= 0")


@dataclass(frozen=True)
class SurfaceSample:
    """The surface seen by K foreground pixels, handed to a :data:`Pattern`.

    person: (K,) int64 row of the person in the mesh batch; face: (K,) int64 face of that person's
    mesh; weights: (K, 3) perspective-correct barycentrics; points: (K, 3) camera-frame metres;
    normals: (K, 3) unit, turned towards the camera; colors: (K, 3) base RGB in [0, 1];
    attributes: (K, C) interpolated per-vertex attributes of the mesh batch, or None.
    """

    person: torch.Tensor
    face: torch.Tensor
    weights: torch.Tensor
    points: torch.Tensor
    normals: torch.Tensor
    colors: torch.Tensor
    attributes: torch.Tensor | None


# A procedural colour: SurfaceSample -> (K, 3) RGB in [0, 1], applied before lighting.
Pattern = Callable[[SurfaceSample], torch.Tensor]


@dataclass(frozen=True)
class Stripes:
    """Bands along one coordinate of the surface: the first attribute channels if the meshes carry
    attributes (e.g. rest-pose vertex positions, so bands move with the body), else camera-frame
    points. period: metres per light + dark pair; contrast in [0, 1]: the dark band's darkening."""

    period: float = 0.1
    axis: int = 1
    contrast: float = 0.5

    def __call__(self, sample: SurfaceSample) -> torch.Tensor:
        coords = sample.points if sample.attributes is None else sample.attributes
        phase = torch.remainder(coords[:, self.axis] / self.period, 1.0)
        dark = (phase >= 0.5).to(sample.colors.dtype).unsqueeze(1)
        return sample.colors * (1 - self.contrast * dark)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals. verts (N, V, 3), faces (F, 3) int64 -> (N, V, 3)."""
    num_people, num_verts = verts.shape[:2]
    if num_people == 0:
        return verts.clone()
    # Vertex-major (V, N*3) layout: one gather / scatter of short rows per corner serves all people.
    table = verts.permute(1, 0, 2).reshape(num_verts, -1)
    cross = _face_cross(*(table.index_select(0, faces[:, k]).view(-1, num_people, 3) for k in range(3)))
    normals = torch.zeros_like(table)
    for k in range(3):
        normals.index_add_(0, faces[:, k], cross.reshape(len(faces), -1))
    normals = normals.view(num_verts, num_people, 3).permute(1, 0, 2)
    return torch.nn.functional.normalize(normals, dim=-1)


def face_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit face normals by the right-hand rule on the vertex order. (N, V, 3), (F, 3) -> (N, F, 3)."""
    v0, v1, v2 = (verts.index_select(1, faces[:, k]) for k in range(3))
    return torch.nn.functional.normalize(_face_cross(v0, v1, v2), dim=-1)


def _face_cross(v0: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """(..., 3) corners -> (..., 3) (v1 - v0) x (v2 - v0), written out (faster than linalg.cross on CPU)."""
    a, b = v1 - v0, v2 - v0
    return torch.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                        a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                        a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], dim=-1)


def towards_camera(normals: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Flip (K, 3) normals that point away from the camera at the origin (two-sided lighting)."""
    away = (normals * points).sum(dim=1, keepdim=True) > 0
    return torch.where(away, -normals, normals)


def lambert(colors: torch.Tensor, normals: torch.Tensor, settings: ShadingSettings) -> torch.Tensor:
    """(K, 3) base colours, (K, 3) unit normals -> (K, 3) lit colours clamped to [0, 1]."""
    light = torch.tensor(settings.light_direction, dtype=normals.dtype, device=normals.device)
    light = light / light.norm()
    intensity = settings.ambient + settings.diffuse * (normals @ light).clamp_min(0).unsqueeze(1)
    return (colors * intensity).clamp(0, 1)
