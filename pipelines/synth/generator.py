"""One unit of ``meshfleet synth``: a range of scene indices drawn, rendered and written.

A unit writes, for each scene, ``images/<stem>.jpg`` (or ``videos/<stem>.mp4``) and ``masks/<stem>.png``
(videos: ``masks/<stem>/<frame:06d>.png``), then ``oracle/<unit>.parquet`` and, last, the unit's commit
record ``labels/<unit>.parquet``. Every file is written atomically, and is a pure function of (seed,
scene index, settings, body models), so a unit redone after a crash writes the same bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from core.body_models import BodyModelSet
from core.scenes.build import BuiltScene, SceneBuilder
from core.scenes.sampler import SceneSampler
from core.scenes.settings import SceneSettings
from pipelines.annotations import concat_rows, labels_table, scene_rows
from pipelines.body_model_sets import load_body_model_set
from pipelines.readers import read_image
from pipelines.storage import join, read_bytes, table_to_bytes, write_bytes_atomic
from pipelines.synth.media import encode_jpeg, encode_mask, encode_mp4
from pipelines.synth.oracle import oracle_table

log = logging.getLogger(__name__)
UNIT_PREFIX = "scenes."


@dataclass(frozen=True)
class SceneUnit:
    """Scenes [start, stop) of the dataset; committed as ``labels/<name>``."""

    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"{UNIT_PREFIX}{self.start:09d}-{self.stop:09d}.parquet"

    @classmethod
    def from_name(cls, name: str) -> SceneUnit | None:
        """The unit a committed file name records, or None for other names."""
        if not (name.startswith(UNIT_PREFIX) and name.endswith(".parquet")):
            return None
        try:
            start, stop = (int(v) for v in name[len(UNIT_PREFIX):-len(".parquet")].split("-"))
        except ValueError:
            return None
        return cls(start, stop) if 0 <= start < stop else None


def plan_units(scenes: int, per_unit: int, committed: set[str]) -> list[SceneUnit]:
    """Units still to make for scenes [0, scenes): the grid [k * per_unit, (k + 1) * per_unit) minus the
    ranges already committed (a smaller earlier run may have committed the first part of a cell)."""
    done = sorted((u for u in (SceneUnit.from_name(n) for n in committed) if u is not None), key=lambda u: u.start)
    units = []
    for start in range(0, scenes, per_unit):
        stop = min(start + per_unit, scenes)
        cursor = start
        for unit in done:
            if unit.stop <= cursor or unit.start >= stop:
                continue
            if unit.start > cursor:
                units.append(SceneUnit(cursor, unit.start))
            cursor = max(cursor, unit.stop)
        if cursor < stop:
            units.append(SceneUnit(cursor, stop))
    return units


@dataclass(frozen=True)
class SynthSpec:
    """What a worker needs to make scenes: the settings, the seed, the body models (``open`` or a folder
    of SMPL-format files; local path or URI) and the name of that set, the user's background images
    and motion files (URIs, sorted), and the metadata stored in every Parquet file."""

    settings: SceneSettings
    seed: int
    body_models: str
    body_model_set: str
    backgrounds: tuple[str, ...] = ()
    motions: tuple[str, ...] = ()
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class UnitStats:
    name: str
    scenes: int
    frames: int
    persons: int


def load_body_models(spec: SynthSpec) -> BodyModelSet:
    """The body-model set scenes are made on (SMPL-A with SMIL for babies, as BEV uses)."""
    return load_body_model_set(spec.body_models, for_bev=True)


def load_motion(uri: str) -> np.ndarray:
    """A user's motion file -> its poses (T, >= 66) axis-angle (SMPL / SMPL-H order): an AMASS-style
    ``.npz`` (array ``poses``) or a ``.bvh`` on SMPL's joint names (core/formats/bvh_read.py: rotations
    only, rest pose SMPL's T-pose orientation). Raises MotionFileError naming the file."""
    import io
    import zipfile

    from core.formats.bvh_read import smpl_motion_from_bvh
    from core.formats.motion import MotionFileError

    if uri.lower().endswith(".bvh"):
        return smpl_motion_from_bvh(read_bytes(uri).decode("utf-8", errors="replace"), uri).poses
    if not uri.lower().endswith(".npz"):
        raise MotionFileError(f"{uri}: motion files are .npz (AMASS-style) or .bvh")
    data = read_bytes(uri)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            poses = np.asarray(arrays["poses"], np.float64) if "poses" in arrays else None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise MotionFileError(f"{uri}: not a readable npz file ({err})") from None
    if poses is None:
        raise MotionFileError(f"{uri}: motion file lacks the 'poses' array (T, >= 66 axis-angle)")
    if poses.ndim != 2 or poses.shape[1] < 66 or len(poses) == 0 or not np.isfinite(poses).all():
        raise MotionFileError(f"{uri}: 'poses' must be a finite (T, >= 66) array, got {poses.shape}")
    return poses


