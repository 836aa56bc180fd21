"""Encoding what ``meshfleet synth`` writes: JPEG images, PNG instance masks, MP4 videos, the contact sheet.

Every encoder is deterministic (same pixels -> same bytes): OpenCV's JPEG / PNG, and x264 with one
thread (its output may otherwise depend on the thread count).
"""

from __future__ import annotations

import io

import cv2
import numpy as np

VIDEO_CRF = 18  # x264 constant-rate factor: visually lossless for training images
SHEET_TILE = 240  # contact-sheet tile height, px
SHEET_COLUMNS = 4


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def encode_mask(ids: np.ndarray) -> bytes:
    """(H, W) instance ids (0 background, person + 1; at most 255 people) -> 8-bit PNG bytes."""
    if ids.size and int(ids.max()) > 255:
        raise ValueError("instance masks hold at most 255 people")
    ok, data = cv2.imencode(".png", ids.astype(np.uint8))
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def encode_mp4(frames: list[np.ndarray], fps: float) -> bytes:
    """(H, W, 3) uint8 RGB frames (even H and W) -> H.264 MP4 bytes at ``fps``."""
    from fractions import Fraction

    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": str(VIDEO_CRF), "preset": "medium", "threads": "1"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def overlay(rgb: np.ndarray, ids: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The image with each person's mask tinted in its own colour, mask outlines and the visible-mask
    boxes numbered by person index (BGR, for the contact sheet)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    count = int(ids.max()) if ids.size else 0
    palette = (np.random.default_rng(0).random((max(count, 1), 3)) * 200 + 55).astype(np.uint8)
    tint = bgr.copy()
    for p in range(count):
        mask = ids == p + 1
        tint[mask] = palette[p]
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(bgr, contours, -1, palette[p].tolist(), 1)
    out = cv2.addWeighted(bgr, 0.6, tint, 0.4, 0.0)
    for p, box in enumerate(boxes):
        if np.isfinite(box).all():
            x0, y0, x1, y1 = (int(v) for v in box)
            cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), palette[p % len(palette)].tolist(), 1)
            cv2.putText(out, str(p), (x0 + 2, y0 + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    return out


def contact_sheet(tiles: list[np.ndarray]) -> bytes:
    """BGR images -> one JPEG, :data:`SHEET_COLUMNS` per row, each scaled to :data:`SHEET_TILE` px high."""
    scaled = [cv2.resize(t, (max(1, round(t.shape[1] * SHEET_TILE / t.shape[0])), SHEET_TILE),
                         interpolation=cv2.INTER_AREA) for t in tiles]
    rows = []
    for start in range(0, len(scaled), SHEET_COLUMNS):
        row = scaled[start:start + SHEET_COLUMNS]
        rows.append(np.concatenate(row, axis=1))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    ok, data = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def contact_sheet_bytes(output: str, count: int) -> bytes | None:
    """The contact sheet of the first ``count`` still images of the synth dataset at ``output`` (by scene
    index), read back from ``images/``, ``masks/`` and ``labels/``; None without still images."""
    from pipelines.readers import decode_image
    from pipelines.schema import column_array
    from pipelines.storage import join, list_files, read_bytes, read_parquet

    tiles: list[np.ndarray] = []
    for uri in list_files(join(output, "labels"), ".parquet"):
        labels = read_parquet(uri, ["source", "person", "bbox", "track_id"])
        labels = labels.filter(labels.column("track_id").is_null())
        sources = labels.column("source").to_pylist()
        boxes = column_array(labels, "bbox", (4,)) if labels.num_rows else np.zeros((0, 4), np.float32)
        for source in dict.fromkeys(sources):
            if len(tiles) >= count:
                return contact_sheet(tiles)
            rows = [i for i, s in enumerate(sources) if s == source]
            stem = source.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            rgb = cv2.cvtColor(decode_image(read_bytes(join(output, source)), source), cv2.COLOR_BGR2RGB)
            ids = cv2.imdecode(np.frombuffer(read_bytes(join(join(output, "masks"), f"{stem}.png")), np.uint8),
                               cv2.IMREAD_UNCHANGED)
            if ids is None:
                raise ValueError(f"{output}/masks/{stem}.png: not a readable PNG")
            tiles.append(overlay(rgb, ids, boxes[rows]))
    return contact_sheet(tiles) if tiles else None
