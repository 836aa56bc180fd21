"""Ownership ledger and incremental planning, without running a network."""

import json
import re

import pytest

from jobs.synthetic import draw_scene, write_video
from pipelines.jobstate import (
    JOB_FILE,
    JobMismatchError,
    OutputOverlapError,
    check_overlap,
    claim_output,
    overlaps,
    read_ledger,
)
from pipelines.readers import InputItem
from pipelines.units import plan_run, plan_units


@pytest.mark.parametrize("output, source, overlap", [
    ("/data/corpus", "/data/corpus", True),
    ("/data/corpus/out", "/data/corpus", True),  # inside an input folder
    ("/data", "/data/corpus/a.jpg", True),  # contains an input
    ("/data/corpus-out", "/data/corpus", False),  # a sibling sharing a prefix
    ("/data/out", "/data/corpus/*.jpg", False),
    ("/data/corpus/x", "/data/corpus/*.jpg", True),  # a glob's folder
    ("s3://bucket/", "s3://bucket/corpus/v.mp4", True),  # the bucket root
    ("s3://bucket/corpus/results", "s3://bucket/corpus", True),
    ("s3://bucket/results", "s3://bucket/corpus/", False),
    ("s3://bucket/corpus", "s3://other/corpus", False),
])
def test_overlap_rules_for_paths_and_s3_prefixes(output, source, overlap):
    if "*" not in source:
        assert overlaps(output, source) == overlaps(source, output) == overlap
    if overlap:
        with pytest.raises(OutputOverlapError, match=re.escape(f"output {output} overlaps input {source}")):
            check_overlap(output, [source])
    else:
        check_overlap(output, [source])


def test_ledger_owns_only_what_it_names(tmp_path):
    out = tmp_path / "out"
    ledger = claim_output(str(out), "demo", {"k": 1})
    ledger.declare(units={"u1.parquet": {}, "u2.parquet": {}}, files=["_marks/m.json"])
    for name in ("u1.parquet", ".u2.parquet.abc.tmp", "_marks/m.json", "theirs.parquet", ".u9.parquet.x.tmp"):
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_text("x")
    assert ledger.committed() == {"u1.parquet"}
    assert ledger.owned() == sorted([JOB_FILE, "u1.parquet", ".u2.parquet.abc.tmp", "_marks/m.json"])
    again = claim_output(str(out), "demo", {"k": 1})  # same job: resumed
    assert again.units == ledger.units and again.files == ["_marks/m.json"]
    with pytest.raises(JobMismatchError, match="different job.*k: 1 -> 2"):
        claim_output(str(out), "demo", {"k": 2})
    with pytest.raises(JobMismatchError, match="meshfleet demo job"):
        claim_output(str(out), "other", {}, on_existing="replace")
    fresh = claim_output(str(out), "demo", {"k": 2}, overwrite=True)
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted([JOB_FILE, "theirs.parquet",
                                                                            ".u9.parquet.x.tmp"])
    assert fresh.units == {} and json.loads((out / JOB_FILE).read_text())["identity"] == {"k": 2}


def test_a_folder_of_other_files_is_never_claimed(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(JobMismatchError, match="1 files that meshfleet did not write.*notes.txt"):
            claim_output(str(tmp_path), "infer", {}, overwrite=overwrite)
    assert read_ledger(str(tmp_path)) is None and (tmp_path / "notes.txt").read_text() == "mine"
    claim_output(str(tmp_path / "empty"), "infer", {})  # a new folder is fine


def test_refuse_and_replace_modes(tmp_path):
    ledger = claim_output(str(tmp_path / "t"), "track", {"a": 1}, on_existing="refuse")
    ledger.declare(units={"x.parquet": {}})
    (tmp_path / "t" / "x.parquet").write_text("x")
    with pytest.raises(JobMismatchError, match="--overwrite"):
        claim_output(str(tmp_path / "t"), "track", {"a": 1}, on_existing="refuse")
    replaced = claim_output(str(tmp_path / "t"), "track", {"a": 1}, on_existing="replace")
    assert replaced.units == {} and not (tmp_path / "t" / "x.parquet").exists()


def test_plan_run_grows_the_job(tmp_path):
    video = str(write_video(tmp_path / "v.mp4", [draw_scene(32, 32, 1, seed=i) for i in range(5)], fps=5))
    items = [InputItem(f"/x/{n}.jpg", "image", fingerprint="1") for n in "abc"] + [InputItem(video, "video",
                                                                                             fingerprint="v")]
    first = plan_run(items, {}, {}, set(), images_per_unit=2, frames_per_chunk=2)
    assert first.added == [i.uri for i in items] and len(first.todo) == 2 + 3
    units = {u.name: u.as_dict() for u in first.new}
    inputs = first.fingerprints
    done = set(units) - {first.new[-1].name}  # the last video chunk never committed (killed)
    grown = [InputItem("/x/a.jpg", "image", fingerprint="1"), InputItem("/x/b.jpg", "image", fingerprint="2"),
             InputItem("/x/d.jpg", "image", fingerprint="1"), items[3]]
    plan = plan_run(grown, units, inputs, done, images_per_unit=2, frames_per_chunk=2)
    assert plan.added == ["/x/d.jpg"] and plan.changed == ["/x/b.jpg"] and plan.removed == ["/x/c.jpg"]
    assert plan.trim == {first.new[0].name: ["/x/b.jpg"]}  # a keeps its rows; b is redone
    assert plan.stale == []
    assert [u.uris for u in plan.new] == [("/x/b.jpg", "/x/d.jpg")]
    assert [u.name for u in plan.todo] == [first.new[-1].name, plan.new[0].name]  # unfinished chunk + new
    assert sum(u.frames for u in plan.todo) == 1 + 2
    nothing = plan_run(items, units, inputs, set(units), images_per_unit=2, frames_per_chunk=2)
    assert nothing.todo == [] and nothing.added == nothing.changed == nothing.removed == []


def test_units_changed_whole_or_unfinished_are_replanned():
    items = [InputItem(f"/x/{n}.jpg", "image", fingerprint="1") for n in "ab"]
    (unit,) = plan_units(items, images_per_unit=2)
    known = {unit.name: unit.as_dict()}
    changed = [InputItem(i.uri, "image", fingerprint="2") for i in items]
    plan = plan_run(changed, known, {i.uri: "1" for i in items}, {unit.name})
    assert plan.stale == [unit.name] and plan.trim == {} and [u.uris for u in plan.new] == [unit.uris]
    partly = plan_run(items[:1], known, {i.uri: "1" for i in items}, set())  # b no longer given, never done
    assert partly.stale == [unit.name] and [u.uris for u in partly.new] == [("/x/a.jpg",)]
