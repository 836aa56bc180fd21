"""The synth unit worker: unit planning, user backgrounds and motion files, and the labels table."""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from core.scenes.settings import CameraSettings, LookSettings, PoseSettings, SceneSettings
from pipelines.annotations import annotation_schema
from pipelines.synth.generator import SceneGenerator, SceneUnit, SynthSpec, load_motion, plan_units


def test_units_cover_what_is_missing_on_the_same_grid():
    assert plan_units(5, 2, set()) == [SceneUnit(0, 2), SceneUnit(2, 4), SceneUnit(4, 5)]
    done = {SceneUnit(0, 2).name, SceneUnit(4, 5).name, "notes.parquet"}
    assert plan_units(8, 2, done) == [SceneUnit(2, 4), SceneUnit(5, 6), SceneUnit(6, 8)]
    assert plan_units(4, 2, {SceneUnit(0, 2).name, SceneUnit(2, 4).name}) == []
    assert SceneUnit.from_name("scenes.000000004-000000006.parquet") == SceneUnit(4, 6)


@pytest.fixture(scope="module")
def user_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("user")
    background = np.zeros((90, 160, 3), np.uint8)
    background[:, :, 2] = 200  # a red image (BGR on disk)
    cv2.imwrite(str(root / "red.png"), background)
    poses = np.zeros((10, 156))
    poses[:, 3 * 16 + 2] = -1.2  # left shoulder down
    poses[:, 3 * 4] = np.linspace(0.0, 1.0, 10)  # left knee bending
    np.savez(root / "clip.npz", poses=poses, mocap_framerate=60.0)
    return root


def test_backgrounds_and_motions_from_the_user(user_inputs, tmp_path):
    settings = SceneSettings(
        people=(2, 2), ages=(1, 0, 0, 0), camera=CameraSettings(sizes=("96x64",)),
        poses=PoseSettings(motion_share=1.0),
        look=LookSettings(folder_share=1.0, blur_share=0.0, noise_sigma=(0.0, 0.0))).validate()
    spec = SynthSpec(settings, 2, "open", "open-1", backgrounds=(str(user_inputs / "red.png"),),
                     motions=(str(user_inputs / "clip.npz"),))
    generator = SceneGenerator(spec)
    built = generator.build(0)
    motion = load_motion(str(user_inputs / "clip.npz"))
    assert built.scene.pose == ("motion:0",) * built.scene.num_people
    for thetas in built.scene.thetas[0]:
        assert np.isclose(motion[:, 3:66], thetas[3:66], atol=1e-6).all(axis=1).any()
    frame = built.frames[0]
    background = frame.image[frame.ids == 0].astype(int)
    assert (np.abs(background - [200, 0, 0]) <= 2).all()  # RGB
    stats = generator.run(SceneUnit(0, 2), str(tmp_path))
    table = pq.read_table(tmp_path / "labels" / SceneUnit(0, 2).name)
    assert table.schema.remove_metadata() == annotation_schema() and table.num_rows == stats.persons > 0
    assert (tmp_path / "oracle" / SceneUnit(0, 2).name).is_file()


def test_a_bad_motion_file_is_named(tmp_path):
    np.savez(tmp_path / "bad.npz", trans=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="bad.npz.*poses"):
        load_motion(str(tmp_path / "bad.npz"))
