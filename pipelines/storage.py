"""URIs through fsspec: local paths and ``s3://bucket/key`` alike, with retries for transient errors.

S3 endpoint and credentials come from the standard AWS environment variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``...).
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)
T = TypeVar("T")

# Failures that retrying cannot fix: the object is absent, forbidden or not what was asked for. Everything
# else (connection resets, timeouts, throttling: botocore / aiohttp raise many types) is transient.
PERMANENT_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, ValueError)


class TransientError(RuntimeError):
    """A storage operation kept failing, after retries, for a reason that may go away (network,
    throttling). Work that meets it is left undone -- never recorded as a bad input -- so that a
    rerun retries it."""


def url_to_fs(uri: str) -> tuple[AbstractFileSystem, str]:
    """(file system, path within it) for a local path or URL."""
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def normalise(uri: str) -> str:
    """Absolute local paths (so resume does not depend on the working directory); URLs as given."""
    if is_local(uri):
        return os.path.abspath(os.path.expanduser(uri.removeprefix("file://")))
    return uri


def join(root: str, name: str) -> str:
    return os.path.join(root, name) if is_local(root) else posixpath.join(root, name)


def with_retries(action: Callable[[], T], what: str, attempts: int = 4, backoff_s: float = 0.5) -> T:
    """Run ``action``; retry transient failures (network, throttling) with exponential backoff.

    Permanent errors (:data:`PERMANENT_ERRORS`) are raised at once; a transient one that outlives
    the retries is raised as :class:`TransientError` naming ``what``.
    """
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except PERMANENT_ERRORS:
            raise
        except TransientError:
            raise
        except Exception as err:  # botocore / aiohttp errors surface as many types
            if attempt == attempts:
                raise TransientError(f"{what}: {type(err).__name__}: {err} (after {attempts} attempts)") from err
            log.warning("%s failed (%s: %s); retry %d/%d", what, type(err).__name__, err, attempt, attempts - 1)
            time.sleep(backoff_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def read_bytes(uri: str) -> bytes:
    fs, path = url_to_fs(uri)
    return with_retries(lambda: fs.cat_file(path), f"read {uri}")


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Make ``uri`` appear complete or not at all.

    Local files go to a hidden temporary name and are renamed into place. An object store PUT is
    already atomic (readers never see part of an object), so remote objects are written directly.
    """
    fs, path = url_to_fs(uri)
    if is_local(uri):
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # the bytes are on disk before the name says "done"
        os.replace(tmp, path)
        _fsync_dir(directory)  # ... and so is the rename, across a power loss
        return
    with_retries(lambda: fs.pipe_file(path, data), f"write {uri}")


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a directory; the rename is still atomic there
        pass
    finally:
        os.close(fd)


def temporary_names_of(name: str) -> str:
    """Glob pattern of the temporary files :func:`write_bytes_atomic` uses for ``name``."""
    return f".{name}.*.tmp"


def fingerprint(info: dict) -> str:
    """Content identity of a file from its fsspec ``info``: the ETag on S3 (changes with the content),
    size + modification time locally."""
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return f"etag:{str(etag).strip(chr(34))}"
    mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or ""
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return f"size:{info.get('size')}:mtime:{mtime}"


def file_fingerprint(uri: str) -> str:
    fs, path = url_to_fs(uri)
    return fingerprint(with_retries(lambda: fs.info(path), f"stat {uri}"))


def _download(fs: AbstractFileSystem, path: str) -> bytes:
    return with_retries(lambda: fs.cat_file(path), f"download {path}")


def cache_dir() -> str:
    return os.environ.get("MESHFLEET_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "meshfleet"))


def localize(uri: str, directory: bool = False) -> str:
    """A local path for ``uri``: local paths as they are; remote files (or, with ``directory``,
    every file under a remote prefix) are downloaded once into the meshfleet cache.

    The cache is keyed by the content identity of what is read (the URI and each object's ETag,
    or size + modification time), so a replaced object is fetched again, never served stale.
    """
    if is_local(uri):
        return url_to_fs(uri)[1]
    fs, path = url_to_fs(uri)
    fs.invalidate_cache(path)  # a long-lived worker must see a replaced object, not a cached listing
    if directory:
        listing = with_retries(lambda: fs.find(path, detail=True), f"list {uri}")
    else:
        listing = {path: with_retries(lambda: fs.info(path), f"stat {uri}")}
    identity = "\n".join([uri, *(f"{p} {fingerprint(info)}" for p, info in sorted(listing.items()))])
    target = os.path.join(cache_dir(), hashlib.sha1(identity.encode()).hexdigest()[:16])
    done = os.path.join(target, ".complete")
    if not os.path.exists(done):
        os.makedirs(target, exist_ok=True)
        for source in sorted(listing):
            name = os.path.relpath(source, path) if directory else posixpath.basename(source)
            local = os.path.join(target, name)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            write_bytes_atomic(local, _download(fs, source))
        write_bytes_atomic(done, b"")
    return target if directory else os.path.join(target, posixpath.basename(path))


def list_files(root: str, suffix: str) -> list[str]:
    """Full URIs of the files under ``root`` ending with ``suffix``, hidden (``.``/``_``) names
    excluded, sorted."""
    fs, path = url_to_fs(root)
    if not with_retries(lambda: fs.exists(path), f"stat {root}"):
        return []
    found = with_retries(lambda: fs.find(path), f"list {root}")
    names = [p for p in found if p.endswith(suffix) and not posixpath.basename(p).startswith((".", "_"))]
    prefix = "" if is_local(root) else root.split("://", 1)[0] + "://"
    return sorted(prefix + p for p in names)


def table_to_bytes(table: pa.Table) -> bytes:
    """A table as the bytes of a Parquet file (zstd)."""
    import io

    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def read_parquet(uri: str, columns: list[str] | None = None) -> pa.Table:
    fs, path = url_to_fs(uri)
    return with_retries(lambda: pq.read_table(path, columns=columns, filesystem=fs), f"read {uri}")


def read_parquet_schema(uri: str) -> pa.Schema:
    fs, path = url_to_fs(uri)
    return with_retries(lambda: pq.read_schema(path, filesystem=fs), f"read {uri}")


def remove(uri: str) -> None:
    fs, path = url_to_fs(uri)
    with_retries(lambda: fs.rm_file(path), f"remove {uri}")
