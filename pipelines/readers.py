"""Input discovery and decoding: image files, folders, globs and videos.

Every failure is an :class:`InputError` naming the input, so that a batch job can record the bad
item as an error row and carry on.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv"})


class InputError(RuntimeError):
    """An input could not be found, listed or decoded; the message names it."""


@dataclass(frozen=True)
class InputItem:
    """One input file: ``kind`` is ``image`` or ``video``."""

    uri: str
    kind: str


def kind_of(path: str) -> str | None:
    ext = os.path.splitext(path)[1].lower()
    return "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else None


def expand_inputs(inputs: Sequence[str]) -> list[InputItem]:
    """Local files, folders (their images and videos, sorted, not recursive) and globs.

    Unknown extensions given explicitly are an error; inside folders they are skipped.
    """
    items: list[InputItem] = []
    for raw in inputs:
        path = os.path.expanduser(raw)
        if os.path.isdir(path):
            names = sorted(os.listdir(path))
            found = [InputItem(os.path.join(path, n), k) for n in names if (k := kind_of(n))]
            if not found:
                raise InputError(f"{raw}: folder holds no images or videos")
            items.extend(found)
        elif any(ch in path for ch in "*?["):
            matches = sorted(glob.glob(path))
            found = [InputItem(m, k) for m in matches if (k := kind_of(m)) and os.path.isfile(m)]
            if not found:
                raise InputError(f"{raw}: glob matches no images or videos")
            items.extend(found)
        else:
            kind = kind_of(path)
            if kind is None:
                raise InputError(f"{raw}: not an image or video (known: {sorted(IMAGE_EXTS | VIDEO_EXTS)})")
            items.append(InputItem(path, kind))
    return items


def decode_image(data: bytes, uri: str) -> np.ndarray:
    """Encoded bytes -> (h, w, 3) uint8 BGR; grey and alpha images are converted."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise InputError(f"{uri}: cannot decode image (corrupt or unsupported format)")
    return image


def read_image(uri: str) -> np.ndarray:
    """Read and decode a local image file."""
    try:
        data = Path(uri).read_bytes()
    except OSError as err:
        raise InputError(f"{uri}: cannot read ({err.strerror or err})") from err
    return decode_image(data, uri)


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    height: int
    width: int


def probe_video(uri: str) -> VideoInfo:
    """Open a video and read its frame count, rate and size (InputError if unreadable)."""
    if not os.path.isfile(uri):
        raise InputError(f"{uri}: video not found")
    cap = cv2.VideoCapture(uri)
    try:
        if not cap.isOpened():
            raise InputError(f"{uri}: cannot open video (corrupt or unsupported codec)")
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
    """A decoded video frame, or the reason it could not be decoded (``image`` is None)."""

    index: int
    timestamp: float | None
    image: np.ndarray | None
    error: str | None = None


def iter_video_frames(uri: str, start: int = 0, stop: int | None = None) -> Iterator[DecodedFrame]:
    """Frames [start, stop) of a video, seeking to ``start`` (no temporary JPEG folders).

    If decoding fails before ``stop`` (or before the reported frame count), one frame with the
    error is yielded and iteration ends: the rest of a truncated video cannot be read.
    """
    info = probe_video(uri)
    stop = info.frames if stop is None else min(stop, info.frames)
    cap = cv2.VideoCapture(uri)
    try:
        if start > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        for index in range(start, stop):
            ok, frame = cap.read()
            stamp = index / info.fps if info.fps > 0 else None
            if not ok or frame is None:
                yield DecodedFrame(index, stamp, None,
                                   f"{uri}: cannot decode frame {index} of {info.frames} (truncated or corrupt)")
                return
            yield DecodedFrame(index, stamp, frame)
    finally:
        cap.release()
