"""Planning a render: which images and videos a results dataset covers, and where their media are.

One unit per source (image or video) of the results; the unit's name is its output file, the
source's path (relative to the sources' common folder for absolute paths and URIs) with the
output extension. Its items are the source's frames: 1 for an image, every frame of a video
(frames where nobody was found are rendered too, so the MP4 keeps the video's timing).
"""

from __future__ import annotations

import json
import os
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.export import motion_columns
from pipelines.readers import InputError, kind_of
from pipelines.schema import read_metadata
from pipelines.storage import join, list_files, normalise, read_parquet, read_parquet_schema
from pipelines.video import probe_video

VIEWS = ("overlay", "side", "top")
IMAGE_FORMATS = ("jpg", "png")
VIDEO_FORMATS = ("mp4",)
# Columns a results dataset must have to be rendered (README "Output: the Parquet results dataset").
REQUIRED = ("source", "frame", "person", "model", "cam", "cam_trans", "smpl_thetas", "smpl_betas", "joints",
            "pj2d_org", "image_height", "image_width")
PROBE_THREADS = 8


class RenderInputError(ValueError):
    """The results cannot be rendered (none there, columns missing); one line naming the input."""


@dataclass(frozen=True)
class ResultsInfo:
    """What the whole dataset shares. ``columns``: the columns holding thetas / betas / cam_trans
    (the smoothed ones when tracked); ``verts``: whether saved vertices can be used (raw results
    only: they are not smoothed); ``num_betas``: 10 (ROMP: SMPL) or 11 (BEV, oracle: SMPL-A / SMIL);
    ``max_people``: most people in one frame (people arrays are padded to it); ``root_aligned``:
    joints and vertices are relative to the LSP hip midpoint (BEV, ROMP --root-align)."""

    files: tuple[str, ...]
    columns: dict[str, str]
    verts: bool
    num_betas: int
    max_people: int
    root_aligned: bool
    gender: str
    optional: tuple[str, ...] = ()

    def read_columns(self) -> list[str]:
        """The columns a unit reads: the required ones, its motion columns and the optional
        columns present (``track_id``, ``error``; ``verts`` when usable)."""
        optional = [c for c in self.optional if c != "verts" or self.verts]
        return [*REQUIRED, *sorted(set(self.columns.values()) - set(REQUIRED)), *optional]


@dataclass(frozen=True)
class MediaUnit:
    """One image or video to render. ``name``: the output file (relative); ``media``: where its
    frames are read; ``frames``: how many; ``fps``: the video's rate (0 for an image); ``height`` /
    ``width``: the frame size the results were made on; ``files``: results files holding its rows."""

    name: str
    source: str
    media: str
    kind: str
    frames: int
    fps: float
    height: int
    width: int
    files: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MediaUnit:
        data = json.loads(text)
        return cls(**{**data, "files": tuple(data["files"])})


def read_results_info(results: str) -> tuple[ResultsInfo, pa.Table]:
    """The dataset's shared facts, and its (source, frame, person, image size, error) rows."""
    files = list_files(results, ".parquet")
    if not files:
        raise RenderInputError(f"{results}: no results dataset here (no .parquet files)")
    schema = read_parquet_schema(files[0])
    missing = [c for c in REQUIRED if c not in schema.names]
    if missing:
        raise RenderInputError(f"{files[0]}: results lack the column {missing[0]!r} needed to render "
                               f"(needs {', '.join(REQUIRED)})")
    metadata = read_metadata(schema)
    columns = motion_columns(schema.names)
    smoothed = any(c.endswith("_smoothed") for c in columns.values())
    index_columns = ["source", "frame", "image_height", "image_width", *(["error"] if "error" in schema.names else [])]
    parts = []
    for path in files:
        table = read_parquet(path, index_columns)
        if "error" not in table.column_names:
            table = table.append_column("error", pa.nulls(table.num_rows, pa.string()))
        parts.append(table.append_column("file", pa.array([path] * table.num_rows, pa.string())))
    rows = pa.concat_tables(parts)
    betas = schema.field(columns["smpl_betas"]).type
    num_betas = betas.list_size if pa.types.is_fixed_size_list(betas) else 10
    good = rows.filter(rows.column("error").is_null())
    counts = pc.value_counts(pc.binary_join_element_wise(good.column("source"),
                                                         pc.cast(good.column("frame"), pa.string()), "#"))
    max_people = int(pc.max(counts.field("counts")).as_py() or 0) if len(counts) else 0
    model = str(metadata.get("model", ""))
    info = ResultsInfo(tuple(files), columns, "verts" in schema.names and not smoothed, int(num_betas), max_people,
                       bool(metadata.get("root_align", model == "bev")), str(metadata.get("gender") or "neutral"),
                       tuple(c for c in ("track_id", "error", "verts") if c in schema.names))
    return info, rows


