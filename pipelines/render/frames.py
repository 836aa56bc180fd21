"""Stage 1 of ``meshfleet render``: one unit (an image or a video) -> one row per frame.

A row holds the frame (RGB), the people of that frame padded to the dataset's ``max_people``
(their parameters, joints and camera), the camera the frame is seen with, and the side / top
views of the unit -- fitted once per unit on all of its people, so that a video's views stay
steady. Columns (n frames, M = max_people, K = betas, V = vertices)::

    unit (n,) str · frame (n,) int64 · error (n,) str ('' = none) · image (n, H, W, 3) uint8 RGB
    people (n,) int64 · key (n, M) int64 colour key (track id, else person index; -1 = grey)
    thetas (n, M, 72) · betas (n, M, K) · cam_trans (n, M, 3) · joints (n, M, 71, 3) · pj2d (n, M, 71, 2)
    camera (n, 3) focal, cx, cy (px) · views (n, 2, 4) side / top view: centre xyz, distance (m)
    verts (n, M, V, 3) when the results saved usable vertices

A frame that cannot be read keeps its row: a black image of the results' size and the error.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from core.render import SIDE, TOP, canonical_camera, fit_camera, fit_view
from pipelines.readers import InputError, read_image
from pipelines.render.plan import MediaUnit, ResultsInfo
from pipelines.results import read_results_file
from pipelines.schema import column_array
from pipelines.video import VideoInfo, iter_video_frames

FRAMES_PER_BATCH = 8
# The views are fitted on the joints, which lie inside the body: this margin (>= 1) leaves room for
# the surface around them (head top, hands, feet reach ~0.1-0.15 m past their joints).
VIEW_MARGIN = 1.35
Batch = dict[str, np.ndarray]


def read_unit_rows(unit: MediaUnit, info: ResultsInfo) -> pa.Table:
    """The good rows of ``unit`` from its results files, sorted by (frame, person)."""
    table = pa.concat_tables([read_results_file(path, info.read_columns(), unit.source) for path in unit.files],
                             promote_options="default")
    if "error" in table.column_names:
        table = table.filter(table.column("error").is_null())
    return table.sort_by([("frame", "ascending"), ("person", "ascending")])


def unit_views(points: np.ndarray, size: int) -> np.ndarray:
    """(2, 4) side and top views (centre xyz, distance) fitted on (P, 3) camera-frame points for a
    ``size`` x ``size`` picture; a view of nothing where there are no points."""
    tensor = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)).reshape(-1, 3)
    tensor = tensor[torch.isfinite(tensor).all(dim=1)]
    out = np.zeros((2, 4), np.float32)
    for row, rotation in enumerate((SIDE, TOP)):
        view = fit_view(tensor, rotation, size, size, margin=VIEW_MARGIN)
        out[row, :3], out[row, 3] = view.center.numpy(), view.distance
    return out


class UnitPeople:
    """The people of one unit, per frame, padded to ``max_people``."""

    def __init__(self, table: pa.Table, info: ResultsInfo, height: int, width: int):
        self.info, self.height, self.width = info, height, width
        self.frames = table.column("frame").to_numpy(zero_copy_only=False)
        n = table.num_rows
        cols = info.columns
        self.thetas = column_array(table, cols["smpl_thetas"], (72,)) if n else np.zeros((0, 72), np.float32)
        self.betas = column_array(table, cols["smpl_betas"], (info.num_betas,)) if n else \
            np.zeros((0, info.num_betas), np.float32)
        self.cam_trans = column_array(table, cols["cam_trans"], (3,)) if n else np.zeros((0, 3), np.float32)
        self.joints = column_array(table, "joints", (71, 3)) if n else np.zeros((0, 71, 3), np.float32)
        self.pj2d = column_array(table, "pj2d_org", (71, 2)) if n else np.zeros((0, 71, 2), np.float32)
        cam = column_array(table, "cam", (3,)) if n else np.zeros((0, 3), np.float32)
        # no network camera (NaN cam, the synthetic oracle): pj2d_org is in the scene's own camera
        self.own_camera = np.asarray(np.isnan(cam).all(axis=1), dtype=bool)
        self.verts = column_array(table, "verts") if info.verts and n else None
        person = table.column("person").to_numpy(zero_copy_only=False).astype(np.int64)
        track = (pc.fill_null(table.column("track_id"), -1).to_numpy(zero_copy_only=False).astype(np.int64)
                 if "track_id" in table.column_names else np.full(n, -1, np.int64))
        self.key = track if (track >= 0).any() else person

    def views(self) -> np.ndarray:
        points = self.joints + self.cam_trans[:, None]
        return unit_views(points, self.height or 1)

    def camera(self, rows: np.ndarray) -> np.ndarray:
        """(3,) focal, cx, cy of a frame whose people are ``rows``: canonical FOV 60, or -- for rows
        without a network camera (the synthetic oracle) -- fitted to their pj2d_org."""
        if len(rows) and self.own_camera[rows].all():
            points = torch.from_numpy(self.joints[rows] + self.cam_trans[rows, None])
            try:
                cam = fit_camera(points, torch.from_numpy(self.pj2d[rows]), self.height, self.width)
                return np.array([cam.focal[0], *cam.center[0]], np.float32)
            except ValueError:
                pass
        cam = canonical_camera(max(self.height, 1), max(self.width, 1))
        return np.array([cam.focal[0], *cam.center[0]], np.float32)

    def frame_columns(self, frames: np.ndarray) -> Batch:
        """The people columns of ``frames`` (n,) (see the module docstring)."""
        m = max(self.info.max_people, 1)
        n = len(frames)
        out: Batch = {
            "people": np.zeros(n, np.int64), "key": np.full((n, m), -1, np.int64),
            "thetas": np.zeros((n, m, 72), np.float32), "betas": np.zeros((n, m, self.info.num_betas), np.float32),
            "cam_trans": np.zeros((n, m, 3), np.float32), "joints": np.zeros((n, m, 71, 3), np.float32),
            "pj2d": np.full((n, m, 71, 2), np.nan, np.float32), "camera": np.zeros((n, 3), np.float32),
        }
        if self.verts is not None:
            out["verts"] = np.zeros((n, m, self.verts.shape[1], 3), np.float32)
        for i, frame in enumerate(frames):
            rows = np.flatnonzero(self.frames == frame)[:m]
            k = len(rows)
            out["people"][i], out["key"][i, :k] = k, self.key[rows]
            for name in ("thetas", "betas", "cam_trans", "joints", "pj2d"):
                out[name][i, :k] = getattr(self, name)[rows]
            if self.verts is not None:
                out["verts"][i, :k] = self.verts[rows]
            out["camera"][i] = self.camera(rows)
        return out


def read_frames(batch: Batch, info: ResultsInfo, chunk: int = FRAMES_PER_BATCH) -> Iterator[Batch]:
    """First stage: ``{"unit": [name], "payload": [MediaUnit json], "items": [n]}`` -> batches of
    frame rows, exactly n in all (see the module docstring)."""
    unit = MediaUnit.from_json(str(batch["payload"][0]))
    people = UnitPeople(read_unit_rows(unit, info), info, unit.height, unit.width)
    views = people.views()
    for frames, images, errors in _media_frames(unit, chunk):
        n = len(frames)
        out = {"unit": np.array([str(batch["unit"][0])] * n), "frame": np.asarray(frames, np.int64),
               "error": np.array(errors, dtype=str), "image": np.stack(images)}
        out.update(people.frame_columns(np.asarray(frames)))
        out["views"] = np.repeat(views[None], n, axis=0)
        yield out


def _media_frames(unit: MediaUnit, chunk: int) -> Iterator[tuple[list[int], list[np.ndarray], list[str]]]:
    """(frame indices, RGB images, errors) in chunks; unreadable frames are black with their error."""
    def black() -> np.ndarray:
        return np.zeros((max(unit.height, 2), max(unit.width, 2), 3), np.uint8)

    if unit.kind == "image":
        try:
            image, error = read_image(unit.media)[:, :, ::-1], ""
        except InputError as err:
            image, error = black(), str(err)
        yield [0], [np.ascontiguousarray(image)], [error]
        return
    frames: list[int] = []
    images: list[np.ndarray] = []
    errors: list[str] = []
    for index, bgr, error in _decode(unit):
        frames.append(index)
        images.append(black() if bgr is None else np.ascontiguousarray(bgr[:, :, ::-1]))
        errors.append(error)
        if len(frames) == chunk:
            yield frames, images, errors
            frames, images, errors = [], [], []
    if frames:
        yield frames, images, errors


def _decode(unit: MediaUnit) -> Iterator[tuple[int, np.ndarray | None, str]]:
    """(index, BGR image or None, error) for every frame of the video; a failure to open or decode
    stands for all the frames from there on."""
    info = VideoInfo(unit.frames, unit.fps, unit.height, unit.width)
    done = 0
    try:
        for frame in iter_video_frames(unit.media, 0, unit.frames, info):
            if frame.image is None:
                error = frame.error or f"{unit.media}: frame {frame.index} unreadable"
                break
            yield frame.index, frame.image, ""
            done = frame.index + 1
        else:
            return
    except InputError as err:
        error = str(err)
    for index in range(done, unit.frames):
        yield index, None, error
