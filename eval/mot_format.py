"""MOTChallenge text format: ground truth in, meshfleet tracks out.

One line per box: ``frame, id, left, top, width, height, conf, x, y, z`` (frames start at 1).
Ground-truth lines with ``conf == 0`` are ignore regions, and when a class column is present only
class 1 (pedestrian) or -1 counts, as in MOT17 / MOT20.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from core.boxes import joint_boxes
from eval.mot import FrameBoxes
from pipelines.schema import column_array
from pipelines.storage import read_bytes


class MotFormatError(ValueError):
    """A MOT text file is malformed; the message names the file and line."""


@dataclass
class MotSequence:
    """Boxes per 1-based frame of one sequence (frames without boxes are absent)."""

    name: str
    frames: dict[int, FrameBoxes]

    def aligned(self, length: int) -> list[FrameBoxes]:
        return [self.frames.get(f, FrameBoxes.empty()) for f in range(1, length + 1)]

    @property
    def last_frame(self) -> int:
        return max(self.frames, default=0)


def parse_mot(text: str, name: str, source: str, ground_truth: bool) -> MotSequence:
    rows: dict[int, list[tuple[int, list[float]]]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.replace(" ", "").split(",")]
            frame, ident, box = int(values[0]), int(values[1]), values[2:6]
        except (ValueError, IndexError) as err:
            raise MotFormatError(f"{source}:{number}: not a MOT line ({line.strip()!r})") from err
        if ground_truth and len(values) > 6 and values[6] == 0:
            continue  # ignore region
        if ground_truth and len(values) > 7 and int(values[7]) not in (1, -1):
            continue  # not a pedestrian
        rows.setdefault(frame, []).append((ident, box))
    frames = {f: FrameBoxes(np.array([i for i, _ in r], np.int64), np.array([b for _, b in r], np.float64))
              for f, r in rows.items()}
    return MotSequence(name, frames)


def read_ground_truth(root: str) -> dict[str, MotSequence]:
    """Sequences under ``root``: ``<seq>/gt/gt.txt`` (MOTChallenge layout) or ``<seq>.txt``."""
    found: dict[str, str] = {}
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if os.path.isfile(os.path.join(path, "gt", "gt.txt")):
            found[entry] = os.path.join(path, "gt", "gt.txt")
        elif entry.endswith(".txt") and os.path.isfile(path):
            found[entry[:-4]] = path
    if not found:
        raise MotFormatError(f"{root}: no <seq>/gt/gt.txt or <seq>.txt ground truth found")
    return {name: parse_mot(read_bytes(path).decode(), name, path, ground_truth=True) for name, path in found.items()}


def sequence_name(source: str) -> str:
    """Results ``source`` (a video URI) -> its file stem."""
    return os.path.splitext(source.rstrip("/").rsplit("/", 1)[-1])[0]


def sequence_names(sources: list[str]) -> dict[str, str]:
    """A unique MOT sequence name per source: the file stem, or -- where stems collide (two
    ``clip.mp4`` in different folders) -- the stem prefixed with as many parent folders as it takes
    (``a_clip``, ``b_clip``), joined with ``_``; failing that (``clip.mp4`` and ``clip.avi`` side by
    side), with a digest of the source."""
    split = {s: s.replace("\\", "/").rstrip("/").split("/") for s in sources}
    folders = {s: [f for f in path[:-1] if f and not f.endswith(":")] for s, path in split.items()}
    stems = {s: os.path.splitext(path[-1])[0] for s, path in split.items()}
    depth = dict.fromkeys(sources, 0)  # parent folders in the name
    digest: set[str] = set()

    def name(source: str) -> str:
        parents = folders[source][len(folders[source]) - depth[source]:] if depth[source] else []
        tail = [hashlib.sha1(source.encode()).hexdigest()[:8]] if source in digest else []
        return "_".join([*parents, stems[source], *tail])

    while True:
        groups: dict[str, list[str]] = {}
        for source in sources:
            groups.setdefault(name(source), []).append(source)
        clashes = [group for group in groups.values() if len(group) > 1]
        if not clashes:
            return {source: name(source) for source in sources}
        grown = [s for group in clashes for s in group if depth[s] < len(folders[s])]
        if not grown:
            digest.update(s for group in clashes for s in group)
        for source in grown:
            depth[source] += 1


def tracks_from_results(table: pa.Table) -> dict[str, MotSequence]:
    """Tracked rows of a results table -> MOT sequences (boxes from the extents of ``pj2d_org``,
    clipped to the image; frames shifted to start at 1; rows without a track id are left out)."""
    table = table.filter(pa.compute.and_(table.column("error").is_null(), table.column("track_id").is_valid()))
    if table.num_rows == 0:
        return {}
    sizes = np.column_stack([table.column("image_height").to_numpy(), table.column("image_width").to_numpy()])
    boxes = joint_boxes(column_array(table, "pj2d_org"), sizes)
    sources = table.column("source").to_pylist()
    unique = sequence_names(sorted(set(sources)))
    names = [unique[s] for s in sources]
    frames = table.column("frame").to_numpy() + 1
    ids = table.column("track_id").to_numpy()
    grouped: dict[str, dict[int, list[int]]] = {}
    for row, (name, frame) in enumerate(zip(names, frames, strict=True)):
        grouped.setdefault(name, {}).setdefault(int(frame), []).append(row)
    return {name: MotSequence(name, {f: FrameBoxes(ids[r], boxes[r].astype(np.float64)) for f, r in per.items()})
            for name, per in grouped.items()}


def format_mot(seq: MotSequence) -> str:
    """A sequence as MOT text, frame by frame (confidence 1, no world coordinates)."""
    out = io.StringIO()
    for frame in sorted(seq.frames):
        boxes = seq.frames[frame]
        for ident, box in zip(boxes.ids, boxes.boxes, strict=True):
            out.write(f"{frame},{int(ident)},{box[0]:.2f},{box[1]:.2f},{box[2]:.2f},{box[3]:.2f},1,-1,-1,-1\n")
    return out.getvalue()
