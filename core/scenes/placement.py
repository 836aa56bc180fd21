"""Cameras, ground-plane placement and depth layers.

People stand on a ground plane ``camera.height_m`` below the camera. A person's translation is chosen
in the camera frame: its lateral position and depth ``z`` (the depth Relative Human compares, BEV's
``trans[2]``) are drawn, and the vertical position follows from ground contact: the lowest posed vertex
(along gravity) touches the plane. Still images group people into depth layers whose depths differ by
more than Relative Human's 0.2 m tolerance while people of one layer stay within it, so every pair
has an unambiguous relation (same depth / in front / behind).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from core.scenes.record import Camera
from core.scenes.settings import CameraSettings, PlacementSettings, draw, parse_size

SAME_DEPTH_M = 0.2  # Relative Human's "same depth" tolerance (RH_evaluation: dr_thresh = 0.2 m)
FOOTPRINT_MARGIN_M = 0.05  # clearance between the ground footprints of two people
PLACEMENT_TRIES = 24
SPILL_LAYERS = 2


REFERENCE_STATURE_M, HIP_HEIGHT_M = 1.7, 0.9  # an adult, for framing the shot


@dataclass(frozen=True)
class Shot:
    """A camera and the depth of the nearest depth layer it was framed for (m)."""

    camera: Camera
    nearest_depth: float


def sample_shot(camera: CameraSettings, placement: PlacementSettings, rng: np.random.Generator) -> Shot:
    """Size from the list, FOV over the longer side, height; the nearest layer's depth makes a 1.7 m
    person ``nearest_height_frac`` of the image height; the pitch aims at hip height there (+- jitter),
    clipped to the pitch bounds."""
    width, height = parse_size(camera.sizes[int(rng.integers(len(camera.sizes)))])
    fov = np.radians(draw(rng, camera.fov_deg))
    focal = max(width, height) / 2.0 / np.tan(fov / 2.0)
    depth = REFERENCE_STATURE_M * focal / (draw(rng, placement.nearest_height_frac) * height)
    depth = min(max(depth, placement.depth_m[0]), placement.depth_m[1])
    camera_height = float(draw(rng, camera.height_m))
    aim = np.arctan2(camera_height - HIP_HEIGHT_M, depth) + np.radians(rng.uniform(-1, 1) * placement.aim_jitter_deg)
    pitch = float(np.clip(aim, *np.radians(camera.pitch_deg)))
    return Shot(Camera(width, height, float(focal), pitch, camera_height), depth)


def body_to_camera(camera: Camera, yaw: float) -> np.ndarray:
    """(3, 3) rotation of an upright body (SMPL frame: y up, facing +z) turned by ``yaw`` about the
    vertical into the camera frame; yaw 0 faces the camera. Rx(pitch) @ Rx(180 deg) @ Ry(yaw)."""
    flip = Rotation.from_euler("x", np.pi).as_matrix()
    turn = Rotation.from_euler("y", yaw).as_matrix()
    return camera.level_from_camera().T @ flip @ turn


def ground_offset(verts: np.ndarray, camera: Camera) -> np.ndarray:
    """(P, V, 3) posed vertices without translation -> (P,) lowest extent along gravity (metres)."""
    return (verts @ camera.gravity).max(axis=1)


def translation_on_ground(camera: Camera, x: np.ndarray, z: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """(P,) camera-frame x and depth z, (P,) ground offsets -> (P, 3) translations whose lowest vertex
    lies on the ground plane: gravity . (t + v_lowest) = height_m."""
    c, s = np.cos(camera.pitch), np.sin(camera.pitch)
    y = (camera.height_m - offset - s * z) / c
    return np.stack([x, y, z], axis=-1)


def footprints(verts: np.ndarray, trans: np.ndarray, camera: Camera) -> np.ndarray:
    """(P, V, 3) vertices without translation, (P, 3) translations -> (P, 4) ground boxes in the level
    frame: (x_min, z_min, x_max, z_max), metres."""
    level = (verts + trans[:, None]) @ camera.level_from_camera().T
    return np.concatenate([level[..., [0, 2]].min(axis=1), level[..., [0, 2]].max(axis=1)], axis=1)


def _overlaps(box: np.ndarray, others: list[np.ndarray]) -> bool:
    m = FOOTPRINT_MARGIN_M
    return any(box[0] < o[2] + m and o[0] < box[2] + m and box[1] < o[3] + m and o[1] < box[3] + m for o in others)


@dataclass
class Placement:
    """trans (P, 3) translations of the people that could be placed; placed (P,) bool; layer (P,) the
    depth layer each was drawn in (-1 if not placed)."""

    trans: np.ndarray
    placed: np.ndarray
    layer: np.ndarray


def layer_sizes(count: int, rng: np.random.Generator) -> list[int]:
    """Split ``count`` people into 1-4 non-empty depth layers (sizes in near-to-far order)."""
    layers = int(rng.integers(1, min(count, 4) + 1))
    sizes = np.ones(layers, int)
    for _ in range(count - layers):
        sizes[int(rng.integers(layers))] += 1
    return [int(s) for s in sizes]


def place_in_layers(verts: np.ndarray, shot: Shot, settings: PlacementSettings,
                    rng: np.random.Generator) -> Placement:
    """Place P posed people (``verts`` (P, V, 3), rotation applied, no translation) in depth layers.

    Layer k sits at depth z_k (z_0 = the shot's nearest depth; z_k = z_{k-1} + gap + the depth extents of the two
    layers' people); each person gets depth z_k +- jitter and a lateral position whose root projects
    within ``border_margin`` of the image. A person whose ground footprint would overlap someone already
    placed is retried; after :data:`PLACEMENT_TRIES` tries they move to the next layer (up to
    :data:`SPILL_LAYERS` layers are added behind for them), and are left out only after that.
    """
    camera, count = shot.camera, len(verts)
    order = rng.permutation(count)
    groups, start = [], 0
    for size in layer_sizes(count, rng):
        groups.append([int(p) for p in order[start:start + size]])
        start += size
    offsets = ground_offset(verts, camera)
    level = verts @ camera.level_from_camera().T
    half_depth = (level[..., 2].max(axis=1) - level[..., 2].min(axis=1)) / 2
    trans, placed, layer = np.zeros((count, 3)), np.zeros(count, bool), np.full(count, -1)
    boxes: list[np.ndarray] = []
    cx, margin = camera.principal_point[0], settings.border_margin * camera.width
    z_layer, previous_extent, max_layers = shot.nearest_depth, 0.0, len(groups) + SPILL_LAYERS
    k = 0
    while k < min(len(groups), max_layers):
        members = groups[k]
        extent = float(half_depth[members].max())
        if k > 0:
            z_layer += draw(rng, settings.layer_gap_m) + previous_extent + extent
        previous_extent = extent
        spill = []
        for p in members:
            for _ in range(PLACEMENT_TRIES):
                z = z_layer + rng.uniform(-settings.same_layer_jitter_m, settings.same_layer_jitter_m)
                u = rng.uniform(-margin, camera.width + margin)
                t = translation_on_ground(camera, np.array([(u - cx) * z / camera.focal]), np.array([z]),
                                          offsets[p:p + 1])[0]
                box = footprints(verts[p:p + 1], t[None], camera)[0]
                if not _overlaps(box, boxes):
                    trans[p], placed[p], layer[p] = t, True, k
                    boxes.append(box)
                    break
            else:
                spill.append(p)
        if spill and k + 1 < len(groups):
            groups[k + 1] = spill + groups[k + 1]
        elif spill:
            groups.append(spill)
        k += 1
    return Placement(trans, placed, layer)


def depth_layers(depth: np.ndarray, tolerance: float = SAME_DEPTH_M) -> tuple[np.ndarray, bool]:
    """(P,) depths (m) -> ((P,) layer rank, 0 = nearest; consistent).

    Sorted depths start a new layer where the gap to the previous person exceeds ``tolerance``
    (single linkage). ``consistent`` is False when a layer spans ``tolerance`` or more, i.e. when the
    same-depth relation is not transitive for these people (the layers are then not Relative-Human
    layers and should be marked unknown)."""
    if len(depth) == 0:
        return np.zeros(0, np.int8), True
    order = np.argsort(depth, kind="stable")
    sorted_depth = depth[order]
    rank = np.concatenate([[0], np.cumsum(np.diff(sorted_depth) > tolerance)])
    layers = np.empty(len(depth), np.int8)
    layers[order] = rank
    spans = [np.ptp(sorted_depth[rank == r]) for r in np.unique(rank)]
    return layers, bool(max(spans) < tolerance)
