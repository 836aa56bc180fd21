"""The skeleton of every meshfleet job: plan units -> stream them through stages -> commit each unit.

A job is a list of **units** (what one output file holds: a group of images, a video chunk, a batch
of scenes), a list of **stages** (plain functions -- or classes built once per worker, for a model --
from a batch dict of numpy columns to a batch dict) and a **committer** (the rows of one unit -> the
bytes of its file). :func:`run_job` streams the units through the stages -- with Ray Data
(:class:`RayRunner`, in :mod:`pipelines.ray_runner`) or in this process (:class:`LocalRunner`) --
collects the rows of each unit, commits every complete unit atomically into the job's owned output
(:mod:`pipelines.jobstate`), and reports progress. A unit whose reading failed transiently is left
uncommitted and reported, for the rerun to retry::

    def read(batch):                        # first stage: one unit per call -> exactly its items
        n = int(batch["items"][0])
        yield {"unit": np.repeat(batch["unit"], n), "x": np.arange(n, dtype=np.float32)}

    class Square:                           # a stage built once per worker (loads a model, say)
        def __call__(self, batch):
            return {"unit": batch["unit"], "y": batch["x"] ** 2}

    def commit(unit, rows):                 # the rows of one unit -> its file
        return Committed(table_to_bytes(pa.table({"y": rows["y"]})), rows=len(rows["y"]))

    ledger = claim_output("out/", "squares", identity={"version": 1})
    ledger.declare(units={"u0.parquet": {}})  # names enter the ledger before files exist
    job = Job(ledger, [Unit("u0.parquet", items=4)], [Stage("read", read), Stage("square", Square, actor=True)],
              commit)
    progress = run_job(job, LocalRunner())  # or RayRunner()

**Batches** follow Ray Data's numpy batch format, so every stage can be tested on a plain dict:

* every column is a numpy array and all have the same length (rows); text as numpy string arrays;
* the first stage is called with one unit at a time, ``{"unit": [name], "payload": [text],
  "items": [n]}``, and yields (or returns) **exactly n item rows** -- an item that fails is a row too
  (with an ``error`` column, say) -- or raises :class:`~pipelines.storage.TransientError` to leave
  the unit for a rerun;
* every stage's output rows carry the ``unit`` column of the item they come from;
* the last stage maps items to output rows, any number per item (zero included); the skeleton counts
  the items each call consumed, so a unit is committed once all its n items are through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pipelines.jobstate import Ledger
from pipelines.storage import TransientError, join, write_bytes_atomic

log = logging.getLogger(__name__)
Batch = dict[str, np.ndarray]
ITEMS = "_items"  # bookkeeping column: items of a unit a last-stage call consumed (on marker rows)
COMMIT_THREADS = 2


@dataclass(frozen=True)
class Unit:
    """``name``: its file under the output; ``items``: the item rows its first stage yields;
    ``payload``: what the first stage needs to read it (text, e.g. JSON)."""

    name: str
    items: int
    payload: str = ""


@dataclass(frozen=True)
class Stage:
    """One step. ``fn``: a function ``batch -> batch`` (or an iterator of batches), or with
    ``actor`` a class built once per worker with ``kwargs`` whose instances are such functions.
    Resources apply on Ray: ``num_cpus`` / ``num_gpus`` per task or actor, ``concurrency`` actors,
    ``batch_size`` rows per call (None: as they come)."""

    name: str
    fn: Callable[..., Any]
    actor: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    num_cpus: float = 0.5
    num_gpus: float = 0.0
    concurrency: int = 1

    def build(self) -> Callable[[Batch], Any]:
        return self.fn(**self.kwargs) if self.actor else _Bound(self.fn, self.kwargs)


class _Bound:
    def __init__(self, fn: Callable[..., Any], kwargs: dict[str, Any]):
        self.fn, self.kwargs = fn, kwargs

    def __call__(self, batch: Batch) -> Any:
        return self.fn(batch, **self.kwargs)


@dataclass(frozen=True)
class Committed:
    """What a committer made of a unit: the file's bytes, its row count (good rows), the inputs that
    failed in it (``(input, reason)``, e.g. from error rows), how many error rows it holds, and
    ``files``: other files of the unit, ``(path under the output, bytes)``, written (atomically)
    before the unit's own file, which stays the unit's commit record. Their names must be owned by
    the job (declared in its ledger, or under a folder it declared)."""

    data: bytes
    rows: int
    failed: tuple[tuple[str, str], ...] = ()
    error_rows: int = 0
    files: tuple[tuple[str, bytes], ...] = ()


Committer = Callable[[Unit, Batch], Committed]


@dataclass
class Job:
    ledger: Ledger
    units: list[Unit]
    stages: list[Stage]
    commit: Committer


@dataclass
class Progress:
    """Where a run stands; ``steady_since``: when the first items came through (rates exclude start-up)."""

    units_total: int = 0
    items_total: int = 0
    units_done: int = 0
    items_done: int = 0  # through the last stage
    items_committed: int = 0  # in committed units
    rows: int = 0
    error_rows: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input, reason) of committed units
    failed_units: list[tuple[str, str]] = field(default_factory=list)  # (unit, reason) left uncommitted
    started: float = field(default_factory=time.monotonic)
    steady_since: float | None = None
    steady_items: int = 0

    def rate(self) -> float:
        """Items per second since the pipeline reached a steady state (after the first batch)."""
        if self.steady_since is None:
            return 0.0
        elapsed = time.monotonic() - self.steady_since
        return (self.items_done - self.steady_items) / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        rate = self.rate()
        return (self.items_total - self.items_done) / rate if rate > 0 else None


class Interrupted(Exception):
    """The run was stopped (Ctrl-C, SIGTERM); committed units stay, nothing partial is left."""

    def __init__(self, progress: Progress):
        super().__init__(f"interrupted after {progress.units_done} of {progress.units_total} units")
        self.progress = progress


class Runner(Protocol):
    def run(self, job: Job, collector: Collector) -> list[tuple[str, str]]:
        """Stream the job's units through its stages into ``collector``; returns the units that
        failed transiently, ``(unit, reason)``."""
        ...


# -- the stage adapter both runners use ------------------------------------------------------------

def _batches(out: Any) -> Iterator[Batch]:
    if isinstance(out, dict):
        yield out
    elif out is not None:
        yield from out


def with_markers(out: Batch, units_in: np.ndarray) -> Batch:
    """``out`` plus one marker row per unit of the call's input, whose ``_items`` says how many of
    that unit's items the call consumed (0 on data rows; other columns zero-filled)."""
    names, counts = np.unique(np.asarray(units_in), return_counts=True)
    marked = {}
    for name, values in out.items():
        values = np.asarray(values)
        filler = names.astype(values.dtype) if name == "unit" else np.zeros((len(names), *values.shape[1:]),
                                                                            values.dtype)
        marked[name] = np.concatenate([values, filler])
    rows = len(next(iter(out.values()))) if out else 0
    marked[ITEMS] = np.concatenate([np.zeros(rows, np.int64), counts.astype(np.int64)])
    return marked


