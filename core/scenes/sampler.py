"""Drawing scene records, deterministically from (seed, index).

Every scene draws from its own ``numpy.random.Generator`` seeded with ``SeedSequence([seed, index])``
(never the global RNG) and spawns one child stream per concern (camera, people, poses, placement,
appearance), so a scene does not depend on any other scene or on the order scenes are made in.
"""

from __future__ import annotations

import numpy as np
import torch

from core.body_models import BodyModelSet
from core.rotations import rotmat_to_axis_angle
from core.scenes.appearance import sample_look, sample_outfit
from core.scenes.placement import body_to_camera, ground_offset, place_in_layers, sample_shot, translation_on_ground
from core.scenes.poses import (
    KEYFRAMES,
    PoseChoice,
    library_pose,
    motion_pose,
    pose_from_euler,
    random_pose,
    run_cycle,
    walk_cycle,
)
from core.scenes.record import Scene
from core.scenes.settings import AGE_OFFSET_RANGES, SceneSettings, draw

CMU_SEQUENCES = ("haggling", "mafia", "ultimatum", "pizza")
LYING = ("lying", "lying_side", "crawling")
ADULT_STRIDE_M, RUN_STRIDE_M, RUN_SPEED_MPS = 1.45, 2.6, 2.5  # stride = two steps, for a 1.7 m adult
ADULT_STATURE_M = 1.7


def scene_stem(index: int) -> str:
    """File stem of scene ``index``: ``<sequence>-<index:09d>``. The sequence part cycles through CMU
    Panoptic's four sequence names because ``eval cmu-panoptic`` keys images as ``<sequence>-<name>``
    and scores only images whose name contains one of them."""
    return f"{CMU_SEQUENCES[index % len(CMU_SEQUENCES)]}-{index:09d}"


