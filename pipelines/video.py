"""Video probing and frame-exact decoding with PyAV (FFmpeg), local paths or ``s3://`` objects.

Frame ``i`` of a video is the ``i``-th frame a decoder outputs when it decodes the whole stream
from its start (presentation order). A chunk ``[start, stop)`` must yield exactly those frames, so
a seek is never trusted blindly (OpenCV's ``CAP_PROP_POS_FRAMES`` lands on the wrong frame on
variable-rate videos, and its frame count is a duration estimate that over- or under-counts when a
stream does not start at 0). A chunk finds the presentation timestamp (pts) of frame ``start``,
seeks to the keyframe before it, decodes forward and checks that the decoder reaches that exact
pts with increasing timestamps; from there frames are counted. Where it cannot be checked (no or
disordered timestamps, as in AVI files with B-frames), the chunk decodes from the first frame.

The pts of frame ``start`` comes from arithmetic when the header vouches for a constant rate
(count and duration stored and consistent with the nominal rate, as in MP4/MOV); the frames
between the keyframe and ``start`` must then sit on that rate's grid. Otherwise (Matroska/WebM
store no count; variable-rate video) the chunk reads, without decoding, the packets up to
``start``. Frame counts are the header's (MP4/MOV/AVI), else counted from the packets.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from fractions import Fraction

import av
import av.container
import av.video.frame
import av.video.stream
import numpy as np

from pipelines.readers import InputError
from pipelines.storage import is_local, url_to_fs, with_retries


@dataclass(frozen=True)
class VideoInfo:
    """Frame count, mean frame rate (frames per second) and displayed size (rotation applied)."""

    frames: int
    fps: float
    height: int
    width: int


@dataclass
class DecodedFrame:
    """A decoded video frame, or the reason frames from here on could not be decoded."""

    index: int
    timestamp: float | None
    image: np.ndarray | None
    error: str | None = None


Opened = tuple[av.container.InputContainer, av.video.stream.VideoStream]


@contextmanager
def open_video(uri: str) -> Iterator[Opened]:
    """The container and first video stream of ``uri``; remote objects are read through fsspec
    (seekable, so no download). Unreadable or unsupported files raise :class:`InputError`; a
    failing storage read raises its own ``OSError`` (it may be transient)."""
    with ExitStack() as stack:
        fs, path = url_to_fs(uri)
        if is_local(uri) and not os.path.isfile(path):
            raise InputError(f"{uri}: video not found")
        try:
            source = path if is_local(uri) else stack.enter_context(with_retries(lambda: fs.open(path, "rb"),
                                                                                   f"open {uri}"))
            container = stack.enter_context(av.open(source, "r"))
        except FileNotFoundError as err:
            raise InputError(f"{uri}: video not found") from err
        except (av.error.FFmpegError, ValueError) as err:
            raise InputError(f"{uri}: cannot open video (corrupt or unsupported format: {err})") from err
        if not container.streams.video:
            raise InputError(f"{uri}: no video stream")
        yield container, container.streams.video[0]


def to_bgr(frame: av.video.frame.VideoFrame) -> np.ndarray:
    """(h, w, 3) uint8 BGR as displayed: the stream's rotation (phone videos) is applied, as
    OpenCV does by default."""
    image = frame.to_ndarray(format="bgr24")
    turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def _time_base(stream: av.video.stream.VideoStream) -> Fraction:
    """Seconds per pts tick (every demuxed stream has one)."""
    return stream.time_base or Fraction(1)


def _header_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The nominal rate when the header vouches for a constant rate (stored count and duration
    agree with it to half a frame), else None."""
    rate, base = stream.average_rate, stream.base_rate
    if not (stream.frames > 0 and stream.duration and rate and rate == base):
        return None
    span_frames = stream.duration * _time_base(stream) * rate
    return Fraction(rate) if abs(span_frames - stream.frames) < Fraction(1, 2) else None


def _packet_pts(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                enough: int | None = None) -> list[int | None]:
    """Presentation timestamps of the stream's packets in decode order (no decoding); with
    ``enough``, stop at the first keyframe after ``enough`` packets: later packets all present
    after the ones read (a new GOP), so the first ``enough`` ranks are final."""
    pts: list[int | None] = []
    for packet in container.demux(stream):
        if packet.size == 0:  # the demuxer's end-of-stream flush packet
            continue
        if enough is not None and len(pts) >= enough and packet.is_keyframe:
            break
        pts.append(packet.pts)
    return pts


