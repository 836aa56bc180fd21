"""Ownership of outputs: which files under an output meshfleet wrote, and which units are done.

Every command that writes (infer, track, export mot, leaderboard, and the jobs to come) claims its
output with :func:`claim_output`. The output root then holds ``_meshfleet_job.json``, the job's
**ledger**: its kind and identity (what determines its rows), the fingerprint of every input it
has planned, every unit it planned (name -> what the unit covers), the other files it writes
(``files``), the sub-folders it creates and writes whole (``folders``: a job whose file names are
only known as it makes them, e.g. synth's images and masks) and one record per run. A name enters
the ledger -- and the ledger is saved -- *before* the file can exist, so the job can always prove what it wrote:

    owned files = the job file + the unit files and other files it names (+ their temporary names)
                  + everything under the folders it names

and nothing else under an output is ever removed.

Claiming rules (``output`` is a local folder or an ``s3://`` prefix):

* nothing there, or an empty folder: claimed, a new ledger is written;
* files but no job file: refused, naming a few -- never silently claimed, ``overwrite`` or not;
* a job of another kind or identity: refused with the differing keys; ``overwrite`` removes the
  owned files only (anything else stays where it is) and claims the output afresh;
* the same kind and identity: the ledger is returned so that the caller resumes or grows the job
  (``on_existing="refuse"`` refuses instead, ``"replace"`` starts over -- for derived outputs such
  as MOT files or a leaderboard that are regenerated as a whole).

One job writes to an output at a time.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import logging
import os
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pipelines.storage import (
    is_local,
    join,
    normalise,
    temporary_names_of,
    url_to_fs,
    with_retries,
    write_bytes_atomic,
)

log = logging.getLogger(__name__)
JOB_FILE = "_meshfleet_job.json"
LEDGER_FORMAT = 2
# Unit files of format-1 job files (before the ledger listed them): the names meshfleet generated.
LEGACY_UNIT_NAME = re.compile(r"^(images\.[0-9a-f]{12}\.\d{9}-\d{9}|.+\.[0-9a-f]{12}\.f\d{9}-\d{9}"
                              r"|error\..+\.[0-9a-f]{12})\.parquet$")
SHOWN = 5  # foreign files named in a refusal


class JobMismatchError(RuntimeError):
    """The output belongs to someone else: another meshfleet job, or files meshfleet did not write."""


class OutputOverlapError(ValueError):
    """The output is an input, lies inside an input folder, or contains an input."""


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


# -- overlap ---------------------------------------------------------------------------------------

def _comparable(uri: str) -> str:
    """A path or URI reduced so that ``a`` contains ``b`` iff ``b`` starts with ``a + '/'``."""
    uri = normalise(uri)
    if is_local(uri):
        path = os.path.realpath(uri)
        return path.rstrip("/") or "/"
    return uri.rstrip("/")


def _fixed_part(uri: str) -> str:
    """The part of a glob before its first wildcard's path segment (``/a/b/*.jpg`` -> ``/a/b``)."""
    cut = min((uri.find(ch) for ch in "*?[" if ch in uri), default=-1)
    return uri if cut < 0 else uri[:cut].rsplit("/", 1)[0]


def overlaps(a: str, b: str) -> bool:
    a, b = _comparable(a), _comparable(b)
    return a == b or b.startswith(a.rstrip("/") + "/") or a.startswith(b.rstrip("/") + "/")


def check_overlap(output: str, inputs: Iterable[str]) -> None:
    """Refuse an output that is an input, lies inside an input folder or contains an input."""
    for raw in inputs:
        if overlaps(output, _fixed_part(raw)):
            raise OutputOverlapError(f"output {output} overlaps input {raw}: choose an --output outside the inputs")


# -- the ledger ------------------------------------------------------------------------------------

@dataclass
class Ledger:
    """The job file of an owned output. ``units``: unit name -> its description (what the unit
    covers; for infer a :class:`pipelines.units.WorkUnit` as a dict); ``inputs``: input URI -> its
    fingerprint when last planned; ``files``: other owned files, relative to the output;
    ``folders``: owned sub-folders (relative), every file under them the job's."""

    output: str
    kind: str
    identity: dict
    inputs: dict[str, str] = field(default_factory=dict)
    units: dict[str, dict] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)

    # -- persistence
    def to_json(self) -> bytes:
        data = {"meshfleet_job": LEDGER_FORMAT, "kind": self.kind, "identity": self.identity, "runs": self.runs,
                "inputs": self.inputs, "units": self.units, "files": self.files, "folders": self.folders}
        return json.dumps(data, indent=1, sort_keys=True).encode()

    def save(self) -> None:
        write_bytes_atomic(join(self.output, JOB_FILE), self.to_json())

    # -- what the job wrote
    def present(self) -> set[str]:
        """Relative paths of the files under the output (hidden temporary files included)."""
        return _listing(self.output)

    def committed(self) -> set[str]:
        """Names of this job's unit files that exist (committed units)."""
        present = self.present()
        return {name for name in self.units if name in present}

    def owned(self, present: set[str] | None = None) -> list[str]:
        """Relative paths of the files under the output that this job wrote."""
        present = self.present() if present is None else present
        names = set(self.units) | set(self.files)
        patterns = [temporary_names_of(posixpath.basename(n)) for n in names]
        owned = {p for p in present if p in names or p == JOB_FILE}
        owned.update(p for p in present if any(p.startswith(folder.rstrip("/") + "/") for folder in self.folders))
        temporary = [p for p in present if posixpath.basename(p).startswith(".") and p.endswith(".tmp")]
        owned.update(p for p in temporary if any(fnmatch.fnmatch(posixpath.basename(p), pat) for pat in patterns))
        return sorted(owned)

    # -- changes (the ledger is saved before any file it names is written)
    def declare(self, units: dict[str, dict] | None = None, inputs: dict[str, str] | None = None,
                files: Sequence[str] = (), folders: Sequence[str] = ()) -> None:
        self.units.update(units or {})
        self.inputs.update(inputs or {})
        self.files.extend(f for f in files if f not in self.files)
        self.folders.extend(f for f in folders if f not in self.folders)
        self.save()

    def forget(self, names: Iterable[str]) -> None:
        """Delete units (their files first, then their entries: an owned file is never unlisted)."""
        names = [n for n in names if n in self.units or n in self.files]
        present = self.present()
        for name in names:
            if name in present:
                _remove(join(self.output, name))
        for name in names:
            self.units.pop(name, None)
            if name in self.files:
                self.files.remove(name)
        self.save()

    def remove_files(self, names: Iterable[str]) -> None:
        """Delete owned files (other than units) without unlisting them (they will be rewritten)."""
        present = self.present()
        for name in names:
            if name in self.files and name in present:
                _remove(join(self.output, name))

    def record_run(self, record: dict) -> None:
        """Start a run record (``index = len(runs) - 1``), or update the last one with ``record``."""
        if record.get("started"):
            self.runs.append(dict(record))
        else:
            self.runs[-1].update(record)
        self.save()


