"""Running synth units on Ray Data: units (driver) -> SceneGenerator actors -> per-unit stats (driver).

TEMPORARY GLUE until the shared pipeline skeleton lands: replace ``run_units`` by the skeleton's runner
(the unit function :meth:`SceneGenerator.run` stays as it is).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pipelines.synth.generator import SceneGenerator, SceneUnit, SynthSpec, UnitStats


class _Worker:
    """One SceneGenerator per actor (body models and motions loaded once)."""

    def __init__(self, spec: SynthSpec, output: str, torch_threads: int):
        import torch

        torch.set_num_threads(torch_threads)
        self.generator, self.output = SceneGenerator(spec), output

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        stats = [self.generator.run(SceneUnit(int(a), int(b)), self.output)
                 for a, b in zip(batch["start"], batch["stop"], strict=True)]
        return {"name": [s.name for s in stats], "scenes": [s.scenes for s in stats],
                "frames": [s.frames for s in stats], "persons": [s.persons for s in stats]}


def run_units(units: list[SceneUnit], spec: SynthSpec, output: str, workers: int | None,
              on_unit: Callable[[UnitStats], None] | None = None) -> list[UnitStats]:
    """Make ``units`` on the current Ray cluster with ``workers`` actors (default: one per CPU)."""
    import ray

    if not units:
        return []
    actors = workers or max(1, int(ray.cluster_resources().get("CPU", os.cpu_count() or 1)))
    actors = min(actors, len(units))
    items = ray.data.from_items([{"start": u.start, "stop": u.stop} for u in units], override_num_blocks=len(units))
    ds = items.map_batches(_Worker, fn_constructor_kwargs={"spec": spec, "output": output, "torch_threads": 1},
                        batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1)
    out = []
    for row in ds.iter_rows():
        stats = UnitStats(row["name"], int(row["scenes"]), int(row["frames"]), int(row["persons"]))
        if on_unit:
            on_unit(stats)
        out.append(stats)
    return out


def run_units_here(units: list[SceneUnit], spec: SynthSpec, output: str,
                   on_unit: Callable[[UnitStats], None] | None = None) -> list[UnitStats]:
    """The same units, one after the other in this process (``--no-ray``)."""
    generator = SceneGenerator(spec) if units else None
    out = []
    for unit in units:
        assert generator is not None
        out.append(generator.run(unit, output))
        if on_unit:
            on_unit(out[-1])
    return out