def apply_stage(fn: Callable[[Batch], Any], batch: Batch, first: bool, last: bool,
                report: Callable[[str, str], None]) -> Iterator[Batch]:
    """Call a stage on one batch, the skeleton's way: a first stage's transient failure is reported
    (the unit is left undone), and a last stage's outputs carry the item-count markers."""
    try:
        for out in _batches(fn(batch)):
            if last:
                out = with_markers(out, out["unit"] if first else batch["unit"])
                if not first:
                    batch = {"unit": np.zeros(0, batch["unit"].dtype)}  # counted once
            yield out
    except TransientError as err:
        if not first:
            raise
        report(str(batch["unit"][0]), str(err))
    if last and not first and len(batch["unit"]):  # the call yielded nothing: still count its items
        yield with_markers({"unit": np.zeros(0, batch["unit"].dtype)}, batch["unit"])


def unit_batch(unit: Unit) -> Batch:
    return {"unit": np.array([unit.name]), "payload": np.array([unit.payload]), "items": np.array([unit.items])}


# -- the driver side: rows per unit -> commits ------------------------------------------------------

class Collector:
    """Gathers the last stage's rows per unit and commits each unit, in threads, once complete."""

    def __init__(self, job: Job, on_progress: Callable[[Progress], None] | None = None,
                 threads: int = COMMIT_THREADS):
        self.job = job
        self.units = {u.name: u for u in job.units}
        self.parts: dict[str, list[Batch]] = {}
        self.seen: dict[str, int] = {}
        self.progress = Progress(units_total=len(job.units), items_total=sum(u.items for u in job.units))
        self.on_progress = on_progress
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="commit")
        self.pending: list[Future] = []
        self.lock = threading.Lock()

    def add(self, batch: Batch) -> None:
        items = np.asarray(batch[ITEMS])
        marker = items > 0
        units = np.asarray(batch["unit"]).astype(str)
        data = {k: np.asarray(v)[~marker] for k, v in batch.items() if k != ITEMS}
        for name in np.unique(units[~marker]):
            rows = units[~marker] == name
            self.parts.setdefault(str(name), []).append({k: v[rows] for k, v in data.items()})
        done = []
        for name, count in zip(units[marker], items[marker], strict=True):
            self.seen[name] = self.seen.get(name, 0) + int(count)
            if self.seen[name] >= self.units[name].items:
                done.append(name)
        with self.lock:
            if self.progress.steady_since is None:
                self.progress.steady_since, self.progress.steady_items = time.monotonic(), int(items.sum())
            self.progress.items_done += int(items.sum())
        for name in done:
            self.pending.append(self.pool.submit(self._commit, self.units[name], self.parts.pop(name, [])))
        self._raise_failed_commits()
        self._notify()

    def _commit(self, unit: Unit, parts: list[Batch]) -> None:
        rows = concat(parts)
        committed = self.job.commit(unit, rows)
        for name, data in committed.files:
            write_bytes_atomic(join(self.job.ledger.output, name), data)
        write_bytes_atomic(join(self.job.ledger.output, unit.name), committed.data)
        with self.lock:
            self.progress.units_done += 1
            self.progress.items_committed += unit.items
            self.progress.rows += committed.rows
            self.progress.error_rows += committed.error_rows
            self.progress.failed.extend(committed.failed)

    def _raise_failed_commits(self) -> None:
        for future in [f for f in self.pending if f.done()]:
            self.pending.remove(future)
            future.result()  # a failed commit fails the job

    def _notify(self) -> None:
        if self.on_progress:
            self.on_progress(self.progress)

    def finish(self, failed_units: Iterable[tuple[str, str]]) -> Progress:
        """Wait for the commits in flight; units never completed are reported as failed."""
        self.drain()
        reasons = dict(failed_units)
        for name in self.units:
            if self.seen.get(name, 0) < self.units[name].items:
                why = reasons.get(name, "not all of its items came through")
                self.progress.failed_units.append((name, why))
        self._notify()
        return self.progress

    def drain(self) -> None:
        for future in self.pending:
            future.result()
        self.pending.clear()
        self.pool.shutdown(wait=True)