def media_uri(source: str, inputs: str | None, base: str) -> str:
    """Where the frames of ``source`` are: as stored without ``inputs``; with it, a relative source
    below ``inputs``, an absolute one at its path below ``base`` (the sources' common folder)."""
    if inputs is None:
        return normalise(source)
    if "://" not in source and not os.path.isabs(source):
        return join(normalise(inputs), source)
    return join(normalise(inputs), posixpath.relpath(source, base) if base else posixpath.basename(source))


def output_name(source: str, base: str, ext: str, taken: set[str]) -> str:
    """The output file of ``source``: its path below ``base`` with extension ``ext``; the source's
    own extension is kept in the name when two sources would collide (``a.png`` -> ``a.png.jpg``)."""
    relative = source.split("://", 1)[-1] if not base else posixpath.relpath(source, base)
    relative = relative.lstrip("/") or "input"
    name = posixpath.splitext(relative)[0] + ext
    if name in taken:
        name = relative + ext
    taken.add(name)
    return name


def common_folder(sources: list[str]) -> str:
    """The deepest folder holding every absolute source ('' when there are none or no common one)."""
    absolute = [s for s in sources if "://" in s or os.path.isabs(s)]
    if not absolute:
        return ""
    folders = [posixpath.dirname(s) for s in absolute]
    common = posixpath.commonpath(folders) if all(not f.startswith("s3://") for f in folders) else _common_uri(folders)
    return common


def _common_uri(folders: list[str]) -> str:
    parts = [f.split("/") for f in folders]
    shared = []
    for pieces in zip(*parts, strict=False):
        if len(set(pieces)) != 1:
            break
        shared.append(pieces[0])
    return "/".join(shared)


def plan_units(results: str, inputs: str | None, image_format: str = "jpg",
               video_format: str = "mp4") -> tuple[ResultsInfo, list[MediaUnit]]:
    """The dataset's facts and one unit per image / video source (sorted by source). A video whose
    media cannot be probed here keeps the frame count of its results; reading it reports the error."""
    info, rows = read_results_info(results)
    sources = sorted(set(rows.column("source").to_pylist()))
    base = common_folder(sources)
    src = np.array(rows.column("source").to_pylist(), dtype=object)
    frames = rows.column("frame").to_numpy(zero_copy_only=False)
    heights = pc.fill_null(rows.column("image_height"), 0).to_numpy(zero_copy_only=False)
    widths = pc.fill_null(rows.column("image_width"), 0).to_numpy(zero_copy_only=False)
    files = np.array(rows.column("file").to_pylist(), dtype=object)
    media = {s: media_uri(s, inputs, base) for s in sources}
    videos = [s for s in sources if kind_of(s) == "video"]
    with ThreadPoolExecutor(max_workers=PROBE_THREADS) as pool:
        probes = dict(zip(videos, pool.map(lambda s: _probe(media[s]), videos), strict=True))
    taken: set[str] = set()
    units = []
    for source in sources:
        mine = src == source
        sized = mine & (heights > 0)
        height, width = (int(heights[sized][0]), int(widths[sized][0])) if sized.any() else (0, 0)
        count, fps = 1, 0.0
        if source in probes:
            probed = probes[source]
            count = probed.frames if probed is not None else int(frames[mine].max()) + 1
            fps = probed.fps if probed is not None and probed.fps > 0 else 0.0
            if probed is not None and not height:
                height, width = probed.height, probed.width
        ext = "." + (video_format if source in probes else image_format)
        units.append(MediaUnit(output_name(source, base, ext, taken), source, media[source],
                               "video" if source in probes else "image", count, fps, height, width,
                               tuple(sorted(set(files[mine])))))
    return info, units


def _probe(uri: str):
    try:
        return probe_video(uri)
    except InputError:
        return None
