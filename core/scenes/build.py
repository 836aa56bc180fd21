"""From a scene record to pixels and labels: pose the bodies, render, label, composite, degrade.

Still images then keep only the people every benchmark layout can count (see
:func:`core.scenes.labels.keep_for_still`): removing a person never makes anyone else more occluded,
so one re-render settles it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.body_models import BodyModelSet
from core.scenes.appearance import vertex_colors, vertex_parts
from core.scenes.backgrounds import composite, degrade, make_background
from core.scenes.labels import FrameLabels, frame_labels, keep_for_still
from core.scenes.record import Scene
from core.scenes.rendering import RenderedFrame, render_people, solo_pixel_counts
from core.scenes.sampler import posed
from core.scenes.settings import PlacementSettings

MAX_PASSES = 3


@dataclass
class BuiltFrame:
    """One frame: image (H, W, 3) uint8 RGB, ids (H, W) int32 instance ids (person + 1), joints
    (P, 71, 3) float32 camera-frame joints (translation included), labels."""

    image: np.ndarray
    ids: np.ndarray
    joints: np.ndarray
    labels: FrameLabels


@dataclass
class BuiltScene:
    """The scene record as finally drawn (people removed from still images included) and its frames."""

    scene: Scene
    frames: list[BuiltFrame]


class SceneBuilder:
    """Renders :class:`Scene` records made on ``body`` (faces, garment parts and rest shape computed once)."""

    def __init__(self, body: BodyModelSet, placement: PlacementSettings):
        layer = body.smpla if body.smpla is not None else body.smpl
        self.body, self.placement = body, placement
        self.faces = layer.faces.numpy().astype(np.int64)
        self.rest = layer.v_template.numpy().astype(np.float64)
        rest_joints = layer.J_regressor.numpy().astype(np.float64) @ self.rest
        self.parts = vertex_parts(layer.lbs_weights.numpy(), self.rest, rest_joints)

    def _geometry(self, scene: Scene, t: int) -> tuple[np.ndarray, np.ndarray]:
        verts, joints = posed(self.body, scene.betas, scene.thetas[t])
        offset = scene.trans[t][:, None]
        return verts + offset, joints + offset

    def _render(self, scene: Scene, t: int, colors: np.ndarray) -> tuple[RenderedFrame, np.ndarray, FrameLabels]:
        verts, joints = self._geometry(scene, t)
        frame = render_people(verts, self.faces, colors, scene.camera, scene.look)
        solo = solo_pixel_counts(verts, self.faces, scene.camera)
        return frame, joints, frame_labels(joints, verts, self.faces, scene.trans[t], scene.camera, frame, solo)

    def colors(self, scene: Scene) -> np.ndarray:
        """(P, V, 3) albedo of every person."""
        if scene.num_people == 0:
            return np.zeros((0, len(self.rest), 3), np.float32)
        return np.stack([vertex_colors(self.parts, self.rest, outfit) for outfit in scene.outfits])

    def build(self, scene: Scene, folder_image: np.ndarray | None = None) -> BuiltScene:
        """Render every frame of ``scene``; ``folder_image`` (h, w, 3) uint8 RGB is the user's background
        image when the scene's look asks for one."""
        background = make_background(scene.camera, scene.look, folder_image)
        if scene.kind == "image":
            for _ in range(MAX_PASSES):
                frame, joints, labels = self._render(scene, 0, self.colors(scene))
                keep = keep_for_still(labels, scene.camera, self.placement.min_joints_in_image,
                                      self.placement.max_occlusion)
                if keep.all():
                    break
                scene = scene.keep_people(keep)
            else:
                raise RuntimeError(f"scene {scene.index}: people still fail the keep rule after {MAX_PASSES} passes")
            return BuiltScene(scene, [self._finish(scene, 0, frame, joints, labels, background)])
        colors = self.colors(scene)
        frames = []
        for t in range(scene.num_frames):
            frame, joints, labels = self._render(scene, t, colors)
            frames.append(self._finish(scene, t, frame, joints, labels, background))
        return BuiltScene(scene, frames)

    @staticmethod
    def _finish(scene: Scene, t: int, frame: RenderedFrame, joints: np.ndarray, labels: FrameLabels,
                background: np.ndarray) -> BuiltFrame:
        image = degrade(composite(frame.colour, frame.ids, background), scene.look, scene.look.texture_seed + t)
        return BuiltFrame(image, frame.ids, joints.astype(np.float32), labels)