def concat(parts: list[Batch]) -> Batch:
    if not parts:
        return {}
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def run_job(job: Job, runner: Runner, on_progress: Callable[[Progress], None] | None = None) -> Progress:
    """Run ``job`` with ``runner``; raises :class:`Interrupted` on Ctrl-C / SIGTERM (after letting
    the commits in flight finish, so that no partial file is left)."""
    collector = Collector(job, on_progress)
    if not job.units:
        return collector.finish([])
    try:
        failed = runner.run(job, collector)
    except KeyboardInterrupt:
        collector.drain()
        raise Interrupted(collector.progress) from None
    except BaseException:
        collector.drain()
        raise
    return collector.finish(failed)


# -- in this process ------------------------------------------------------------------------------

class LocalRunner:
    """Every stage in this process: the first stage reads the next unit in a thread while the others
    run (prefetch), commits run in the collector's threads. Same functions, same rows as on Ray."""

    def __init__(self, prefetch: int = 2):
        self.prefetch = prefetch

    def run(self, job: Job, collector: Collector) -> list[tuple[str, str]]:
        import queue

        fns = [stage.build() for stage in job.stages]
        failed: list[tuple[str, str]] = []
        items: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        end = object()
        single = len(fns) == 1

        def read() -> None:
            try:
                for unit in job.units:
                    for out in apply_stage(fns[0], unit_batch(unit), True, single, lambda u, r: failed.append((u, r))):
                        while not stop.is_set():
                            try:
                                items.put(out, timeout=0.2)
                                break
                            except queue.Full:
                                continue
                        if stop.is_set():
                            return
            except BaseException as err:  # surfaced in the main thread
                items.put(err)
            items.put(end)

        reader = threading.Thread(target=read, name="read", daemon=True)
        reader.start()
        try:
            while (batch := items.get()) is not end:
                if isinstance(batch, BaseException):
                    raise batch
                for out in self._through(fns[1:], job.stages[1:], batch):
                    collector.add(out)
        finally:
            stop.set()
            reader.join(timeout=10)
        return failed

    def _through(self, fns: list, stages: list[Stage], batch: Batch) -> Iterator[Batch]:
        if not fns:
            yield batch
            return
        size = stages[0].batch_size or len(batch["unit"]) or 1
        rows = len(batch["unit"])
        for start in range(0, max(rows, 1), size):
            part = {k: v[start:start + size] for k, v in batch.items()}
            for out in apply_stage(fns[0], part, False, len(fns) == 1, _no_report):
                yield from self._through(fns[1:], stages[1:], out)


def _no_report(unit: str, reason: str) -> None:
    raise AssertionError("only a first stage reports transient failures")
