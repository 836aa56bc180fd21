"""Input discovery and decoding: image files, folders, globs, manifests and videos, local or s3://.

Discovery never aborts on a bad input: a missing file or object becomes an item of kind
``missing`` carrying its error, so that the job records it as an error row and carries on.
Decoding failures raise :class:`InputError` naming the input.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import pyarrow.parquet as pq

from pipelines.storage import (
    PERMANENT_ERRORS,
    fingerprint,
    is_local,
    join,
    normalise,
    read_bytes,
    url_to_fs,
    video_url,
    with_retries,
)

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv"})
MANIFEST_EXTS = frozenset({".txt", ".csv", ".parquet"})


class InputError(RuntimeError):
    """An input could not be found, listed or decoded; the message names it."""


@dataclass(frozen=True)
class InputItem:
    """One input: ``kind`` is ``image``, ``video`` or ``missing`` (then ``error`` says why).

    ``fingerprint`` identifies its content (ETag on S3, size + mtime locally; see
    :func:`pipelines.storage.fingerprint`): a rerun redoes an input whose fingerprint changed.
    """

    uri: str
    kind: str
    error: str | None = None
    fingerprint: str = "missing"


def kind_of(path: str) -> str | None:
    ext = os.path.splitext(path)[1].lower()
    return "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else None


def _with_protocol(uri: str, path: str) -> str:
    """Re-attach the scheme that fsspec strips from listed paths."""
    if is_local(uri):
        return path
    return f"{uri.split('://', 1)[0]}://{path}"


def read_manifest(uri: str) -> list[str]:
    """URIs listed in a .txt (one per line, # comments), .csv or .parquet (column ``uri`` or the
    first column) manifest; relative entries are resolved against the manifest's folder."""
    ext = os.path.splitext(uri)[1].lower()
    data = read_bytes(uri)
    if ext == ".txt":
        entries = [line.strip() for line in data.decode().splitlines()]
        entries = [e for e in entries if e and not e.startswith("#")]
    elif ext == ".csv":
        rows = [r for r in csv.reader(io.StringIO(data.decode())) if r]
        header = [c.strip().lower() for c in rows[0]] if rows else []
        has_header = bool(header) and kind_of(header[0]) is None
        column = next((header.index(n) for n in ("uri", "url", "path") if n in header), 0) if has_header else 0
        entries = [r[column].strip() for r in rows[int(has_header):] if len(r) > column and r[column].strip()]
    else:
        table = pq.read_table(io.BytesIO(data))
        name = "uri" if "uri" in table.column_names else table.column_names[0]
        entries = [str(v) for v in table.column(name).to_pylist() if v]
    base = uri.rsplit("/", 1)[0] if "/" in uri else "."
    return [e if ("://" in e or os.path.isabs(e)) else join(base, e) for e in entries]


def expand_inputs(inputs: Sequence[str]) -> list[InputItem]:
    """Files, folders / prefixes (recursive, sorted), globs and manifests -> input items.

    A path that does not exist becomes a ``missing`` item; a listing with nothing usable is an
    :class:`InputError` (almost certainly a typo that should stop the job before it starts).
    """
    return [item for raw in inputs for item in _expand_one(raw)]


def _expand_one(raw: str) -> list[InputItem]:
    uri = normalise(raw)
    fs, path = url_to_fs(uri)
    if any(ch in path for ch in "*?["):
        matches = with_retries(lambda: fs.glob(path, detail=True), f"list {uri}")
        found = _listed(uri, matches)
        if not found:
            raise InputError(f"{raw}: glob matches no images or videos")
        return found
    if os.path.splitext(uri)[1].lower() in MANIFEST_EXTS:
        return [_single(entry) for entry in read_manifest(uri)]
    if with_retries(lambda: fs.isdir(path), f"stat {uri}"):
        found = _listed(uri, with_retries(lambda: fs.find(path, detail=True), f"list {uri}"))
        if not found:
            raise InputError(f"{raw}: folder holds no images or videos")
        return found
    return [_single(uri)]


