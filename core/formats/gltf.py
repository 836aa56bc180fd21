"""glTF 2.0 binary (.glb): one skinned body, its skeleton, and one animation of it.

Layout (node indices): 0 the mesh node (skin 0; its ``extras`` carry the caller's metadata), 1..J
the joints in skeleton order (1 the root), then optionally the camera node at the world origin; the
scene lists the mesh node, the root joint and the camera (a skinned mesh node is best a root). The
mesh is stored in the rest (bind) pose, with inverse bind matrices that translate each joint's rest
position to the origin (rest joint frames are world-aligned). The one animation has a rotation
channel per joint and a translation channel for the root, sampled LINEAR (spherical for rotations)
at the given times. Units are metres, Y up, as glTF prescribes.

Spec: https://registry.khronos.org/glTF/specs/2.0/glTF-2.0.html (GLB: section 4.4; skins: 3.7.3;
animations: 3.11). Accessor and buffer-view offsets are 4-byte aligned (3.6.2.4).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from core.formats.skeleton import Skeleton

FLOAT, UNSIGNED_BYTE, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5121, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
TYPES = {1: "SCALAR", 3: "VEC3", 4: "VEC4", 16: "MAT4"}
GLB_MAGIC, JSON_CHUNK, BIN_CHUNK = 0x46546C67, 0x4E4F534A, 0x004E4942
BODY_COLOUR = (0.80, 0.62, 0.52, 1.0)


@dataclass(frozen=True)
class SkinnedMesh:
    """vertices (V, 3) metres in the skeleton's rest pose; faces (F, 3) vertex indices;
    weights (V, J) skinning weights, each row summing to 1."""

    vertices: np.ndarray
    faces: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class PerspectiveCamera:
    """A glTF camera at the world origin looking down -Z: vertical field of view (radians) and
    width / height."""

    yfov: float
    aspect_ratio: float
    znear: float = 0.05


@dataclass(frozen=True)
class Animation:
    """times (T,) seconds, increasing; rotations (T, J, 4) unit quaternions (x, y, z, w), local to
    each joint's parent (the root's in the world); root_positions (T, 3) metres."""

    times: np.ndarray
    rotations: np.ndarray
    root_positions: np.ndarray


class _Binary:
    """The binary chunk under construction: one buffer view and one accessor per array."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, component: int, target: int | None = None, bounds: bool = False) -> int:
        """Append ``array`` (N,) or (N, C) as one accessor of ``component`` type; returns its index."""
        dtype = {FLOAT: "<f4", UNSIGNED_BYTE: "u1", UNSIGNED_SHORT: "<u2", UNSIGNED_INT: "<u4"}[component]
        values = np.ascontiguousarray(array, dtype=dtype)
        width = 1 if values.ndim == 1 else values.shape[1]
        self.data.extend(b"\0" * (-len(self.data) % 4))
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": values.nbytes}
        if target is not None:
            view["target"] = target
        self.data.extend(values.tobytes())
        self.views.append(view)
        accessor = {"bufferView": len(self.views) - 1, "componentType": component, "count": len(values),
                    "type": TYPES[width]}
        if bounds:
            flat = values.reshape(len(values), width)
            accessor["min"], accessor["max"] = flat.min(0).tolist(), flat.max(0).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals; +Y for vertices no face uses (glTF wants unit ones)."""
    v = np.asarray(vertices, np.float64)
    face_normals = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    normals = np.zeros_like(v)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.where(length > 1e-12, normals / np.maximum(length, 1e-12), [0.0, 1.0, 0.0])


def skin_influences(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, J) weights -> (V, 4K) joint indices and weights, largest first, K sets of four: as many
    as the vertex with the most non-zero weights needs (readers that use only the first set get
    the four largest). Rows renormalised to sum to 1."""
    order = np.argsort(-weights, axis=1, kind="stable")
    width = max(4, -(-int((weights > 0).sum(1).max()) // 4) * 4)
    joints = order[:, :width]
    values = np.take_along_axis(weights, joints, axis=1)
    joints = np.where(values > 0, joints, 0)
    values = values / values.sum(1, keepdims=True)
    return joints, values


def glb_bytes(name: str, skeleton: Skeleton, mesh: SkinnedMesh, animation: Animation,
              camera: PerspectiveCamera | None = None, extras: dict | None = None) -> bytes:
    """The .glb file of one animated skinned body."""
    j = skeleton.num_joints
    binary = _Binary()
    attributes = {
        "POSITION": binary.add(mesh.vertices, FLOAT, ARRAY_BUFFER, bounds=True),
        "NORMAL": binary.add(vertex_normals(mesh.vertices, mesh.faces), FLOAT, ARRAY_BUFFER),
    }
    joints, weights = skin_influences(np.asarray(mesh.weights, np.float64))
    joint_type = UNSIGNED_BYTE if j < 256 else UNSIGNED_SHORT
    for k in range(joints.shape[1] // 4):
        attributes[f"JOINTS_{k}"] = binary.add(joints[:, 4 * k:4 * k + 4], joint_type, ARRAY_BUFFER)
        attributes[f"WEIGHTS_{k}"] = binary.add(weights[:, 4 * k:4 * k + 4], FLOAT, ARRAY_BUFFER)
    index_type = UNSIGNED_SHORT if len(mesh.vertices) <= 65535 else UNSIGNED_INT
    indices = binary.add(np.asarray(mesh.faces).reshape(-1), index_type, ELEMENT_ARRAY_BUFFER)
    inverse_bind = np.tile(np.eye(4), (j, 1, 1))
    inverse_bind[:, :3, 3] = -skeleton.rest_joints
    ibm = binary.add(inverse_bind.transpose(0, 2, 1).reshape(j, 16), FLOAT)  # glTF matrices are column-major

    first_joint = 1
    nodes: list[dict] = [{"name": name, "mesh": 0, "skin": 0, **({"extras": extras} if extras else {})}]
    offsets = skeleton.offsets()
    for i, joint_name in enumerate(skeleton.names):
        node: dict = {"name": joint_name, "translation": offsets[i].tolist()}
        children = skeleton.children(i)
        if children:
            node["children"] = [first_joint + c for c in children]
        nodes.append(node)
    scene_nodes = [0, first_joint]
    cameras = []
    if camera is not None:
        cameras.append({"type": "perspective", "perspective": {
            "yfov": camera.yfov, "aspectRatio": camera.aspect_ratio, "znear": camera.znear}})
        nodes.append({"name": "camera", "camera": 0})
        scene_nodes.append(len(nodes) - 1)

    times = binary.add(animation.times, FLOAT, bounds=True)
    samplers = [{"input": times, "output": binary.add(animation.rotations[:, i], FLOAT), "interpolation": "LINEAR"}
                for i in range(j)]
    channels = [{"sampler": i, "target": {"node": first_joint + i, "path": "rotation"}} for i in range(j)]
    samplers.append({"input": times, "output": binary.add(animation.root_positions, FLOAT),
                     "interpolation": "LINEAR"})
    channels.append({"sampler": j, "target": {"node": first_joint, "path": "translation"}})

    document = {
        "asset": {"version": "2.0", "generator": "meshfleet"},
        "scene": 0,
        "scenes": [{"name": name, "nodes": scene_nodes}],
        "nodes": nodes,
        "meshes": [{"name": f"{name}_body", "primitives": [
            {"attributes": attributes, "indices": indices, "material": 0}]}],
        "materials": [{"name": "body", "doubleSided": True, "pbrMetallicRoughness": {
            "baseColorFactor": list(BODY_COLOUR), "metallicFactor": 0.0, "roughnessFactor": 0.8}}],
        "skins": [{"name": f"{name}_skeleton", "inverseBindMatrices": ibm, "skeleton": first_joint,
                   "joints": list(range(first_joint, first_joint + j))}],
        "animations": [{"name": f"{name}_motion", "samplers": samplers, "channels": channels}],
        "accessors": binary.accessors,
        "bufferViews": binary.views,
        "buffers": [{"byteLength": len(binary.data)}],
        **({"cameras": cameras} if cameras else {}),
    }
    return _glb(json.dumps(document, separators=(",", ":")).encode(), bytes(binary.data))


def _glb(document: bytes, binary: bytes) -> bytes:
    """GLB container: 12-byte header, JSON chunk padded with spaces, BIN chunk padded with zeros."""
    document += b" " * (-len(document) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(document) + 8 + len(binary)
    return b"".join([struct.pack("<III", GLB_MAGIC, 2, total), struct.pack("<II", len(document), JSON_CHUNK),
                     document, struct.pack("<II", len(binary), BIN_CHUNK), binary])
