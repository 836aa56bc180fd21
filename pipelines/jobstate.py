"""Output bookkeeping: which job owns an output, and which of its units are already committed.

The output root holds ``_meshfleet_job.json`` (the job's identity: model, checkpoint digest,
thresholds, chunking and a digest of the unit plan) and one results file per committed unit.
A rerun of the same job skips the committed units; a different job is refused; ``overwrite``
clears the output first. A unit file appears atomically, so "file exists" means "unit done":
whatever point the previous run died at, nothing is lost or counted twice.
"""

from __future__ import annotations

import json
import os

from pipelines.storage import is_local, join, url_to_fs, with_retries, write_bytes_atomic
from pipelines.units import UNIT_SUFFIX

JOB_FILE = "_meshfleet_job.json"


class JobMismatchError(RuntimeError):
    """The output belongs to a different job (other model, checkpoint, thresholds or inputs)."""


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def prepare_output(output: str, identity: dict, overwrite: bool) -> set[str]:
    """Claim ``output`` for the job ``identity``; returns the names of already committed units."""
    fs, root = url_to_fs(output)
    job_path = join(output, JOB_FILE)
    exists = with_retries(lambda: fs.exists(root), f"stat {output}")
    if exists and overwrite:
        for path in with_retries(lambda: fs.find(root), f"list {output}"):
            _remove(fs, path)
        exists = False
    if exists and with_retries(lambda: fs.exists(url_to_fs(job_path)[1]), f"stat {job_path}"):
        stored = json.loads(with_retries(lambda: fs.cat_file(url_to_fs(job_path)[1]), f"read {job_path}"))
        diff = _differences(stored, identity)
        if diff:
            raise JobMismatchError(
                f"{output} holds results of a different job ({'; '.join(diff[:6])}); "
                "use another --output, or --overwrite to replace them"
            )
        return committed_units(output)
    if exists:
        strays = [p for p in with_retries(lambda: fs.find(root), f"list {output}") if p.endswith(UNIT_SUFFIX)]
        if strays:
            raise JobMismatchError(f"{output} holds {len(strays)} Parquet files not written by a meshfleet job; "
                                   "use another --output, or --overwrite to replace them")
    if is_local(output):
        os.makedirs(root, exist_ok=True)
    write_bytes_atomic(job_path, json.dumps(identity, indent=2, sort_keys=True).encode())
    return set()


def _remove(fs, path: str) -> None:
    with_retries(lambda: fs.rm_file(path), f"remove {path}")


def committed_units(output: str) -> set[str]:
    """Names of the unit files present under ``output`` (temporary files excluded)."""
    fs, root = url_to_fs(output)
    paths = with_retries(lambda: fs.find(root), f"list {output}")
    names = {p.rsplit("/", 1)[-1] for p in paths}
    return {n for n in names if n.endswith(UNIT_SUFFIX) and not n.startswith(".")}