def _listed(uri: str, listing: dict[str, dict]) -> list[InputItem]:
    """Images and videos of an fsspec listing (``{path: info}``), sorted, with their fingerprints."""
    return [InputItem(_with_protocol(uri, p), k, fingerprint=fingerprint(listing[p]))
            for p in sorted(listing) if (k := kind_of(p)) and listing[p].get("type", "file") == "file"]


def _single(uri: str) -> InputItem:
    uri = normalise(uri)
    kind = kind_of(uri)
    if kind is None:
        raise InputError(f"{uri}: not an image, video or manifest "
                         f"(known: {sorted(IMAGE_EXTS | VIDEO_EXTS | MANIFEST_EXTS)})")
    fs, path = url_to_fs(uri)
    try:
        info = with_retries(lambda: fs.info(path), f"stat {uri}")
    except FileNotFoundError:
        return InputItem(uri, "missing", f"{uri}: not found")
    return InputItem(uri, kind, fingerprint=fingerprint(info))


def decode_image(data: bytes, uri: str) -> np.ndarray:
    """Encoded bytes -> (h, w, 3) uint8 BGR; grey and alpha images are converted."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise InputError(f"{uri}: cannot decode image (corrupt or unsupported format)")
    return image


def read_image(uri: str) -> np.ndarray:
    """Read (with retries) and decode an image file or object.

    Permanent failures (not found, access denied, corrupt) raise :class:`InputError`; a transient
    one that outlives the retries raises :class:`pipelines.storage.TransientError`.
    """
    try:
        data = read_bytes(uri)
    except PERMANENT_ERRORS as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err) or type(err).__name__
        raise InputError(f"{uri}: cannot read ({reason})") from err
    return decode_image(data, uri)


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    height: int
    width: int


def probe_video(uri: str) -> VideoInfo:
    """Open a video and read its frame count, rate and size (InputError if unreadable)."""
    try:
        source = video_url(uri)
    except OSError as err:
        raise InputError(f"{uri}: cannot open video ({err})") from err
    if is_local(uri) and not os.path.isfile(source):
        raise InputError(f"{uri}: video not found")
    cap = cv2.VideoCapture(source)
    try:
        if not cap.isOpened():
            raise InputError(f"{uri}: cannot open video (missing, corrupt or unsupported codec)")
        info = VideoInfo(
            frames=int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            fps=float(cap.get(cv2.CAP_PROP_FPS)) or 0.0,
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        )
    finally:
        cap.release()
    if info.frames <= 0 or info.width <= 0:
        raise InputError(f"{uri}: video reports no frames (truncated or corrupt?)")
    return info


@dataclass
class DecodedFrame:
    """A decoded video frame, or the reason frames from here on could not be decoded."""

    index: int
    timestamp: float | None
    image: np.ndarray | None
    error: str | None = None


def iter_video_frames(uri: str, start: int = 0, stop: int | None = None,
                      info: VideoInfo | None = None) -> Iterator[DecodedFrame]:
    """Frames [start, stop) of a video, seeking to ``start`` (no temporary JPEG folders).

    If decoding fails before ``stop``, one frame carrying the error (for frames ``index`` to
    ``stop - 1``) is yielded and iteration ends: the rest of a truncated video cannot be read.
    """
    info = info or probe_video(uri)
    stop = info.frames if stop is None else min(stop, info.frames)
    cap = cv2.VideoCapture(video_url(uri))
    try:
        if start > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        for index in range(start, stop):
            ok, frame = cap.read()
            stamp = index / info.fps if info.fps > 0 else None
            if not ok or frame is None:
                yield DecodedFrame(index, stamp, None, f"{uri}: cannot decode frames {index}-{stop - 1} "
                                                       f"of {info.frames} (truncated or corrupt video)")
                return
            yield DecodedFrame(index, stamp, frame)
    finally:
        cap.release()
