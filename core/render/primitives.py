"""Procedural meshes with known geometry: spheres, boxes and a jointed mannequin.

They give the renderer's checks analytic answers (a sphere's depth, a box's silhouette) and its
benchmark body-like load without licensed body models. Faces are wound counter-clockwise seen
from outside (outward normals by the right-hand rule), like SMPL's.
"""

from __future__ import annotations

import math

import torch

# Mannequin skeleton in a Y-up body frame (metres, pelvis at the origin, facing +z), a rough adult
# in A-pose: 17 joints and the ellipsoids that flesh the bones out (radius across the bone).
MANNEQUIN_JOINTS = {
    "pelvis": (0.0, 0.0, 0.0), "spine": (0.0, 0.25, 0.0), "neck": (0.0, 0.5, 0.0), "head": (0.0, 0.66, 0.02),
    "l_hip": (0.09, -0.06, 0.0), "l_knee": (0.1, -0.47, 0.02), "l_ankle": (0.1, -0.87, -0.01),
    "l_foot": (0.11, -0.93, 0.12), "r_hip": (-0.09, -0.06, 0.0), "r_knee": (-0.1, -0.47, 0.02),
    "r_ankle": (-0.1, -0.87, -0.01), "r_foot": (-0.11, -0.93, 0.12),
    "l_shoulder": (0.19, 0.46, 0.0), "l_elbow": (0.36, 0.22, 0.0), "l_wrist": (0.5, 0.0, 0.04),
    "r_shoulder": (-0.19, 0.46, 0.0), "r_elbow": (-0.36, 0.22, 0.0), "r_wrist": (-0.5, 0.0, 0.04),
}
MANNEQUIN_BONES = (
    ("pelvis", "neck", 0.14), ("neck", "head", 0.1), ("l_hip", "r_hip", 0.1), ("l_shoulder", "r_shoulder", 0.07),
    ("l_hip", "l_knee", 0.08), ("l_knee", "l_ankle", 0.055), ("l_ankle", "l_foot", 0.045),
    ("r_hip", "r_knee", 0.08), ("r_knee", "r_ankle", 0.055), ("r_ankle", "r_foot", 0.045),
    ("l_shoulder", "l_elbow", 0.05), ("l_elbow", "l_wrist", 0.04),
    ("r_shoulder", "r_elbow", 0.05), ("r_elbow", "r_wrist", 0.04),
)
# Ellipsoids reach past both joints by this share of the bone, so every joint lies inside the body.
BONE_OVERHANG = 0.25


def uv_sphere(rings: int = 16, segments: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit sphere at the origin: verts ((rings - 1) * segments + 2, 3) float32, faces
    (2 * (rings - 1) * segments, 3) int64. Poles on the y axis."""
    theta = torch.arange(1, rings, dtype=torch.float64) * math.pi / rings
    phi = torch.arange(segments, dtype=torch.float64) * 2 * math.pi / segments
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    ring = torch.stack([t.sin() * p.cos(), t.cos(), -t.sin() * p.sin()], dim=-1).reshape(-1, 3)
    verts = torch.cat([torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64), ring,
                       torch.tensor([[0.0, -1.0, 0.0]], dtype=torch.float64)])
    j = torch.arange(segments)
    nxt = (j + 1) % segments
    south = verts.shape[0] - 1
    faces = [torch.stack([torch.zeros_like(j), 1 + j, 1 + nxt], dim=1)]
    for r in range(rings - 2):
        a, b = 1 + r * segments + j, 1 + r * segments + nxt
        c, d = a + segments, b + segments
        faces += [torch.stack([a, c, d], dim=1), torch.stack([a, d, b], dim=1)]
    last = 1 + (rings - 2) * segments
    faces.append(torch.stack([last + j, torch.full_like(j, south), last + nxt], dim=1))
    return verts.float(), torch.cat(faces).long()


def box(size: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """Axis-aligned box centred at the origin: verts (8, 3) float32, faces (12, 3) int64."""
    half = torch.tensor(size, dtype=torch.float32) / 2
    corners = torch.tensor([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)], dtype=torch.float32)
    verts = (corners * 2 - 1) * half
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [[a, b, c] for a, b, c, _ in quads] + [[a, c, d] for a, _, c, d in quads]
    return verts, torch.tensor(faces, dtype=torch.long)


def mannequin(rings: int = 30, segments: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A body of overlapping ellipsoids in the Y-up body frame.

    Returns verts (V, 3) float32, faces (F, 3) int64 and joints (J, 3) float32 in the order of
    ``MANNEQUIN_JOINTS``. The defaults give 14 x 1,860 = 26,040 triangles, about an SMPL or
    anny body (13,776 / 27,420).
    """
    joints = torch.tensor(list(MANNEQUIN_JOINTS.values()), dtype=torch.float32)
    names = list(MANNEQUIN_JOINTS)
    sphere, sphere_faces = uv_sphere(rings, segments)
    verts: list[torch.Tensor] = []
    faces: list[torch.Tensor] = []
    for start, end, radius in MANNEQUIN_BONES:
        a, b = joints[names.index(start)], joints[names.index(end)]
        axis = b - a
        half = axis.norm() / 2 * (1 + BONE_OVERHANG)
        scaled = sphere * torch.stack([torch.tensor(radius), half, torch.tensor(radius)])
        faces.append(sphere_faces + len(verts) * sphere.shape[0])
        verts.append(scaled @ _rotation_y_to(axis).T + (a + b) / 2)
    return torch.cat(verts), torch.cat(faces), joints


def _rotation_y_to(direction: torch.Tensor) -> torch.Tensor:
    """(3, 3) rotation taking the unit y axis onto ``direction`` (Rodrigues)."""
    y = torch.tensor([0.0, 1.0, 0.0])
    d = direction / direction.norm()
    v, c = torch.linalg.cross(y, d), float(y @ d)
    if c < -1 + 1e-6:
        return torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    k = torch.tensor([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return torch.eye(3) + k + k @ k / (1 + c)