class SceneGenerator:
    """Makes and writes units; loads the body models and motions once (one per Ray worker)."""

    def __init__(self, spec: SynthSpec):
        self.spec = spec
        body = load_body_models(spec)
        motions = tuple(load_motion(uri) for uri in spec.motions)
        self.sampler = SceneSampler(body, spec.settings, motions, len(spec.backgrounds))
        self.builder = SceneBuilder(body, spec.settings.placement)

    def build(self, index: int) -> BuiltScene:
        """Scene ``index``, drawn and rendered."""
        scene = self.sampler.sample(self.spec.seed, index)
        folder = None
        if scene.look.folder_pick >= 0:
            folder = read_image(self.spec.backgrounds[scene.look.folder_pick])[..., ::-1]  # BGR -> RGB
        return self.builder.build(scene, folder)

    def run(self, unit: SceneUnit, output: str) -> UnitStats:
        """Make scenes [unit.start, unit.stop) and commit them under ``output``."""
        rows: list[dict[str, np.ndarray]] = []
        fps: dict[str, float] = {}
        frames = 0
        for index in range(unit.start, unit.stop):
            built = self.build(index)
            source = write_media(built, output)
            if built.scene.kind == "video":
                fps[source] = built.scene.fps
            rows.append(scene_rows(built, source))
            frames += len(built.frames)
        labels, oracle = unit_tables(concat_rows(rows), fps, self.spec)
        write_table(oracle, join(join(output, "oracle"), unit.name))
        write_table(labels, join(join(output, "labels"), unit.name))
        return UnitStats(unit.name, unit.stop - unit.start, frames, labels.num_rows)


def unit_tables(rows: dict[str, np.ndarray], fps: dict[str, float], spec: SynthSpec) -> tuple[pa.Table, pa.Table]:
    """The person rows of a unit's scenes (in scene order) -> its labels and oracle tables; ``fps``
    maps video sources to their frame rate."""
    labels = labels_table(rows, spec.body_model_set, spec.metadata)
    return labels, oracle_table(labels, fps, spec.metadata)


def write_table(table: pa.Table, uri: str) -> None:
    write_bytes_atomic(uri, table_to_bytes(table))


def write_media(built: BuiltScene, output: str) -> str:
    """Write the scene's image (or video) and instance masks; returns the source path relative to
    ``output``."""
    scene = built.scene
    masks = join(output, "masks")
    if scene.kind == "image":
        frame = built.frames[0]
        source = f"images/{scene.stem}.jpg"
        write_bytes_atomic(join(masks, f"{scene.stem}.png"), encode_mask(frame.ids))
        write_bytes_atomic(join(output, source), encode_jpeg(frame.image, scene.look.jpeg_quality))
        return source
    source = f"videos/{scene.stem}.mp4"
    for t, frame in enumerate(built.frames):
        write_bytes_atomic(join(join(masks, scene.stem), f"{t:06d}.png"), encode_mask(frame.ids))
    write_bytes_atomic(join(output, source), encode_mp4([f.image for f in built.frames], scene.fps))
    return source
