"""Work units: the chunks a job is cut into, each committed as exactly one results file.

A unit is a group of consecutive images, a frame range of one video, or one input that could not
be opened at all. Unit file names are deterministic (a digest of the unit's inputs and range), so a
rerun over the same plan finds which units are already committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

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

    @classmethod
    def from_json(cls, text: str) -> WorkUnit:
        data = json.loads(text)
        data["uris"] = tuple(data["uris"])
        return cls(**data)


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


def plan_digest(units: Sequence[WorkUnit]) -> str:
    """Identity of a plan: changes when the inputs or the chunking change."""
    return hashlib.sha256("\n".join(u.name for u in units).encode()).hexdigest()
