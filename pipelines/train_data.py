"""Training data: annotation datasets -> a mixing plan -> one Ray Data stream of batch rows per worker.

``meshfleet train --data URI[:W]`` names annotation datasets (the ``labels/*.parquet`` + ``images/``
folders ``meshfleet synth`` and ``meshfleet pseudo-label`` write). The mix follows the official
``MixedDataset`` semantics (ROMP ``lib/dataset/mixed_dataset.py``): an epoch is as long as all the
mixed sets together, and set *d* fills the share ``w_d / sum(w)`` of it -- drawn without replacement
from a fresh permutation of its images, repeated when the share is larger than the set
(oversampling) and cut short when it is smaller. A set of weight 0 takes no part.

:func:`plan_samples` fixes the whole run's order on the driver from (seed, epoch), and
:func:`rank_rows` cuts it into the slice of each worker: global batch *k* holds samples
``[k G, (k + 1) G)``, worker *r* the ``b`` of them from ``r b`` (G = b x workers). So the data a
step sees does not depend on the number of workers, and a resumed run continues the same order.
:class:`SampleMaker` is the Ray Data map stage (CPU): read the image, draw the augmentation from the
sample's own seed, pad to the batch contract of :mod:`core.train.batch`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from core.train.augment import AugmentConfig, augment
from core.train.batch import sample_arrays
from core.train.labels import LABEL_FLAGS, NUM_BETAS, NUM_THETAS, ImageLabels
from pipelines.annotations import VALIDITY
from pipelines.readers import InputError, read_image
from pipelines.schema import column_array
from pipelines.storage import join, list_files, read_parquet

NUM_JOINTS = 71


class TrainDataError(InputError):
    """A training data set is missing, empty or malformed; the message names it."""


@dataclass(frozen=True)
class DataSource:
    """One ``--data`` entry: an annotation dataset (folder or URI) and its sampling weight."""

    uri: str
    weight: float = 1.0


def parse_data_source(text: str) -> DataSource:
    """``DIR`` or ``DIR:W`` (``s3://bucket/set:0.5`` too): the weight is the part after the last
    colon when it is a number."""
    head, sep, tail = text.rpartition(":")
    if sep and head and "/" not in tail:
        try:
            weight = float(tail)
        except ValueError as err:
            raise TrainDataError(f"--data {text!r}: the weight after ':' must be a number, not {tail!r}") from err
        if not math.isfinite(weight) or weight < 0:
            raise TrainDataError(f"--data {text!r}: the weight must be a finite number >= 0")
        return DataSource(head, weight)
    return DataSource(text, 1.0)


@dataclass
class LabelSet:
    """The still images of one annotation dataset: ``sources[i]`` (relative path) and the rows of its
    people in ``table`` (``rows[i]``, person order)."""

    uri: str
    table: pa.Table
    sources: list[str]
    rows: list[np.ndarray]
    body_model_set: str

    @property
    def size(self) -> int:
        return len(self.sources)


def label_files(uri: str) -> list[str]:
    return sorted(list_files(join(uri, "labels"), ".parquet"))


def read_label_set(uri: str) -> LabelSet:
    """Read every labels file of the dataset at ``uri`` (still images; video rows are skipped)."""
    files = label_files(uri)
    if not files:
        raise TrainDataError(f"--data {uri}: no annotation files (labels/*.parquet); give a folder that "
                             "`meshfleet synth` or `meshfleet pseudo-label` wrote")
    table = pa.concat_tables([read_parquet(f) for f in files], promote_options="default")
    frame = table.select(["source", "person", "track_id"]).to_pandas()
    stills = frame[frame["track_id"].isna()]
    sources, rows = [], []
    for source, group in stills.groupby("source", sort=True):
        sources.append(str(source))
        rows.append(group.sort_values("person", kind="stable").index.to_numpy())
    if not sources:
        raise TrainDataError(f"--data {uri}: no still images with people in its labels")
    sets = set(table.column("body_model_set").drop_null().to_pylist())
    if len(sets) > 1:
        raise TrainDataError(f"--data {uri}: labels on several body-model sets {sorted(sets)}")
    return LabelSet(uri, table, sources, rows, sets.pop() if sets else "")


def _flags(table: pa.Table, name: str, n: int) -> np.ndarray:
    if name not in table.column_names:
        return np.zeros(n, bool)
    return np.asarray(table.column(name).fill_null(False).to_numpy(zero_copy_only=False), bool)


def image_labels(table: pa.Table) -> ImageLabels:
    """The people (rows) of one image as :class:`ImageLabels`; null label columns become 0 with their
    validity flag off."""
    n = table.num_rows
    principal = column_array(table.slice(0, 1), "principal_point", (2,))[0] if n else np.zeros(2, np.float32)
    weight = table.column("weight").fill_null(1.0).to_numpy(zero_copy_only=False) if "weight" in \
        table.column_names else np.ones(n)
    flags = {name: _flags(table, name, n) for name in VALIDITY}
    visible = np.array(table.column("joints2d_visible").to_pylist(), bool).reshape(n, NUM_JOINTS)
    return ImageLabels(
        joints2d=column_array(table, "joints2d", (NUM_JOINTS, 2)),
        joints2d_visible=visible,
        joints3d=column_array(table, "joints3d", (NUM_JOINTS, 3)),
        smpl_thetas=column_array(table, "smpl_thetas", (NUM_THETAS,)),
        smpl_betas=column_array(table, "smpl_betas", (NUM_BETAS,)),
        cam_trans=column_array(table, "cam_trans", (3,)),
        bbox=column_array(table, "bbox", (4,)),
        depth_layer=table.column("depth_layer").fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64),
        age_class=table.column("age_class").fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64),
        weight=np.asarray(weight, np.float32),
        focal_px=float(table.column("focal_px")[0].as_py()) if n else 1.0,
        principal_point=principal,
        **{name: flags[name] for name in LABEL_FLAGS},
    )


# -- the plan ---------------------------------------------------------------------------------------

def epoch_samples(sizes: list[int], weights: list[float], seed: int, epoch: int) -> np.ndarray:
    """(E, 2) int64 (set, image) of one epoch: E = the mixed sets' total size, set d's share
    w_d / sum(w) of it (rounded so the shares add up to E), each set in fresh permutations, the
    epoch shuffled. Deterministic in (seed, epoch)."""
    active = [d for d, w in enumerate(weights) if w > 0]
    total = sum(sizes[d] for d in active)
    share = np.array([weights[d] for d in active], float)
    exact = share / share.sum() * total
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[: total - counts.sum()]] += 1  # largest remainders
    rng = np.random.default_rng([seed, epoch])
    parts = []
    for d, count in zip(active, counts, strict=True):
        reps = -(-count // sizes[d]) if count else 0
        images = np.concatenate([rng.permutation(sizes[d]) for _ in range(reps)])[:count] if reps else \
            np.zeros(0, np.int64)
        parts.append(np.stack([np.full(count, d), images], axis=1))
    samples = np.concatenate(parts).astype(np.int64)
    return samples[rng.permutation(len(samples))]


def epoch_length(sizes: list[int], weights: list[float]) -> int:
    return sum(s for s, w in zip(sizes, weights, strict=True) if w > 0)


def plan_samples(sizes: list[int], weights: list[float], seed: int, start: int, stop: int) -> np.ndarray:
    """(stop - start, 4) int64 rows (global sample index, set, image, epoch) of samples [start, stop)
    of the run's sequence of epochs."""
    length = epoch_length(sizes, weights)
    out = []
    for epoch in range(start // length, (stop - 1) // length + 1 if stop > start else 0):
        first = epoch * length
        samples = epoch_samples(sizes, weights, seed, epoch)
        lo, hi = max(start - first, 0), min(stop - first, length)
        index = np.arange(first + lo, first + hi)
        out.append(np.column_stack([index, samples[lo:hi], np.full(hi - lo, epoch)]))
    return np.concatenate(out) if out else np.zeros((0, 4), np.int64)


def rank_rows(plan: np.ndarray, batch_size: int, workers: int, rank: int) -> np.ndarray:
    """The rows of ``plan`` that worker ``rank`` trains on (``batch_size`` per worker and step)."""
    position = plan[:, 0] % (batch_size * workers)
    return plan[position // batch_size == rank]


# -- the map stage ----------------------------------------------------------------------------------

class SampleMaker:
    """Ray Data map stage: a batch of plan rows -> batch-contract rows (decode + augment on CPU).

    Reads the label sets once per actor. The augmentation of sample i is drawn from
    ``default_rng([seed, i])``: the same on any worker and after a resume."""

    def __init__(self, uris: list[str], input_size: int, max_people: int, seed: int, augment_config: AugmentConfig):
        self.sets = [read_label_set(uri) for uri in uris]
        self.input_size, self.max_people, self.seed = input_size, max_people, seed
        self.augment_config = augment_config

    def sample(self, index: int, set_index: int, image: int) -> dict[str, np.ndarray]:
        labels = self.sets[set_index]
        people = image_labels(labels.table.take(labels.rows[image]))
        bgr = read_image(join(labels.uri, labels.sources[image]))
        rng = np.random.default_rng([self.seed, index])
        return sample_arrays(augment(bgr, people, rng, self.augment_config, self.input_size), self.max_people)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [self.sample(int(i), int(s), int(m))
                for i, s, m in zip(batch["index"], batch["set"], batch["image"], strict=True)]
        return {key: np.stack([row[key] for row in rows]) for key in rows[0]}