def probe_video(uri: str) -> VideoInfo:
    """Frame count, rate and displayed size of a video (InputError if unreadable)."""
    with open_video(uri) as (container, stream):
        frames, fps = stream.frames, float(stream.average_rate or stream.guessed_rate or 0)
        if frames <= 0:  # Matroska, WebM, MPEG-TS: count the packets
            pts = _packet_pts(container, stream)
            frames, known = len(pts), sorted(p for p in pts if p is not None)
            if len(known) > 1 and known[-1] > known[0]:  # mean rate; the nominal one when they agree to 1 %
                measured = (len(known) - 1) / float((known[-1] - known[0]) * _time_base(stream))
                fps = fps if fps and abs(fps / measured - 1) < 0.01 else measured
            container.seek(0, stream=stream)
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as err:
            raise InputError(f"{uri}: cannot decode video ({err})") from err
    if frames <= 0 or first is None:
        raise InputError(f"{uri}: video has no frames (truncated or corrupt?)")
    height, width = to_bgr(first).shape[:2]
    return VideoInfo(frames, fps, height, width)


@dataclass(frozen=True)
class _Target:
    """Where frame ``start`` is: its pts, the tolerance of a match, and the constant-rate grid
    (origin pts, pts per frame) the frames before it must sit on, if any."""

    pts: float
    tolerance: float
    grid: tuple[int, float] | None = None

    def on_grid(self, pts: int, expected: int | None) -> int | None:
        """The grid index of ``pts`` if it is a whole frame and the one ``expected`` (if given)."""
        assert self.grid is not None
        position = (pts - self.grid[0]) / self.grid[1]
        index = round(position)
        ok = abs(position - index) < 0.25 and (expected is None or index == expected)
        return index if ok else None


def _locate(opened: Opened, start: int) -> _Target | None:
    """Where frame ``start`` (> 0) is, or None when the timestamps cannot tell."""
    container, stream = opened
    rate = _header_rate(stream)
    if rate is not None:
        first = next(container.decode(stream), None)
        if first is None or first.pts is None:
            return None
        step = float(1 / (rate * _time_base(stream)))
        return _Target(first.pts + start * step, step / 4, (first.pts, step))
    pts = _packet_pts(container, stream, enough=start + 1)
    known = sorted(p for p in pts if p is not None)
    return _Target(float(known[start]), 0.0) if len(known) == len(pts) > start else None


def _seek_verified(opened: Opened, start: int) -> Iterator[tuple[int, av.video.frame.VideoFrame]] | None:
    """(index, frame) from frame ``start`` on after a seek whose position is verified, else None."""
    target = _locate(opened, start)
    if target is None:
        return None
    container, stream = opened
    container.seek(int(target.pts), stream=stream, backward=True, any_frame=False)
    frames = container.decode(stream)
    previous, expected = None, None
    for frame in frames:
        if frame.pts is None or (previous is not None and frame.pts <= previous):
            return None  # no or disordered timestamps: frames cannot be placed
        if target.grid is not None:
            expected = target.on_grid(frame.pts, expected)
            if expected is None:
                return None  # off the constant-rate grid: the header's rate does not hold here
            expected += 1
        if frame.pts >= target.pts - target.tolerance:
            if abs(frame.pts - target.pts) > target.tolerance:
                return None  # the seek overshot, or frame ``start`` is not where it should be
            return itertools.chain([(start, frame)], enumerate(frames, start + 1))
        previous = frame.pts
    return None


def iter_video_frames(uri: str, start: int = 0, stop: int | None = None,
                      info: VideoInfo | None = None) -> Iterator[DecodedFrame]:
    """Frames [start, stop) of a video, exactly the frames a decode from the start gives.

    Timestamps are ``index / fps``. If decoding fails before ``stop``, one frame carrying the error
    (for frames ``index`` to ``stop - 1``) is yielded and iteration ends: the rest of a truncated
    video cannot be read.
    """
    info = info or probe_video(uri)
    stop = info.frames if stop is None else min(stop, info.frames)
    if start >= stop:
        return
    with open_video(uri) as opened:
        try:
            located = _seek_verified(opened, start) if start > 0 else None
        except av.error.FFmpegError:  # corrupt data around the seek: the plain decode reports it
            located = None
        if located is not None or start == 0:
            yield from _frames(uri, located or enumerate(opened[0].decode(opened[1])), start, stop, info)
            return
    with open_video(uri) as (container, stream):  # fall back: decode from the first frame
        yield from _frames(uri, enumerate(container.decode(stream)), start, stop, info)


def _frames(uri: str, frames: Iterator[tuple[int, av.video.frame.VideoFrame]], start: int, stop: int,
            info: VideoInfo) -> Iterator[DecodedFrame]:
    """(index, frame) pairs -> decoded frames [start, stop), then one error frame if they end early."""
    done = start
    try:
        for index, frame in frames:
            if index >= stop:
                return
            if index >= start:
                yield DecodedFrame(index, _stamp(index, info), to_bgr(frame))
                done = index + 1
    except av.error.FFmpegError:
        pass  # a corrupt or cut stream: reported below like a short one
    if done < stop:
        yield DecodedFrame(done, _stamp(done, info), None, f"{uri}: cannot decode frames {done}-{stop - 1} of "
                                                          f"{info.frames} (truncated or corrupt video)")


def _stamp(index: int, info: VideoInfo) -> float | None:
    return index / info.fps if info.fps > 0 else None
