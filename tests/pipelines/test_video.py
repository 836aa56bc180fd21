"""Frame-exact video chunks: H.264 with a long GOP (250), cut into chunks that start mid-GOP, must
give the frames of one unchunked decode, frame for frame, in every container and timing we meet."""

from fractions import Fraction

import av
import numpy as np
import pytest
import s3fs

from core.predictor import PreparedImage
from pipelines.inference import unit_of
from pipelines.readers import InputItem
from pipelines.skeleton import unit_batch
from pipelines.stages import read_frames
from pipelines.units import plan_units
from pipelines.video import _seek_verified, iter_video_frames, open_video, probe_video

FRAMES, GOP, H, W = 300, 250, 48, 64
TICKS = 90000  # pts per second of the written streams (MPEG's 90 kHz clock)


def marked(index: int) -> np.ndarray:
    """A (48, 64, 3) BGR frame whose 3x3 grid of 16x21 px blocks spells ``index`` in binary."""
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 1] = (index * 7) % 256
    for bit in range(9):
        if index >> bit & 1:
            row, col = divmod(bit, 3)
            image[row * 16:(row + 1) * 16, col * 21:(col + 1) * 21, 0] = 255
    return image


def read_mark(image: np.ndarray) -> int:
    """The index a :func:`marked` frame spells, read back from a lossy decode (block centres)."""
    centre = lambda bit: image[bit // 3 * 16 + 4:bit // 3 * 16 + 12, bit % 3 * 21 + 5:bit % 3 * 21 + 16, 0]  # noqa: E731
    return sum(1 << bit for bit in range(9) if centre(bit).mean() > 128)


def write_h264(path, fps: Fraction, offset_s: float = 0.0, gaps_every: int = 0, rotate: int = 0,
               faststart: bool = False) -> str:
    """FRAMES marked frames, libx264 with B-frames and one keyframe every GOP frames; the first
    frame at ``offset_s``; with ``gaps_every`` = k, frames 3, 3 + k, 3 + 2k... last two frame periods (VFR).
    AVI counts frames instead of time: there the clock is the frame rate."""
    ticks = fps if str(path).endswith(".avi") else TICKS
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.time_base = 1 / Fraction(ticks)
        stream.options = {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0", "bf": "3"}
        if rotate:
            stream.set_display_rotation(rotate)
        pts, period = round(offset_s * ticks), ticks / fps
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(marked(i), format="bgr24")
            frame.pts, frame.time_base = round(pts), 1 / Fraction(ticks)
            pts += 2 * period if gaps_every and i % gaps_every == 3 else period
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return str(path)


VIDEOS = {  # name -> (writer arguments, fps the probe must read)
    "cfr.mp4": ({"fps": Fraction(25)}, 25.0),
    "ntsc_offset.mkv": ({"fps": Fraction(30000, 1001), "offset_s": 3.0}, 30000 / 1001),  # no count stored
    "vfr.mp4": ({"fps": Fraction(25), "gaps_every": 7}, FRAMES / (FRAMES + len(range(3, FRAMES, 7))) * 25),
    "bframes.avi": ({"fps": Fraction(25)}, 25.0),  # AVI keeps no pts: B-frames come out disordered
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("long_gop")
    return {name: write_h264(root / name, **kwargs) for name, (kwargs, _) in VIDEOS.items()}


@pytest.fixture(scope="module")
def unchunked(videos):
    return {name: list(iter_video_frames(path)) for name, path in videos.items()}


@pytest.mark.parametrize("name", VIDEOS)
def test_probe_counts_every_frame_and_reads_the_rate(videos, name):
    info = probe_video(videos[name])
    assert (info.frames, info.height, info.width) == (FRAMES, H, W)
    assert info.fps == pytest.approx(VIDEOS[name][1], rel=1 / FRAMES + 1e-4)  # containers differ by one period


@pytest.mark.parametrize("name", VIDEOS)
def test_unchunked_decode_is_every_frame_in_order(unchunked, name):
    frames = unchunked[name]
    assert [f.index for f in frames] == list(range(FRAMES)) and all(f.error is None for f in frames)
    assert [read_mark(f.image) for f in frames] == list(range(FRAMES))


@pytest.mark.parametrize("name", VIDEOS)
# chunk starts inside the 250-frame GOP, on its keyframe and after it (OpenCV's seek misses 270 on vfr.mp4)
@pytest.mark.parametrize("chunk", [64, 90, 125])
def test_chunks_equal_the_unchunked_decode(videos, unchunked, name, chunk):
    info = probe_video(videos[name])
    pieces = [f for start in range(0, FRAMES, chunk)
              for f in iter_video_frames(videos[name], start, min(start + chunk, FRAMES), info)]
    whole = unchunked[name]
    assert all(f.error is None for f in pieces)  # no spurious "truncated" frames, no tail dropped
    assert [f.index for f in pieces] == list(range(FRAMES))
    assert [f.timestamp for f in pieces] == [f.timestamp for f in whole]
    for piece, reference in zip(pieces, whole, strict=True):
        assert np.array_equal(piece.image, reference.image), piece.index


@pytest.mark.parametrize("name,seeks", [("cfr.mp4", True), ("ntsc_offset.mkv", True), ("vfr.mp4", True),
                                        ("bframes.avi", False)])
def test_seeks_where_timestamps_allow_it(videos, name, seeks):
    """A verified seek where pts place the frames; AVI (disordered pts) decodes from the start."""
    with open_video(videos[name]) as opened:
        located = _seek_verified(opened, 130)
        assert (located is not None) == seeks
        if seeks:
            index, frame = next(located)
            assert index == 130 and read_mark(frame.to_ndarray(format="bgr24")) == 130


def test_cut_video_reports_the_missing_frames(tmp_path):
    """The header (at the front) promises 300 frames; the data stops after about half of them."""
    whole = write_h264(tmp_path / "whole.mp4", Fraction(25), faststart=True)
    data = open(whole, "rb").read()
    (tmp_path / "cut.mp4").write_bytes(data[:len(data) // 2])
    cut = str(tmp_path / "cut.mp4")
    info = probe_video(cut)
    assert info.frames == FRAMES
    frames = list(iter_video_frames(cut, 0, FRAMES, info))
    *good, last = frames
    assert len(good) < FRAMES and [f.index for f in good] == list(range(len(good)))
    assert last.image is None and f"cut.mp4: cannot decode frames {len(good)}-{FRAMES - 1} of {FRAMES}" in last.error
    tail = list(iter_video_frames(cut, 280, FRAMES, info))
    assert len(tail) == 1 and tail[0].index == 280 and tail[0].error


def test_decode_stage_rows_equal_across_chunkings(videos):
    """What the pipeline commits per frame (source, frame, timestamp, pixels) does not depend on the
    chunking; each video keeps its own rate."""
    items = [InputItem(videos["cfr.mp4"], "video"), InputItem(videos["ntsc_offset.mkv"], "video")]

    def identity(image: np.ndarray) -> PreparedImage:
        h, w = image.shape[:2]
        return PreparedImage(image[None], np.zeros((1, 3), np.float32), np.array([-1]), h, w)

    def rows(chunk: int):
        batches = [batch for unit in plan_units(items, frames_per_chunk=chunk)
                   for batch in read_frames(unit_batch(unit_of(unit)), identity)]
        assert not [e for b in batches for e in b["error"] if e]
        return ([(str(s), int(f), float(t)) for b in batches for s, f, t in zip(b["source"], b["frame"], b["timestamp"],
                                                                                 strict=True)],
                [views for b in batches for views in b["views"]])

    (refs, images), (chunked_refs, chunked_images) = rows(1000), rows(96)
    assert chunked_refs == refs and len(refs) == 2 * FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(images, chunked_images, strict=True))
    assert refs[FRAMES - 1][2] == pytest.approx((FRAMES - 1) / 25)
    assert refs[-1][2] == pytest.approx((FRAMES - 1) * 1001 / 30000)


def test_rotated_video_is_displayed_upright(tmp_path):
    path = write_h264(tmp_path / "portrait.mp4", Fraction(25), rotate=90)
    info = probe_video(path)
    assert (info.height, info.width) == (W, H)
    (frame,) = iter_video_frames(path, 5, 6, info)
    assert np.array_equal(np.rot90(frame.image, -1).shape, (H, W, 3)) and read_mark(np.rot90(frame.image, -1)) == 5


def test_s3_video_chunks_equal_local(s3_server, videos, unchunked):
    fs = s3fs.S3FileSystem()
    fs.mkdir("meshfleet-video")
    fs.pipe_file("meshfleet-video/long/cfr.mp4", open(videos["cfr.mp4"], "rb").read())
    uri = "s3://meshfleet-video/long/cfr.mp4"
    info = probe_video(uri)
    assert info.frames == FRAMES
    frames = list(iter_video_frames(uri, 200, 260, info))
    assert [f.index for f in frames] == list(range(200, 260))
    assert all(np.array_equal(f.image, unchunked["cfr.mp4"][f.index].image) for f in frames)
