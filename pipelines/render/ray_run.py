"""The Ray Data glue of ``meshfleet render`` (one function, until the pipeline skeleton takes over).

    units (driver) -> read_frames (tasks, one unit per call) -> PanelRenderer (actor pool)
                   -> panel rows back to the driver -> each unit encoded and written once complete

Without Ray (``ray=False``) the same stage functions run in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial

import numpy as np

from pipelines.render.draw import DrawOptions, PanelRenderer
from pipelines.render.frames import read_frames
from pipelines.render.plan import MediaUnit, ResultsInfo

Batch = dict[str, np.ndarray]


def unit_batch(unit: MediaUnit) -> Batch:
    return {"unit": np.array([unit.name]), "payload": np.array([unit.to_json()]), "items": np.array([unit.frames])}


def stream_panels(units: list[MediaUnit], info: ResultsInfo, options: DrawOptions, workers: int, gpus: float,
                  ray: bool = True) -> Iterator[Batch]:
    """Panel rows (``unit``, ``frame``, ``panel``, ``error``) of all ``units``, in any order."""
    if not ray:
        renderer = PanelRenderer(options, info)
        for unit in units:
            for batch in read_frames(unit_batch(unit), info):
                yield renderer(batch)
        return
    import ray as ray_module

    rows = [{"unit": u.name, "payload": u.to_json(), "items": u.frames} for u in units]
    ds: ray_module.data.Dataset = ray_module.data.from_items(rows, override_num_blocks=len(rows))
    ds = ds.map_batches(partial(_read, info=info), batch_size=1, batch_format="numpy", num_cpus=0.5)
    ds = ds.map_batches(PanelRenderer, fn_constructor_kwargs={"options": options, "info": info},
                        batch_format="numpy", compute=ray_module.data.ActorPoolStrategy(size=workers),
                        num_cpus=1, num_gpus=gpus)
    yield from ds.iter_batches(batch_size=None, batch_format="numpy")


def _read(batch: Batch, info: ResultsInfo) -> Iterator[Batch]:
    yield from read_frames(batch, info)


def collect_units(batches: Iterable[Batch], units: list[MediaUnit],
                  commit: Callable[[MediaUnit, Batch], None]) -> None:
    """Gather the rows of each unit and ``commit`` it as soon as all of its frames are in."""
    by_name = {u.name: u for u in units}
    parts: dict[str, list[Batch]] = {}
    seen: dict[str, int] = {}
    for batch in batches:
        names = np.asarray(batch["unit"]).astype(str)
        for name in np.unique(names):
            rows = np.flatnonzero(names == name)
            parts.setdefault(str(name), []).append({k: _rows(v, rows) for k, v in batch.items()})
            seen[str(name)] = seen.get(str(name), 0) + len(rows)
            if seen[str(name)] >= by_name[str(name)].frames:
                gathered = parts.pop(str(name))
                commit(by_name[str(name)], {k: _concat([p[k] for p in gathered]) for k in gathered[0]})


def _rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.asarray(values)[rows]


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    if all(p.dtype != object for p in parts) and len({p.shape[1:] for p in parts}) == 1:
        return np.concatenate(parts)
    out = np.empty(sum(len(p) for p in parts), dtype=object)
    out[:] = [row for p in parts for row in p]
    return out