def posed(body: BodyModelSet, betas: np.ndarray, thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 11) betas, (N, 72) thetas -> (N, V, 3) vertices and (N, 71, 3) joints without translation
    (SMPL-A, SMIL for babies: BodyModelSet.smpla_forward), float32."""
    with torch.inference_mode():
        out = body.smpla_forward(torch.from_numpy(np.ascontiguousarray(betas, np.float32)),
                                 torch.from_numpy(np.ascontiguousarray(thetas, np.float32)))
    return out.verts.numpy(), out.joints.numpy()


def _global_orient(rotation: np.ndarray) -> np.ndarray:
    return rotmat_to_axis_angle(torch.from_numpy(rotation[None])).numpy()[0]


class SceneSampler:
    """Draws :class:`Scene` records on one body-model set. ``motions``: user motion clips (T, >= 66)
    axis-angle; ``backgrounds``: how many background images the user's folder holds."""

    def __init__(self, body: BodyModelSet, settings: SceneSettings, motions: tuple[np.ndarray, ...] = (),
                 backgrounds: int = 0):
        self.body, self.settings, self.motions, self.backgrounds = body, settings, motions, backgrounds

    def sample(self, seed: int, index: int) -> Scene:
        """The scene ``index`` of the dataset drawn with ``seed`` (an image, or a video when the
        settings have video settings)."""
        streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(6)]
        cam_rng, people_rng, pose_rng, place_rng, look_rng, outfit_rng = streams
        s = self.settings
        shot = sample_shot(s.camera, s.placement, cam_rng)
        count = int(people_rng.integers(s.people[0], s.people[1] + 1))
        ages = people_rng.choice(4, size=count, p=s.age_probabilities()).astype(np.int8)
        betas = np.zeros((count, 11), np.float32)
        betas[:, :10] = np.clip(people_rng.normal(0.0, s.shape_sd, (count, 10)), -s.shape_clip, s.shape_clip)
        betas[:, 10] = [draw(people_rng, AGE_OFFSET_RANGES[a]) for a in ages]
        look = sample_look(s.look, look_rng, self.backgrounds)
        outfits = tuple(sample_outfit(outfit_rng) for _ in range(count))
        if s.video is None:
            return self._still(index, shot, look, betas, ages, outfits, pose_rng, place_rng)
        return self._video(index, shot, look, betas, ages, outfits, pose_rng, place_rng)

    def _pose(self, rng: np.random.Generator, age: int) -> PoseChoice:
        p = self.settings.poses
        if self.motions and age != 3 and rng.random() < p.motion_share:
            return motion_pose(self.motions, rng)
        if age == 3 or rng.random() < p.library_share:
            return library_pose(rng, p.noise_deg, age)
        return pose_from_euler("random", random_pose(rng, p.random_spread))

    @staticmethod
    def _yaw(rng: np.random.Generator, choice: PoseChoice) -> float:
        """Any turn for upright people; people lying or crawling lie across the view (their head-to-foot
        axis turned toward the image's x axis, +-0.4 rad), so their length stays out of the depth layers."""
        if choice.name not in LYING:
            return float(rng.uniform(-np.pi, np.pi))
        head = choice.root @ np.array([0.0, 1.0, 0.0])  # the body's up axis after the pose's root tilt
        return float(np.arctan2(head[2], head[0]) + rng.choice([0.0, np.pi]) + rng.uniform(-0.4, 0.4))

    def _still(self, index, shot, look, betas, ages, outfits, pose_rng, place_rng) -> Scene:
        camera = shot.camera
        choices = [self._pose(pose_rng, int(a)) for a in ages]
        thetas = np.zeros((len(ages), 72), np.float32)
        for p, choice in enumerate(choices):
            rotation = body_to_camera(camera, self._yaw(pose_rng, choice)) @ choice.root
            thetas[p, :3], thetas[p, 3:] = _global_orient(rotation), choice.body
        verts, _ = posed(self.body, betas, thetas)
        placement = place_in_layers(verts.astype(np.float64), shot, self.settings.placement, place_rng)
        keep = placement.placed
        scene = Scene(index, "image", scene_stem(index), camera, look, betas, thetas[None],
                      placement.trans[None].astype(np.float32), ages, tuple(c.name for c in choices), outfits)
        return scene.keep_people(keep) if not keep.all() else scene

    def _video(self, index, shot, look, betas, ages, outfits, pose_rng, place_rng) -> Scene:
        v, place, camera = self.settings.video, self.settings.placement, shot.camera
        assert v is not None
        count, frames = len(ages), v.frames
        # one depth lane per person, near to far, so walkers never collide
        lanes = shot.nearest_depth + np.cumsum(
            np.r_[0.0, place_rng.uniform(place.layer_gap_m[0], place.layer_gap_m[1], count - 1) + 0.6])
        lanes = lanes[place_rng.permutation(count)]
        rest, _ = posed(self.body, betas, np.zeros((count, 72), np.float32))
        stature = np.ptp(rest[..., 1], axis=1) / ADULT_STATURE_M
        times = np.arange(frames) / v.fps
        thetas = np.zeros((frames, count, 72), np.float32)
        xs = np.zeros((frames, count))
        names = []
        for p in range(count):
            walker = ages[p] != 3 and pose_rng.random() >= v.standing_share
            half_width = lanes[p] * camera.width / 2 / camera.focal
            cross_x = pose_rng.uniform(-0.5, 0.5) * half_width
            if not walker:
                choice = self._pose(pose_rng, int(ages[p]))
                rotation = body_to_camera(camera, self._yaw(pose_rng, choice)) @ choice.root
                thetas[:, p, :3], thetas[:, p, 3:] = _global_orient(rotation), choice.body
                xs[:, p] = cross_x
                names.append(choice.name)
                continue
            speed, direction = draw(pose_rng, v.speed_mps), pose_rng.choice([-1.0, 1.0])
            running = speed > RUN_SPEED_MPS
            stride = (RUN_STRIDE_M if running else ADULT_STRIDE_M) * stature[p]
            crossing = pose_rng.uniform(0.2, 0.8) * times[-1]
            xs[:, p] = cross_x + direction * speed * (times - crossing)
            rotation = _global_orient(body_to_camera(camera, direction * np.pi / 2))
            phase0, cycle = pose_rng.random(), run_cycle if running else walk_cycle
            style = pose_rng.normal(0.0, self.settings.poses.noise_deg / 2, (24, 3))  # this walker's own gait
            style[0] = style[22] = style[23] = 0.0
            for t in range(frames):
                thetas[t, p, :3], thetas[t, p, 3:] = rotation, cycle(phase0 + speed * times[t] / stride, style)[3:]
            names.append("running" if running else "walking")
        verts, _ = posed(self.body, np.repeat(betas, frames, axis=0), thetas.reshape(-1, 72))
        offsets = ground_offset(verts.astype(np.float64), camera).reshape(frames, count)
        trans = np.stack([translation_on_ground(camera, xs[t], lanes, offsets[t]) for t in range(frames)])
        return Scene(index, "video", scene_stem(index), camera, look, betas, thetas, trans.astype(np.float32),
                     ages, tuple(names), outfits, fps=v.fps)


__all__ = ["SceneSampler", "scene_stem", "posed", "KEYFRAMES"]
