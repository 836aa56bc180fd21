"""Scene sampling (core/scenes): determinism, ground contact, depth layers, pose library, keep rule."""

from __future__ import annotations

import numpy as np
import pytest

from core.body_models import BodyModelSet
from core.scenes.build import SceneBuilder
from core.scenes.labels import LSP14
from core.scenes.placement import SAME_DEPTH_M, depth_layers
from core.scenes.poses import KEYFRAMES, LIMITS, euler_to_axis_angle, mirror_euler, walk_cycle, within_limits
from core.scenes.sampler import SceneSampler, posed, scene_stem
from core.scenes.settings import CameraSettings, SceneSettings, VideoSettings

SETTINGS = SceneSettings(people=(3, 5), camera=CameraSettings(sizes=("160x128", "256x112"))).validate()


@pytest.fixture(scope="module")
def body_models() -> BodyModelSet:
    """The open body model, shipped with meshfleet (SMPL-A and the infant model included)."""
    return BodyModelSet.open(for_bev=True)


@pytest.fixture(scope="module")
def sampler(body_models) -> SceneSampler:
    return SceneSampler(body_models, SETTINGS)


def test_every_keyframe_and_its_mirror_respect_the_joint_limits():
    for name, euler in KEYFRAMES.items():
        assert within_limits(euler).all(), name
        assert within_limits(mirror_euler(euler)).all(), name
    assert (LIMITS[:, :, 0] <= LIMITS[:, :, 1]).all()


def test_mirroring_twice_is_the_identity_and_swaps_sides():
    euler = KEYFRAMES["reaching"]
    assert np.allclose(mirror_euler(mirror_euler(euler)), euler)
    aa, mirrored = euler_to_axis_angle(euler).reshape(24, 3), euler_to_axis_angle(mirror_euler(euler)).reshape(24, 3)
    assert np.allclose(mirrored[17], aa[16] * [1, -1, -1])  # right shoulder = mirrored left shoulder


def test_walk_cycle_passes_through_its_keyframes():
    assert np.allclose(walk_cycle(0.0), euler_to_axis_angle(KEYFRAMES["walking"]), atol=1e-6)
    assert np.allclose(walk_cycle(0.5), euler_to_axis_angle(mirror_euler(KEYFRAMES["walking"])), atol=1e-6)


def test_depth_layers_group_within_the_tolerance():
    layers, ok = depth_layers(np.array([5.0, 3.0, 3.1, 6.5, 5.05]))
    assert layers.tolist() == [1, 0, 0, 2, 1] and ok
    _, chained = depth_layers(np.array([3.0, 3.15, 3.3]))  # 3.0~3.15~3.3 but 3.0 !~ 3.3
    assert not chained


def test_same_seed_and_index_give_the_same_scene_and_others_differ(sampler):
    a, b, c = sampler.sample(7, 3), sampler.sample(7, 3), sampler.sample(7, 4)
    for name in ("betas", "thetas", "trans", "age_class"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.camera == b.camera and a.look == b.look and a.outfits == b.outfits
    assert a.stem == scene_stem(3) and not np.array_equal(a.trans, c.trans)


def test_people_stand_on_the_ground_in_unambiguous_depth_layers(sampler, body_models):
    for index in range(4):
        scene = sampler.sample(0, index)
        verts, _ = posed(body_models, scene.betas, scene.thetas[0])
        lowest = ((verts + scene.trans[0][:, None]) @ scene.camera.gravity).max(axis=1)
        assert np.allclose(lowest, scene.camera.height_m, atol=1e-4)
        depth = scene.trans[0, :, 2].astype(np.float64)
        layers, ok = depth_layers(depth)
        assert ok
        gaps = np.abs(depth[:, None] - depth[None])
        same = layers[:, None] == layers[None]
        assert (gaps[same] < SAME_DEPTH_M).all() and (gaps[~same] > SAME_DEPTH_M).all()


def test_still_images_keep_only_countable_people(sampler, body_models):
    builder = SceneBuilder(body_models, SETTINGS.placement)
    built = builder.build(sampler.sample(1, 0))
    labels, camera = built.frames[0].labels, built.scene.camera
    assert built.scene.num_people == len(labels.pixels) > 0
    assert (labels.pixels > 0).all() and (labels.occlusion <= SETTINGS.placement.max_occlusion).all()
    lsp = labels.joints2d[:, list(LSP14)]
    inside = (lsp[..., 0] > 0) & (lsp[..., 0] < camera.width) & (lsp[..., 1] > 0) & (lsp[..., 1] < camera.height)
    assert (inside.sum(axis=1) >= SETTINGS.placement.min_joints_in_image).all()
    image = built.frames[0].image
    assert image.shape == (camera.height, camera.width, 3) and image.dtype == np.uint8


def test_video_walkers_move_and_keep_their_identity(body_models):
    settings = SceneSettings(people=(2, 2), ages=(1, 0, 0, 0), camera=SETTINGS.camera,
                             video=VideoSettings(frames=6, fps=10.0, standing_share=0.0)).validate()
    scene = SceneSampler(body_models, settings).sample(3, 0)
    assert scene.kind == "video" and scene.thetas.shape == (6, 2, 72) and scene.track_id.tolist() == [1, 2]
    step = np.diff(scene.trans[:, :, 0], axis=0)
    assert (np.abs(step) > 0.05).all()  # at least 0.6 m/s over 0.1 s frames
    assert np.allclose(scene.trans[:, :, 2], scene.trans[0, :, 2])  # each walker keeps its depth lane
