"""``meshfleet synth``: synthetic multi-person scenes with exact labels, in every layout meshfleet reads.

Plan the units of scenes still missing, claim the output, make them on Ray (one SceneGenerator per
worker), then derive the benchmark layouts and the contact sheet from the labels. A rerun resumes; a
rerun with more ``--scenes`` makes only the new ones; the same seed gives the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.scenes.settings import SceneSettings, parse_size
from jobs.config import ConfigError
from pipelines.annotations import ANNOTATION_VERSION
from pipelines.body_model_sets import OPEN as OPEN_SET
from pipelines.body_model_sets import is_open, load_body_model_set
from pipelines.jobstate import claim_output
from pipelines.ray_runner import RayRunner, ensure_ray
from pipelines.skeleton import Job, LocalRunner, Progress, Runner, run_job
from pipelines.storage import is_local, join, list_files, localize, normalise, read_bytes, write_bytes_atomic
from pipelines.synth.generator import SceneUnit, SynthSpec, load_motion, plan_units

log = logging.getLogger(__name__)
# what synth writes under its output: media, masks, annotations and the benchmark layouts
OWNED_FOLDERS = ("images", "videos", "masks", "labels", "oracle", "agora", "relative_human", "cmu_panoptic", "mot")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MOTION_SUFFIXES = (".npz", ".bvh")  # AMASS-style poses, BVH on SMPL's joint names


@dataclass(frozen=True)
class SynthConfig:
    """``meshfleet synth``: ``scenes`` scenes drawn with ``seed`` under ``output`` (URI).

    body_models: ``open`` (the shipped open set) or a folder of SMPL-format files; backgrounds: a
    folder of images to use as backgrounds; motions: AMASS-style ``.npz`` files
    (``poses`` (T, >= 66) axis-angle), ``.bvh`` files on SMPL's joint names, or folders of them, never
    downloaded by meshfleet; scenes_per_unit: scenes per work
    unit (one labels file each); workers: Ray actors (default: one per CPU); contact_sheet: how many of
    the first scenes the contact sheet shows.
    """

    output: str
    scenes: int = 100
    seed: int = 0
    body_models: str = OPEN_SET
    settings: SceneSettings = field(default_factory=SceneSettings)
    backgrounds: str | None = None
    motions: tuple[str, ...] = ()
    scenes_per_unit: int = 16
    workers: int | None = None
    overwrite: bool = False
    address: str | None = None
    use_ray: bool = True
    contact_sheet: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "output", normalise(str(self.output)))
        object.__setattr__(self, "motions", tuple(normalise(str(m)) for m in self.motions))
        if self.backgrounds:
            object.__setattr__(self, "backgrounds", normalise(str(self.backgrounds)))
        if self.body_models != OPEN_SET:
            object.__setattr__(self, "body_models", normalise(str(self.body_models)))

    def validate(self) -> SynthConfig:
        if self.scenes < 1 or self.seed < 0 or self.scenes_per_unit < 1 or self.contact_sheet < 0:
            raise ConfigError("scenes >= 1, seed >= 0, scenes_per_unit >= 1 and contact_sheet >= 0 are required")
        if self.workers is not None and self.workers < 1:
            raise ConfigError("workers: must be >= 1")
        try:
            self.settings.validate()
        except ValueError as err:
            raise ConfigError(f"settings.{err}") from err
        if self.settings.video is not None:
            odd = [s for s in self.settings.camera.sizes if any(v % 2 for v in parse_size(s))]
            if odd:
                raise ConfigError(f"settings.camera.sizes: videos need even widths and heights (H.264), not {odd}")
        if is_local(self.output) and os.path.exists(self.output) and not os.path.isdir(self.output):
            raise ConfigError(f"output: {self.output} exists and is not a directory")
        for name, uri in (("body_models", self.body_models), ("backgrounds", self.backgrounds),
                          *(("motions", m) for m in self.motions)):
            if uri and uri != OPEN_SET and _overlaps(normalise(uri), self.output):
                raise ConfigError(f"{name}: {uri} overlaps the output {self.output}; use another --output")
        if self.body_models != OPEN_SET and is_local(self.body_models) and not os.path.isdir(self.body_models):
            raise ConfigError(f"body_models: {self.body_models} is not a directory")
        if self.backgrounds and not background_files(self.backgrounds):
            raise ConfigError(f"backgrounds: no images ({', '.join(IMAGE_SUFFIXES)}) under {self.backgrounds}")
        return self


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def background_files(folder: str) -> tuple[str, ...]:
    return tuple(f for f in list_files(folder, "") if f.lower().endswith(IMAGE_SUFFIXES))


def motion_files(paths: tuple[str, ...]) -> tuple[str, ...]:
    """The motion files named, folders replaced by the ``.npz`` and ``.bvh`` files under them (sorted)."""
    found: list[str] = []
    for path in paths:
        if path.lower().endswith(MOTION_SUFFIXES):
            found.append(path)
        else:
            found.extend(f for f in list_files(path, "") if f.lower().endswith(MOTION_SUFFIXES))
    return tuple(found)


def _digest(uris: tuple[str, ...], contents: bool) -> str:
    sha = hashlib.sha256()
    for uri in uris:
        sha.update(os.path.basename(uri).encode())
        if contents:
            sha.update(hashlib.sha256(read_bytes(uri)).digest())
    return sha.hexdigest()


def job_identity(cfg: SynthConfig, spec: SynthSpec) -> dict:
    """What must match for a rerun to continue an output (not the number of scenes: it may grow)."""
    from core.open_body_model import SHIPPED_DIR
    from jobs.specs import to_dict

    body = str(SHIPPED_DIR) if is_open(spec.body_models) else localize(spec.body_models, directory=True)
    body_files = tuple(sorted(os.path.join(body, n) for n in os.listdir(body) if not n.startswith(".")))
    return {"job": "synth", "annotation_version": ANNOTATION_VERSION, "seed": cfg.seed,
            "settings": to_dict(cfg.settings), "body_model_set": spec.body_model_set,
            "body_models_sha256": _digest(body_files, contents=True), "scenes_per_unit": cfg.scenes_per_unit,
            "backgrounds_sha256": _digest(spec.backgrounds, contents=True),
            "motions_sha256": _digest(spec.motions, contents=True)}


@dataclass
class SynthSummary:
    scenes: int = 0
    units: int = 0
    skipped_units: int = 0
    made_scenes: int = 0
    frames: int = 0
    persons: int = 0
    layouts: dict = field(default_factory=dict)
    wall_s: float = 0.0

    def line(self) -> str:
        rate = self.made_scenes / self.wall_s if self.wall_s > 0 else 0.0
        layouts = "  ".join(f"{k} {v}" for k, v in self.layouts.items())
        return (f"scenes {self.scenes}  units {self.units} ({self.skipped_units} already done)  "
                f"made {self.made_scenes} scenes, {self.frames} frames, {self.persons} person rows  "
                f"wall {self.wall_s:.1f}s  "
                f"{rate:.2f} scenes/s\nlayouts: {layouts}")


def build_spec(cfg: SynthConfig, set_name: str) -> SynthSpec:
    """What the workers need; ``set_name`` is the loaded body-model set's name (``open-<version>``,
    ``smpl``)."""
    from jobs.infer import meshfleet_version
    from jobs.specs import to_dict

    backgrounds = background_files(cfg.backgrounds) if cfg.backgrounds else ()
    metadata = {"generator": "meshfleet synth", "annotation_version": ANNOTATION_VERSION, "seed": cfg.seed,
                "settings": to_dict(cfg.settings), "body_model_set": set_name,
                "meshfleet_version": meshfleet_version(),
                "camera": "per row: focal_px and principal_point of the scene's pinhole camera, square pixels"}
    return SynthSpec(cfg.settings, cfg.seed, cfg.body_models, set_name, backgrounds, motion_files(cfg.motions),
                     metadata)


def run_synth(cfg: SynthConfig, progress: Callable[[Progress], None] | None = None) -> SynthSummary:
    """Make (or resume) the dataset of ``cfg`` on the job skeleton (:mod:`pipelines.synth.job`);
    ``progress(Progress)`` as scenes come through (items = scenes). Raises
    :class:`pipelines.skeleton.Interrupted` on Ctrl-C / SIGTERM: committed units stay."""
    from eval.synth_layouts import write_layouts
    from pipelines.synth.job import CommitScenes, synth_stages, unit_of

    cfg.validate()
    start = time.perf_counter()
    for uri in motion_files(cfg.motions):
        load_motion(uri)  # fail early (MotionFileError: exit 2) naming a bad motion file, not in a Ray worker
    body = load_body_model_set(cfg.body_models, for_bev=True)  # fail early, naming a bad body-model file
    spec = build_spec(cfg, body.name)
    ledger = claim_output(cfg.output, "synth", job_identity(cfg, spec), cfg.overwrite)
    ledger.declare(folders=OWNED_FOLDERS, files=["contact_sheet.jpg"])  # file names are made with the scenes
    committed = {os.path.basename(f.replace("\\", "/")) for f in list_files(join(cfg.output, "labels"), ".parquet")}
    todo = plan_units(cfg.scenes, cfg.scenes_per_unit, committed)
    summary = SynthSummary(scenes=cfg.scenes, units=len(todo) + len(committed), skipped_units=len(committed))
    units = [unit_of(u) for u in todo]
    ledger.declare(units={u.name: {"start": s.start, "stop": s.stop} for u, s in zip(units, todo, strict=True)})
    commit = CommitScenes(spec)
    started = False
    if units and cfg.use_ray:
        import ray

        started = ensure_ray(cfg.address)
        workers = cfg.workers or max(1, int(ray.cluster_resources().get("CPU", os.cpu_count() or 1)))
        runner: Runner = RayRunner()
    else:
        workers, runner = 1, LocalRunner()
    stages = synth_stages(spec, cfg.output, min(workers, max(len(units), 1)), 1 if cfg.use_ray else None)
    try:
        done = run_job(Job(ledger, units, stages, commit), runner, progress)
    finally:
        if started:
            import ray

            ray.shutdown()
    summary.made_scenes, summary.persons, summary.frames = done.items_committed, done.rows, commit.frames
    if done.failed_units:
        raise RuntimeError(f"{len(done.failed_units)} units not made: {done.failed_units[0][1]}")
    summary.layouts = write_layouts(cfg.output, body)
    write_contact_sheet(cfg.output, cfg.contact_sheet)
    summary.wall_s = time.perf_counter() - start
    return summary


def write_contact_sheet(output: str, count: int) -> None:
    """``contact_sheet.jpg``: the first ``count`` still images with their masks and numbered boxes."""
    from pipelines.synth.media import contact_sheet_bytes

    data = contact_sheet_bytes(output, count)
    if data is not None:
        write_bytes_atomic(join(output, "contact_sheet.jpg"), data)


__all__ = ["SynthConfig", "run_synth", "SynthSummary", "SceneUnit"]
