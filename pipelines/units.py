"""Work units: the chunks a job is cut into, each committed as exactly one results file.

A unit is a group of consecutive images, a frame range of one video, or one input that could not
be opened at all. Unit file names are deterministic (a digest of the unit's inputs and range).

A job grows incrementally (:func:`plan_run`): the ledger of the output records every unit planned
so far and the fingerprint of every input; a rerun plans units only for inputs that are new or whose
content changed (their old rows are removed -- the unit file deleted, or rewritten without them when
it also holds other images -- and they are planned again), finishes units planned before but never
committed, and leaves alone the units of inputs no longer given (their rows stay).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from pipelines.readers import InputError, InputItem
from pipelines.video import VideoInfo, probe_video

UNIT_SUFFIX = ".parquet"


def _digest(text: str, n: int = 12) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def _stem(uri: str) -> str:
    stem = os.path.splitext(uri.rstrip("/").rsplit("/", 1)[-1])[0]
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:48] or "input"


@dataclass(frozen=True)
class WorkUnit:
    """``kind``: ``images`` (uris = the images), ``video`` (frames [start, stop) of uris[0], whose
    rate is ``fps``) or ``error`` (uris[0] could not be opened; ``error`` says why)."""

    kind: str
    uris: tuple[str, ...]
    start: int = 0
    stop: int = 0
    fps: float = 0.0
    total_frames: int = 0
    error: str | None = None

    @property
    def name(self) -> str:
        """Deterministic results file name of this unit."""
        if self.kind == "images":
            key = _digest("\n".join(self.uris))
            return f"images.{key}.{self.start:09d}-{self.stop:09d}{UNIT_SUFFIX}"
        if self.kind == "video":
            return f"{_stem(self.uris[0])}.{_digest(self.uris[0])}.f{self.start:09d}-{self.stop:09d}{UNIT_SUFFIX}"
        return f"error.{_stem(self.uris[0])}.{_digest(self.uris[0])}{UNIT_SUFFIX}"

    @property
    def frames(self) -> int:
        """Frames this unit covers (1 for an error unit)."""
        return len(self.uris) if self.kind == "images" else self.stop - self.start if self.kind == "video" else 1

    def video_info(self) -> VideoInfo:
        return VideoInfo(frames=self.total_frames, fps=self.fps, height=0, width=0)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> WorkUnit:
        return cls(**{**data, "uris": tuple(data["uris"])})

    @classmethod
    def from_json(cls, text: str) -> WorkUnit:
        return cls.from_dict(json.loads(text))


def _probe(item: InputItem) -> VideoInfo | InputError:
    try:
        return probe_video(item.uri)
    except InputError as err:
        return err


def plan_units(items: Sequence[InputItem], images_per_unit: int = 32, frames_per_chunk: int = 128,
               probe_workers: int = 16) -> list[WorkUnit]:
    """Cut the inputs into units, in input order: runs of consecutive images in groups of
    ``images_per_unit``, videos in chunks of ``frames_per_chunk`` frames (probed in parallel)."""
    if images_per_unit < 1 or frames_per_chunk < 1:
        raise ValueError("images_per_unit and frames_per_chunk must be >= 1")
    videos = [item for item in items if item.kind == "video"]
    with ThreadPoolExecutor(max_workers=max(1, min(probe_workers, len(videos)))) as pool:
        probed = dict(zip([v.uri for v in videos], pool.map(_probe, videos), strict=True))
    units: list[WorkUnit] = []
    run: list[str] = []
    position = 0

    def flush() -> None:
        nonlocal position
        for i in range(0, len(run), images_per_unit):
            group = tuple(run[i:i + images_per_unit])
            units.append(WorkUnit("images", group, start=position, stop=position + len(group)))
            position += len(group)
        run.clear()

    for item in items:
        if item.kind == "image":
            run.append(item.uri)
            continue
        flush()
        if item.kind == "missing":
            units.append(WorkUnit("error", (item.uri,), error=item.error))
            continue
        info = probed[item.uri]
        if isinstance(info, InputError):
            units.append(WorkUnit("error", (item.uri,), error=str(info)))
            continue
        for start in range(0, info.frames, frames_per_chunk):
            units.append(WorkUnit("video", (item.uri,), start=start, stop=min(start + frames_per_chunk, info.frames),
                                  fps=info.fps, total_frames=info.frames))
    flush()
    return units


@dataclass
class RunPlan:
    """What a run does to an output: ``todo`` = units to run (``new`` ones planned now + earlier ones
    never committed); ``stale``: names of old units to delete first (all their inputs changed, or they
    were never finished); ``trim``: committed image units that also hold changed images -> those
    images, whose rows are removed from the unit file; ``added`` / ``changed`` / ``removed``: input
    URIs new to the job, with new content, no longer given."""

    todo: list[WorkUnit] = field(default_factory=list)
    new: list[WorkUnit] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    trim: dict[str, list[str]] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)


def plan_run(items: Sequence[InputItem], known_units: dict[str, dict], known_inputs: dict[str, str],
             committed: set[str], images_per_unit: int = 32, frames_per_chunk: int = 128) -> RunPlan:
    """Plan one run over ``items`` given what the output's ledger knows (see the module docstring).

    ``known_units``: unit name -> :meth:`WorkUnit.as_dict`; ``known_inputs``: URI -> fingerprint;
    ``committed``: names of the unit files present.
    """
    current = {item.uri: item for item in items}
    plan = RunPlan(fingerprints={item.uri: item.fingerprint for item in items})
    plan.added = [uri for uri in current if uri not in known_inputs]
    plan.changed = [uri for uri in current if uri in known_inputs and known_inputs[uri] != current[uri].fingerprint]
    plan.removed = sorted(uri for uri in known_inputs if uri not in current)
    changed = set(plan.changed)
    covered = {uri for data in known_units.values() for uri in data["uris"]}
    replan = set(plan.added) | changed | {uri for uri in current if uri not in covered}
    for name, data in known_units.items():
        unit = WorkUnit.from_dict(data)
        redo = [uri for uri in unit.uris if uri in changed]
        unfinished = name not in committed
        if redo and not unfinished and len(redo) < len(unit.uris):
            plan.trim[name] = redo  # the other images of the unit keep their rows
        elif redo or (unfinished and not all(uri in current for uri in unit.uris)):
            plan.stale.append(name)  # deleted (if committed), its inputs still given planned again
            replan.update(uri for uri in unit.uris if uri in current)
        elif unfinished:
            plan.todo.append(unit)
    plan.new = plan_units([item for item in items if item.uri in replan], images_per_unit, frames_per_chunk)
    taken = {u.name for u in plan.todo}
    plan.todo.extend(u for u in plan.new if u.name not in taken)
    return plan
