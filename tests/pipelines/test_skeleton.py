"""The job skeleton on toy stages: units committed whole, transient failures left, interrupts, Ray = local."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.jobstate import claim_output
from pipelines.ray_runner import RayRunner
from pipelines.skeleton import (
    Committed,
    Interrupted,
    Job,
    LocalRunner,
    Progress,
    Stage,
    Unit,
    run_job,
    with_markers,
)
from pipelines.storage import TransientError, table_to_bytes


def read(batch, fail_on=""):
    """First stage: a unit's payload lists its values; yields them as item rows, two at a time."""
    unit = str(batch["unit"][0])
    if unit == fail_on:
        raise TransientError(f"{unit}: connection reset")
    values = json.loads(str(batch["payload"][0]))
    for i in range(0, len(values), 2):
        part = np.array(values[i:i + 2], np.float32)
        yield {"unit": np.full(len(part), unit), "x": part, "pixels": np.zeros((len(part), 4, 4, 3), np.uint8)}


class KeepPositive:
    """Last stage, built once per worker: drops items <= 0 (an item may give no row), squares the rest."""

    def __init__(self, power: int, stop_at: float | None = None):
        self.power, self.stop_at = power, stop_at

    def __call__(self, batch):
        if self.stop_at is not None and (batch["x"] == self.stop_at).any():
            raise KeyboardInterrupt
        keep = batch["x"] > 0
        return {"unit": batch["unit"][keep], "y": batch["x"][keep] ** self.power}


def commit(unit, rows):
    values = rows.get("y", np.zeros(0, np.float32))
    return Committed(table_to_bytes(pa.table({"y": pa.array(values, pa.float32())})), len(values))


PAYLOADS = {"a.parquet": [1, 2, 3], "b.parquet": [-1, -2], "c.parquet": [4, -5, 6, 7, 8]}


def _job(tmp_path, name, stages, payloads=PAYLOADS):
    ledger = claim_output(str(tmp_path / name), "toy", {"v": 1})
    ledger.declare(units={u: {} for u in payloads})
    units = [Unit(u, len(v), json.dumps(v)) for u, v in payloads.items()]
    return Job(ledger, units, stages, commit)


def _files(root):
    return {p.name: pq.read_table(p).column("y").to_pylist() for p in root.glob("*.parquet")}


def test_stages_are_plain_functions_of_batch_dicts():
    batch = {"unit": np.array(["c.parquet"]), "payload": np.array([json.dumps([4, -5, 6])]), "items": np.array([3])}
    out = list(read(batch))
    assert [len(b["x"]) for b in out] == [2, 1] and out[0]["pixels"].dtype == np.uint8
    squared = KeepPositive(2)(out[0])
    assert squared["y"].tolist() == [16.0] and squared["unit"].tolist() == ["c.parquet"]
    marked = with_markers(squared, out[0]["unit"])  # what the skeleton adds: items consumed per unit
    assert marked["_items"].tolist() == [0, 2] and marked["y"].tolist() == [16.0, 0.0]


@pytest.mark.parametrize("runner", ["local", "ray"])
def test_every_unit_is_committed_whole(tmp_path, runner, request):
    if runner == "ray":
        request.getfixturevalue("ray_local")
    stages = [Stage("read", read), Stage("square", KeepPositive, actor=True, kwargs={"power": 2}, batch_size=3)]
    seen = []
    progress = run_job(_job(tmp_path, "out", stages), LocalRunner() if runner == "local" else RayRunner(),
                       lambda p: seen.append(p.items_done))
    assert _files(tmp_path / "out") == {"a.parquet": [1, 4, 9], "b.parquet": [], "c.parquet": [16, 36, 49, 64]}
    assert progress.units_done == 3 and progress.items_done == progress.items_committed == 10
    assert progress.rows == 7 and progress.failed_units == [] and seen[-1] == 10
    assert not list((tmp_path / "out").glob(".*.tmp"))


@pytest.mark.parametrize("runner", ["local", "ray"])
def test_a_transient_failure_leaves_the_unit_for_the_rerun(tmp_path, runner, request):
    if runner == "ray":
        request.getfixturevalue("ray_local")
    stages = [Stage("read", read, kwargs={"fail_on": "b.parquet"}), Stage("square", KeepPositive, actor=True,
                                                                          kwargs={"power": 1})]
    progress = run_job(_job(tmp_path, "out", stages), LocalRunner() if runner == "local" else RayRunner())
    assert sorted(_files(tmp_path / "out")) == ["a.parquet", "c.parquet"]
    assert progress.failed_units == [("b.parquet", "b.parquet: connection reset")]


def test_an_interrupt_keeps_whole_units_only(tmp_path):
    stages = [Stage("read", read), Stage("square", KeepPositive, actor=True, kwargs={"power": 1, "stop_at": 6.0})]
    with pytest.raises(Interrupted) as stopped:
        run_job(_job(tmp_path, "out", stages), LocalRunner())
    assert stopped.value.progress.units_done == 2 and str(stopped.value) == "interrupted after 2 of 3 units"
    assert sorted(_files(tmp_path / "out")) == ["a.parquet", "b.parquet"]  # c was cut: nothing of it
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_rate_is_measured_from_the_steady_state(tmp_path, monkeypatch):
    clock = iter([134.0, 134.0])  # "now", twice: 4 s after the first batch came through
    monkeypatch.setattr("pipelines.skeleton.time.monotonic", lambda: next(clock))
    progress = Progress(items_total=10)
    assert progress.rate() == 0.0 and progress.eta_s() is None  # nothing through yet: no rate, no ETA
    progress.steady_since, progress.steady_items, progress.items_done = 130.0, 2, 10
    assert progress.rate() == pytest.approx(2.0)  # 8 items in 4 s, not 10 in 34 s
    progress.items_total = 18
    assert progress.eta_s() == pytest.approx(4.0)


def test_a_committer_writes_the_units_other_files_before_its_record(tmp_path):
    def commit_with_sidecar(unit, rows):
        values = rows.get("y", np.zeros(0, np.float32))
        sidecar = f"sums/{unit.name}.txt"
        assert not (tmp_path / "out" / unit.name).exists()  # the unit's own file comes last
        return Committed(table_to_bytes(pa.table({"y": pa.array(values, pa.float32())})), len(values),
                         files=((sidecar, str(float(values.sum())).encode()),))

    job = _job(tmp_path, "out", [Stage("read", read), Stage("square", KeepPositive, actor=True, kwargs={"power": 2})])
    job.ledger.declare(folders=["sums"])
    run_job(Job(job.ledger, job.units, job.stages, commit_with_sidecar), LocalRunner())
    sums = {p.name: p.read_text() for p in (tmp_path / "out" / "sums").iterdir()}
    assert sums == {"a.parquet.txt": "14.0", "b.parquet.txt": "0.0", "c.parquet.txt": "165.0"}
    assert sorted(job.ledger.owned()) == sorted(["_meshfleet_job.json", "a.parquet", "b.parquet", "c.parquet",
                                                 *(f"sums/{n}" for n in sums)])