def _listing(output: str) -> set[str]:
    fs, root = url_to_fs(output)
    if not with_retries(lambda: fs.exists(root), f"stat {output}"):
        return set()
    fs.invalidate_cache(root)
    paths = with_retries(lambda: fs.find(root), f"list {output}")
    root = root.rstrip("/")
    return {p[len(root) + 1:] for p in paths if p.startswith(root + "/")}


def _remove(uri: str) -> None:
    fs, path = url_to_fs(uri)
    try:
        with_retries(lambda: fs.rm_file(path), f"remove {uri}")
    except FileNotFoundError:
        pass


def read_ledger(output: str) -> Ledger | None:
    """The ledger of ``output`` (None without a job file); format-1 job files are read as a ledger
    whose units are the files with meshfleet's generated unit names."""
    fs, root = url_to_fs(join(output, JOB_FILE))
    try:
        raw = with_retries(lambda: fs.cat_file(root), f"read {output}/{JOB_FILE}")
    except (FileNotFoundError, NotADirectoryError):  # no job file, or ``output`` is a file
        return None
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise JobMismatchError(f"{join(output, JOB_FILE)} is not a meshfleet job file ({err})") from err
    if data.get("meshfleet_job") != LEDGER_FORMAT:  # format 1: the identity itself, unit names by pattern
        units: dict[str, dict] = {p: {} for p in _listing(output) if LEGACY_UNIT_NAME.match(p)}
        return Ledger(output, "infer (format 1)", data, units=units)
    return Ledger(output, data["kind"], data["identity"], data.get("inputs", {}), data.get("units", {}),
                  data.get("files", []), data.get("runs", []), data.get("folders", []))


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def _names(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:SHOWN])
    return shown + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")


def claim_output(output: str, kind: str, identity: dict, overwrite: bool = False,
                 on_existing: str = "resume") -> Ledger:
    """Claim ``output`` for a job of ``kind`` and ``identity`` (see the module docstring).

    ``on_existing`` says what an output of the same kind and identity means: ``resume`` (return its
    ledger), ``refuse`` (unless ``overwrite``) or ``replace`` (remove its files, start over).
    """
    if on_existing not in ("resume", "refuse", "replace"):
        raise ValueError(f"on_existing must be resume, refuse or replace, not {on_existing!r}")
    ledger = read_ledger(output)
    if ledger is None:
        present = sorted(_listing(output))
        if present:
            raise JobMismatchError(
                f"{output} holds {len(present)} files that meshfleet did not write ({_names(present)}) and no "
                f"{JOB_FILE}; meshfleet never writes into such a folder: choose a new or empty --output")
        return _fresh(output, kind, identity)
    same = ledger.kind == kind and ledger.identity == identity
    if same and on_existing == "resume" and not overwrite:
        return ledger
    if same and on_existing == "refuse" and not overwrite:
        raise JobMismatchError(f"{output} already holds the output of this {kind} job; "
                               "pass --overwrite to replace it, or choose another --output")
    if not same and not overwrite:
        what = (f"the output of a meshfleet {ledger.kind} job" if ledger.kind != kind else
                f"results of a different job ({'; '.join(_differences(ledger.identity, identity)[:6])})")
        hint = "use another --output, or --overwrite to replace them" if on_existing != "replace" else \
            "choose another --output"
        raise JobMismatchError(f"{output} holds {what}; {hint}")
    kept = remove_owned(ledger)
    if kept:
        log.warning("%s: removed meshfleet's files; kept %d files it did not write (%s)", output, len(kept),
                    _names(kept))
    return _fresh(output, kind, identity)


def remove_owned(ledger: Ledger) -> list[str]:
    """Delete every file the ledger's job wrote (its job file last); returns what stays (not ours)."""
    present = ledger.present()
    owned = ledger.owned(present)
    for name in owned:
        if name != JOB_FILE:
            _remove(join(ledger.output, name))
    _remove(join(ledger.output, JOB_FILE))
    return sorted(present - set(owned))


def _fresh(output: str, kind: str, identity: dict) -> Ledger:
    if is_local(output):
        os.makedirs(url_to_fs(output)[1], exist_ok=True)
    ledger = Ledger(output, kind, identity)
    ledger.save()
    return ledger
