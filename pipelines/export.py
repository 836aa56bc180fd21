"""``meshfleet export gltf|bvh|npz``: one animation file per track of a results dataset.

A track is the rows of one video that share a ``track_id`` (in frame order), or one person of one
image (a one-frame track). Video rows without a track id are skipped and counted: run
``meshfleet track`` first. The smoothed columns (``smpl_thetas_smoothed`` ...) are used when the
dataset has them. Each track gets one rest shape, the mean of its betas, meshed by the body model
the results were made with (SMPL for ROMP; SMPL-A, or SMIL for infants, for BEV). Frames a track
missed between two observations are interpolated (see ``core.formats.motion.fill_gaps``).

Output names: ``<video stem>.track<id>.<ext>`` and ``<image stem>.person<p>.<ext>`` under the
output folder / ``s3://`` prefix (``-<digest>`` is added to the stem when two sources share one).
Only those files are written; nothing is deleted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from core.body_models import BodyModel, BodyModelSet, root_offset
from core.formats.amass import amass_npz_bytes
from core.formats.bvh import bvh_bytes
from core.formats.gltf import Animation, PerspectiveCamera, SkinnedMesh, glb_bytes
from core.formats.motion import (
    WorldMotion,
    euler_zxy_degrees,
    fill_gaps,
    quaternions_xyzw,
    rotation_matrices,
    to_world,
)
from core.formats.skeleton import smpl_skeleton
from core.smpl_pickle import BodyModelFileError
from pipelines.body_model_sets import load_body_model_set
from pipelines.results import read_results_file
from pipelines.schema import CAMERA_CONVENTION, column_array, read_metadata
from pipelines.storage import join, list_files, normalise, read_parquet_schema, write_bytes_atomic
from pipelines.tracking import DEFAULT_FPS, fps_of, index_videos, is_video, video_digest

EXTENSIONS = {"gltf": ".glb", "bvh": ".bvh", "npz": ".npz"}
GENDERS = ("neutral", "male", "female")
ROW_COLUMNS = ("source", "frame", "timestamp", "person", "track_id", "model", "error", "image_height", "image_width")
MOTION_COLUMNS = ("smpl_thetas", "smpl_betas", "cam_trans")
FOV_DEGREES = 60.0  # ROMP / BEV's canonical camera over the padded square image (pipelines.schema)
FORWARD_CHUNK = 256  # frames per body-model forward when root-alignment offsets are needed


class ExportError(ValueError):
    """A user error: the message is one line naming the input."""


@dataclass(frozen=True)
class ExportJob:
    """``meshfleet export {gltf,bvh,npz}``: the tracks of ``results`` as ``format`` files under ``output``.

    ``track``: only this track (its id in every video, or an exported name such as ``walk.track3``);
    ``body_models``: the body-model files (folder / ``s3://`` prefix, see ``load_body_models``);
    ``gender``: that of the SMPL file; default, the one the results were made with.
    """

    results: str
    output: str
    format: str = "gltf"
    track: str | None = None
    body_models: str = "~/.romp"
    gender: str | None = None

    def __post_init__(self) -> None:
        if self.format not in EXTENSIONS:
            raise ValueError(f"format must be one of {', '.join(EXTENSIONS)} (or mot), not {self.format!r}")
        if self.gender is not None and self.gender not in GENDERS:
            raise ValueError(f"gender must be one of {', '.join(GENDERS)}, not {self.gender!r}")


@dataclass
class ExportSummary:
    written: list[str] = field(default_factory=list)
    untracked: int = 0  # video detections without a track id (not exported)

    def line(self) -> str:
        note = f"; {self.untracked} video detections without a track id skipped" if self.untracked else ""
        return f"{len(self.written)} tracks exported{note}"


@dataclass(frozen=True)
class Track:
    """One exported track, as stored (camera frame): frames (N,) increasing; thetas (N, 72); betas
    (N, K); cam_trans (N, 3) metres; image_hw (height, width) px; fps of its video (30 for images)."""

    name: str
    source: str
    track_id: int | None
    model: str
    frames: np.ndarray
    thetas: np.ndarray
    betas: np.ndarray
    cam_trans: np.ndarray
    image_hw: tuple[int, int]
    fps: float


def load_body_models(location: str, gender: str, for_bev: bool) -> BodyModelSet:
    """The body models ``--body-models`` names (``open``, or a folder / ``s3://`` prefix with the
    official files), with errors as :class:`ExportError`."""
    try:
        return load_body_model_set(location, gender, for_bev=for_bev).eval()
    except (BodyModelFileError, FileNotFoundError) as err:
        raise ExportError(f"--body-models {location}: {err}") from err


Loader = Callable[[list[str]], pa.Table]


def read_result_groups(results: str) -> tuple[pa.Schema, list[Loader]]:
    """The export's one reader of a results dataset: its schema, and loaders of its rows: one per
    video (all its rows) and one per file that holds image rows (those rows). A loader reads only
    the columns it is given (``source`` and ``error`` among them) and drops error rows."""
    files = list_files(results, ".parquet")
    if not files:
        raise ExportError(f"{results}: no results dataset here (no .parquet files)")
    videos, image_files = index_videos(files)

    def video(source: str, parts: list[tuple[int, str]]) -> Loader:
        return lambda columns: _valid(pa.concat_tables([read_results_file(path, columns, source) for _, path in parts]))

    def images(path: str) -> Loader:
        def load(columns: list[str]) -> pa.Table:
            table = _valid(read_results_file(path, columns))
            return table.filter(pa.array([not is_video(s) for s in table.column("source").to_pylist()], pa.bool_()))
        return load

    loaders = [video(s, p) for s, p in sorted(videos.items())] + [images(p) for p in image_files]
    return read_parquet_schema(files[0]), loaders


def _valid(table: pa.Table) -> pa.Table:
    return table.filter(table.column("error").is_null())


def motion_columns(schema_names: list[str]) -> dict[str, str]:
    """Which column holds each motion quantity: the smoothed one when the dataset has it."""
    return {name: f"{name}_smoothed" if f"{name}_smoothed" in schema_names else name for name in MOTION_COLUMNS}


def tracks_in(table: pa.Table, columns: dict[str, str], stems: dict[str, str]) -> tuple[list[Track], int]:
    """The tracks among the rows of one video, or of images; and how many video rows had no track id.
    ``stems`` maps sources to their output-name stems, extended here as sources appear."""
    table = table.sort_by([("source", "ascending"), ("frame", "ascending"), ("person", "ascending")])
    sources = np.array(table.column("source").to_pylist(), dtype=object)
    video = np.array([is_video(s) for s in sources], dtype=bool)
    ids = pc.fill_null(table.column("track_id"), -1).to_numpy(zero_copy_only=False)
    frames = table.column("frame").to_numpy(zero_copy_only=False)
    stamps = pc.fill_null(table.column("timestamp"), np.nan).to_numpy(zero_copy_only=False)
    persons = table.column("person").to_numpy(zero_copy_only=False)
    arrays = {name: column_array(table, column) for name, column in columns.items()}
    models = table.column("model").to_pylist()
    sizes = np.column_stack([table.column("image_height").to_numpy(zero_copy_only=False),
                             table.column("image_width").to_numpy(zero_copy_only=False)])
    groups: dict[tuple[str, int, int], list[int]] = {}
    for row in range(table.num_rows):
        if video[row] and ids[row] >= 0:  # a video track: all its rows
            groups.setdefault((sources[row], int(ids[row]), -1), []).append(row)
        elif not video[row]:  # an image person: a one-frame track of its own
            groups[(sources[row], -1, row)] = [row]
    fps = {s: fps_of(frames[sources == s], stamps[sources == s]) for s in set(sources[video])}
    tracks = []
    for (source, track_id, _), rows in groups.items():
        rows = [r for i, r in enumerate(rows) if i == 0 or frames[r] != frames[rows[i - 1]]]  # one row per frame
        stem = stems.setdefault(source, _stem(source, stems))
        first = rows[0]
        tracks.append(Track(
            name=f"{stem}.track{track_id}" if track_id >= 0 else f"{stem}.person{int(persons[first])}",
            source=source, track_id=track_id if track_id >= 0 else None, model=str(models[first]),
            frames=frames[rows], thetas=arrays["smpl_thetas"][rows], betas=arrays["smpl_betas"][rows],
            cam_trans=arrays["cam_trans"][rows], image_hw=(int(sizes[first, 0]), int(sizes[first, 1])),
            fps=fps.get(source, DEFAULT_FPS),
        ))
    return tracks, int((video & (ids < 0)).sum())


def _stem(source: str, taken: dict[str, str]) -> str:
    stem = os.path.splitext(source.rstrip("/").rsplit("/", 1)[-1])[0]
    return f"{stem}-{video_digest(source)[:8]}" if stem in taken.values() else stem


def selects(track: Track, wanted: str | None) -> bool:
    """``--track``: an integer matches that track id in every video; anything else, an exported name."""
    if wanted is None:
        return True
    return track.name == wanted or (wanted.isdigit() and track.track_id == int(wanted))


@dataclass(frozen=True)
class PosedTrack:
    """A track turned into a world-frame SMPL motion, with the rest body that carries it."""

    track: Track
    layer: BodyModel
    betas: np.ndarray  # (K,) the betas that layer takes
    rest_joints: np.ndarray  # (71, 3) zero-pose joint set, body frame
    rest_verts: np.ndarray  # (V, 3)
    motion: WorldMotion
    observed: np.ndarray  # (T,) False where the frame was interpolated


def pose_track(track: Track, models: BodyModelSet, root_aligned: bool) -> PosedTrack:
    """The track in the world frame (``core.formats.motion``). ``root_aligned``: the results' joints
    and ``cam_trans`` refer to the body shifted so that the LSP hip midpoint is at the origin (BEV,
    ROMP with --root-align); the same shift, per frame, is taken off the translation here."""
    frames, thetas, trans, observed = fill_gaps(track.frames, track.thetas, track.cam_trans)
    layer, betas = models.layer_for(track.model, torch.from_numpy(track.betas.mean(0).astype(np.float32)))
    with torch.no_grad():
        rest = layer(betas[None], torch.zeros(1, 72))
        if root_aligned:
            offsets = [root_offset(layer(betas.expand(len(chunk), -1), torch.from_numpy(chunk).float())).numpy()
                       for chunk in np.split(thetas, range(FORWARD_CHUNK, len(thetas), FORWARD_CHUNK))]
            trans = trans - np.concatenate(offsets)
    rest_joints = rest.joints[0].double().numpy()
    poses, root = to_world(thetas, trans, rest_joints[0])
    return PosedTrack(track, layer, betas.numpy(), rest_joints, rest.verts[0].double().numpy(),
                      WorldMotion(poses, root, frames, track.fps), observed)


def file_bytes(posed: PosedTrack, fmt: str, gender: str) -> bytes:
    """The exported file of one posed track in format ``fmt`` (a key of EXTENSIONS)."""
    skeleton = smpl_skeleton(posed.rest_joints, posed.layer.parents.numpy())
    motion = posed.motion
    if fmt == "bvh":
        return bvh_bytes(skeleton, euler_zxy_degrees(rotation_matrices(motion.poses)), motion.root_positions,
                         1.0 / motion.fps)
    if fmt == "npz":  # SMPL(poses, betas) puts the pelvis at its rest position: trans is the rest
        trans = motion.root_positions - skeleton.rest_joints[0]
        return amass_npz_bytes(motion.poses, trans, posed.betas, motion.fps, gender,
                               extra={"frames": motion.frames, "observed": posed.observed})
    height, width = posed.track.image_hw
    focal = max(height, width) / (2 * np.tan(np.radians(FOV_DEGREES) / 2))
    camera = PerspectiveCamera(yfov=float(2 * np.arctan(height / (2 * focal))), aspect_ratio=width / height)
    mesh = SkinnedMesh(posed.rest_verts, posed.layer.faces.numpy(), posed.layer.lbs_weights.double().numpy())
    animation = Animation(motion.times, quaternions_xyzw(motion.poses), motion.root_positions)
    track = posed.track
    extras = {"source": track.source, "track_id": track.track_id, "model": track.model, "fps": motion.fps,
              "first_frame": int(motion.frames[0]), "interpolated_frames": int((~posed.observed).sum()),
              "world": "Y up, metres; camera at the origin looking down -Z (camera frame x right, y down, "
                       "z forward turned 180 degrees about x)", "camera": CAMERA_CONVENTION}
    return glb_bytes(track.name, skeleton, mesh, animation, camera, extras)


def export_tracks(job: ExportJob, progress: Callable[[int, int], None] | None = None) -> ExportSummary:
    """Write one file per selected track (each atomically); ``progress(done, total)`` after each video
    or image file. Raises ExportError for user errors (no dataset, no such track, no body models)."""
    results, output = normalise(job.results).rstrip("/"), normalise(job.output).rstrip("/")
    if output == results or output.startswith(results + "/") or results.startswith(output + "/"):
        raise ExportError(f"--output {job.output} overlaps the results dataset {job.results}: give another folder")
    schema, loaders = read_result_groups(job.results)
    metadata = read_metadata(schema)
    columns = motion_columns(schema.names)
    gender = job.gender or metadata.get("gender") or "neutral"
    models: dict[bool, BodyModelSet] = {}
    summary, stems, names = ExportSummary(), dict[str, str](), list[str]()
    for done, load in enumerate(loaders, start=1):
        tracks, untracked = tracks_in(load([*ROW_COLUMNS, *columns.values()]), columns, stems)
        summary.untracked += untracked
        names.extend(t.name for t in tracks)
        for track in (t for t in tracks if selects(t, job.track)):
            bev = track.model == "bev"
            if bev not in models:
                models[bev] = load_body_models(job.body_models, gender, for_bev=bev)
            aligned = bool(metadata.get("root_align", bev))
            uri = join(job.output, track.name + EXTENSIONS[job.format])
            write_bytes_atomic(uri, file_bytes(pose_track(track, models[bev], aligned), job.format, gender))
            summary.written.append(uri)
        if progress is not None:
            progress(done, len(loaders))
    if job.track is not None and not summary.written:
        known = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "") if names else "none"
        raise ExportError(f"{job.results}: no track {job.track!r} (tracks: {known})")
    return summary
