"""Independent readers of exported files, for the export tests: forward kinematics written here
over what pygltflib / bvhio parse (no meshfleet code), and the Khronos glTF validator run by node.

The JavaScript tools (gltf-validator, three.js) are pinned in tests/npm/package.json and installed
with ``npm ci --prefix tests/npm`` (or found under $MESHFLEET_NPM_DIR/node_modules); tests that need
them skip, saying so, when node or the packages are absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import bvhio
import numpy as np
import pygltflib
import pytest

NPM_DIR = Path(os.environ.get("MESHFLEET_NPM_DIR", Path(__file__).parent / "npm"))
COMPONENTS = {5126: np.float32, 5123: np.uint16, 5121: np.uint8, 5125: np.uint32}
WIDTHS = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}
CAMERA_TO_WORLD = np.array([1.0, -1.0, -1.0])  # (x, y, z) camera (y down, z forward) -> (x, -y, -z) Y-up world


def quaternion_matrix(q: np.ndarray) -> np.ndarray:
    """(x, y, z, w) unit quaternion -> 3x3 rotation matrix."""
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


class GlbFile:
    """A .glb parsed by pygltflib, with its accessors as numpy arrays."""

    def __init__(self, path: Path):
        self.gltf = pygltflib.GLTF2().load(str(path))
        self.blob = self.gltf.binary_blob()

    def accessor(self, index: int) -> np.ndarray:
        acc = self.gltf.accessors[index]
        view = self.gltf.bufferViews[acc.bufferView]
        width = WIDTHS[acc.type]
        return np.frombuffer(self.blob, COMPONENTS[acc.componentType], acc.count * width,
                             view.byteOffset + (acc.byteOffset or 0)).reshape(acc.count, width)

    def joint_names(self) -> list[str]:
        return [self.gltf.nodes[j].name for j in self.gltf.skins[0].joints]

    def animated_joints(self) -> tuple[np.ndarray, np.ndarray]:
        """(times (T,), world positions (T, J, 3)) of the skin's joints at every key time, by forward
        kinematics over the nodes' translation / rotation (animated where a channel targets them)."""
        animation = self.gltf.animations[0]
        keys: dict[tuple[int, str], np.ndarray] = {}
        times = None
        for channel in animation.channels:
            sampler = animation.samplers[channel.sampler]
            times = self.accessor(sampler.input)[:, 0]
            keys[(channel.target.node, channel.target.path)] = self.accessor(sampler.output).astype(np.float64)
        parent = {c: i for i, node in enumerate(self.gltf.nodes) for c in (node.children or [])}
        joints = self.gltf.skins[0].joints
        positions = np.zeros((len(times), len(joints), 3))
        for t in range(len(times)):
            world: dict[int, np.ndarray] = {}
            for k, index in enumerate(joints):  # parents come before children in the skin
                node = self.gltf.nodes[index]
                local = np.eye(4)
                rotation = keys.get((index, "rotation"))
                rest_rotation = node.rotation or [0, 0, 0, 1]
                local[:3, :3] = quaternion_matrix(rotation[t] if rotation is not None else rest_rotation)
                translation = keys.get((index, "translation"))
                local[:3, 3] = translation[t] if translation is not None else node.translation or [0, 0, 0]
                world[index] = world[parent[index]] @ local if parent.get(index) in world else local
                positions[t, k] = world[index][:3, 3]
        return times, positions


def bvh_joints(path: Path, names: list[str]) -> tuple[float, np.ndarray]:
    """(frame time, world positions (T, J, 3) of the named joints) from bvhio's hierarchy."""
    container = bvhio.readAsBvh(str(path))
    root = bvhio.readAsHierarchy(str(path))
    layout = {joint.Name: joint for joint, _, _ in root.layout()}
    positions = np.zeros((container.FrameCount, len(names), 3))
    for t in range(container.FrameCount):
        root.loadPose(t)
        positions[t] = [np.array(layout[name].PositionWorld) for name in names]
    return container.FrameTime, positions


def node_tools(*packages: str) -> Path:
    """tests/npm/node_modules (or $MESHFLEET_NPM_DIR's), or skip when node or a package is absent."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (Debian package nodejs); needed for the glTF validator / three.js")
    modules = NPM_DIR / "node_modules"
    missing = [p for p in packages if not (modules / p / "package.json").is_file()]
    if missing:
        pytest.skip(f"npm packages {missing} not under {modules}: run `npm ci --prefix tests/npm`")
    return modules


def khronos_report(path: Path) -> dict:
    """The Khronos glTF validator's report on a .glb (its ``issues`` object)."""
    modules = node_tools("gltf-validator")
    script = ("const v = require(process.argv[1]); const fs = require('fs');"
              "v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[2])), {maxIssues: 200})"
              ".then(r => console.log(JSON.stringify(r.issues))).catch(e => { console.error(e); process.exit(3); });")
    done = subprocess.run(["node", "-e", script, str(modules / "gltf-validator"), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
