"""``meshfleet synth`` on the job skeleton (:mod:`pipelines.skeleton`): its units, stages and committer.

    scene units -> scene_items (one row per scene index) -> MakeScenes (actors: body models loaded
    once; each scene drawn, rendered, its image / video and masks written) -> person rows
    -> commit (driver: ``oracle/<unit>`` then ``labels/<unit>``, the unit's commit record)

The media files are named after the scenes, so they are written by the workers as scenes are made;
the labels file of a unit is written last, when every scene of the unit is through. Rows are the
person rows of :func:`pipelines.annotations.scene_rows` (numpy columns) plus ``unit``, ``fps`` (the
video's frame rate; NaN for a still image) and ``scene_frames`` (frames of the row's scene).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import numpy as np

from pipelines.annotations import scene_rows
from pipelines.skeleton import Batch, Committed, Stage, Unit
from pipelines.storage import table_to_bytes
from pipelines.synth.generator import SceneGenerator, SceneUnit, SynthSpec, unit_tables, write_media

LABELS, ORACLE = "labels", "oracle"
EXTRA = ("unit", "fps", "scene_frames")  # row columns that are not labels


def unit_of(unit: SceneUnit) -> Unit:
    """A scene unit as a skeleton unit: its file is ``labels/<name>``, its items are its scenes."""
    return Unit(f"{LABELS}/{unit.name}", unit.stop - unit.start, json.dumps({"start": unit.start, "stop": unit.stop}))


def scene_items(batch: Batch) -> Iterator[Batch]:
    """First stage: one unit -> one row per scene index in it."""
    span = json.loads(str(batch["payload"][0]))
    scenes = np.arange(span["start"], span["stop"], dtype=np.int64)
    yield {"unit": np.full(len(scenes), str(batch["unit"][0])), "scene_index": scenes}


class MakeScenes:
    """The scene stage, built once per worker: draws and renders each scene of the batch, writes its
    image (or video) and masks under ``output``, and returns its person rows."""

    def __init__(self, spec: SynthSpec, output: str, torch_threads: int | None = 1):
        import torch

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.generator, self.output = SceneGenerator(spec), output

    def __call__(self, batch: Batch) -> Batch:
        parts = []
        for unit, index in zip(batch["unit"], batch["scene_index"], strict=True):
            built = self.generator.build(int(index))
            source = write_media(built, self.output)
            rows = scene_rows(built, source)
            n = len(rows["source"])
            fps = built.scene.fps if built.scene.kind == "video" else np.nan
            parts.append({**rows, "unit": np.full(n, str(unit)), "fps": np.full(n, fps, np.float64),
                          "scene_frames": np.full(n, len(built.frames), np.int64)})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def synth_stages(spec: SynthSpec, output: str, workers: int, torch_threads: int | None) -> list[Stage]:
    """``workers`` scene actors on Ray, one CPU and ``torch_threads`` each (1 on Ray: the actors are
    the parallelism; None in this process: torch's default)."""
    # The index stage only lists scene numbers: it reserves no CPU, so that `workers` actors of one CPU
    # each can take every CPU of the machine without starving it (a 0.1-CPU stage deadlocked a
    # 2-CPU embedded Ray with the default one actor per CPU).
    return [Stage("scenes", scene_items, num_cpus=0),
            Stage("make", MakeScenes, actor=True, kwargs={"spec": spec, "output": output,
                                                          "torch_threads": torch_threads},
                  batch_size=1, num_cpus=1, concurrency=workers)]


class CommitScenes:
    """The person rows of one unit -> its oracle file and its labels file (rows in scene, frame,
    person order, as the scenes were made). ``frames``: frames made in the committed units (of the
    scenes that hold people: scenes arrive as their person rows)."""

    def __init__(self, spec: SynthSpec):
        self.spec = spec
        self.frames = 0
        self.lock = threading.Lock()  # commits run in the skeleton's threads

    def __call__(self, unit: Unit, rows: Batch) -> Committed:
        order = np.lexsort((rows["person"], rows["frame"], rows["scene"]))
        rows = {k: np.asarray(v)[order] for k, v in rows.items()}
        sources, fps = rows["source"].astype(str), rows["fps"]
        video_fps = {str(s): float(f) for s, f in zip(sources, fps, strict=True) if np.isfinite(f)}
        labels, oracle = unit_tables({k: v for k, v in rows.items() if k not in EXTRA}, video_fps, self.spec)
        _, first = np.unique(rows["scene"], return_index=True)
        with self.lock:
            self.frames += int(rows["scene_frames"][first].sum())
        name = unit.name.split("/", 1)[1]
        return Committed(table_to_bytes(labels), labels.num_rows,
                         files=((f"{ORACLE}/{name}", table_to_bytes(oracle)),))
