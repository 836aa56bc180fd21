"""Input discovery and image decoding: files, folders, globs and manifests, local or s3://.

Videos are probed and decoded in :mod:`pipelines.video`.

Discovery never aborts on a bad listed input: a missing file or object, or a manifest line that
names no image or video, becomes an item of kind ``missing`` carrying its error, so that the job
records it as an error row and carries on. What the user typed is checked strictly: a path that
does not exist (and is not a media file), a glob or folder with nothing usable, a ``.txt`` that is
not a manifest raise :class:`InputError`, as do decoding failures, naming the input.

A ``.txt`` manifest lists one image or video per line (blank lines and ``#`` comments skipped). It
is refused as "not a manifest" when a line reads as prose (holds a space and does not end in a
media extension) or when no line names an image or video; a single-word line with another
extension becomes an error row.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
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
    try:
        data = read_bytes(uri)
    except FileNotFoundError as err:
        raise InputError(f"{uri}: does not exist") from err
    except OSError as err:
        raise InputError(f"{uri}: cannot read manifest ({err.strerror or err})") from err
    if ext == ".txt":
        entries = [line.strip() for line in data.decode(errors="replace").splitlines()]
        entries = [e for e in entries if e and not e.startswith("#")]
        _check_text_manifest(uri, entries)
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


def _check_text_manifest(uri: str, entries: list[str]) -> None:
    """Refuse a .txt that is not a list of paths (see the module doc for the rule)."""
    prose = next((e for e in entries if any(c.isspace() for c in e) and kind_of(e) is None), None)
    if prose is not None:
        raise InputError(f"{uri}: not a manifest (the line {prose[:40]!r} is not a path); a .txt manifest "
                         "lists one image or video per line")
    if not any(kind_of(e) for e in entries):
        raise InputError(f"{uri}: not a manifest (no line names an image or video: "
                         f"{' '.join(sorted(IMAGE_EXTS | VIDEO_EXTS))})")


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
        return [_manifest_entry(entry, raw) for entry in read_manifest(uri)]
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


def _manifest_entry(entry: str, manifest: str) -> InputItem:
    """A manifest entry; one that names no image or video is an error row, not an abort."""
    if kind_of(entry) is None:
        return InputItem(normalise(entry), "missing", f"{entry}: not an image or video (listed in {manifest}; "
                                                      f"known: {' '.join(sorted(IMAGE_EXTS | VIDEO_EXTS))})")
    return _single(entry)


def _single(uri: str) -> InputItem:
    uri = normalise(uri)
    kind = kind_of(uri)
    fs, path = url_to_fs(uri)
    try:
        info = with_retries(lambda: fs.info(path), f"stat {uri}")
    except FileNotFoundError:
        info = None
    if kind is None:
        if info is None:
            raise InputError(f"{uri}: does not exist")
        raise InputError(f"{uri}: not an image, video or manifest "
                         f"(known: {' '.join(sorted(IMAGE_EXTS | VIDEO_EXTS | MANIFEST_EXTS))})")
    if info is None:
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
