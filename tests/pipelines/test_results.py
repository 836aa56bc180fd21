"""The one reader of results datasets: documented types, optional columns, flat lists, pandas."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.jobstate import claim_output
from pipelines.results import ResultsSchemaError, read_results, results_files
from pipelines.schema import FrameRef, column_array, error_table, predictions_table, results_schema
from tests.pipelines.test_schema import fake_predictions


def _written(tmp_path, name="res") -> tuple[str, pa.Table]:
    schema = results_schema(11, with_age=True)
    table = pa.concat_tables([
        predictions_table(fake_predictions(), [FrameRef("/v.mp4", 0, 0.0), FrameRef("/v.mp4", 1, 0.1)], schema),
        error_table([FrameRef("/bad.jpg")], ["cannot decode"], schema)])
    (tmp_path / name).mkdir()
    pq.write_table(table, tmp_path / name / "part-0.parquet")
    return str(tmp_path / name), table


def test_optional_columns_may_be_absent(tmp_path):
    root, table = _written(tmp_path)
    bare = table.drop_columns(["error", "timestamp", "track_id", "age_class"])
    pq.write_table(bare, tmp_path / "res" / "part-0.parquet")
    read = read_results(root, ["source", "frame", "person", "joints", "track_id", "timestamp", "error"])
    assert read.column("track_id").null_count == read.column("error").null_count == read.num_rows == 4
    assert read.schema.field("timestamp").type == pa.float64()
    everything = read_results(root)
    assert {"timestamp", "track_id", "error"} <= set(everything.column_names)


def test_missing_required_column_is_named(tmp_path):
    root, table = _written(tmp_path)
    pq.write_table(table.drop_columns(["joints"]), tmp_path / "res" / "part-0.parquet")
    with pytest.raises(ResultsSchemaError, match=r"part-0.parquet: missing required column 'joints'"):
        read_results(root, ["source", "joints"])


def test_flat_lists_and_wider_types_read_as_documented(tmp_path):
    root, table = _written(tmp_path)
    good = table.filter(table.column("error").is_null())
    joints = column_array(good, "joints").astype(np.float64)
    flat = pa.table({"source": good.column("source"), "frame": pa.array([0, 1, 1], pa.int32()),
                     "person": pa.array([0, 0, 1], pa.int64()), "joints": pa.array(list(joints.reshape(3, -1))),
                     "smpl_betas": pa.array(list(column_array(good, "smpl_betas").astype(np.float64))),
                     "pj2d_org": pa.array([list(map(list, p)) for p in column_array(good, "pj2d_org")])})
    pq.write_table(flat, tmp_path / "res" / "part-0.parquet")
    read = read_results(root, ["source", "frame", "person", "joints", "smpl_betas", "pj2d_org"])
    assert read.schema.field("frame").type == pa.int64() and read.schema.field("person").type == pa.int32()
    assert str(read.schema.field("joints").type) == str(results_schema(11).field("joints").type)
    assert read.schema.field("smpl_betas").type.list_size == 11
    np.testing.assert_array_equal(column_array(read, "joints"), joints.astype(np.float32))
    np.testing.assert_array_equal(column_array(read, "pj2d_org"), column_array(good, "pj2d_org"))
    wrong = flat.set_column(3, "joints", pa.array([[1.0] * 5] * 3))
    pq.write_table(wrong, tmp_path / "res" / "part-0.parquet")
    with pytest.raises(ResultsSchemaError, match="'joints' should hold 71 x 3 numbers"):
        read_results(root, ["joints"])


def test_pandas_gets_nullable_integers_and_shaped_cells(tmp_path):
    root, table = _written(tmp_path)
    frame = read_results(root, pandas=True)
    assert str(frame["person"].dtype) == "Int32" and str(frame["track_id"].dtype) == "Int64"
    assert frame["person"].tolist()[:3] == [0, 0, 1] and frame["person"].isna().tolist() == [False] * 3 + [True]
    assert frame["joints"][0].shape == (71, 3) and frame["error"].notna().sum() == 1
    good = frame[frame["error"].isna()]
    expected = column_array(table.filter(table.column("error").is_null()), "joints")
    np.testing.assert_array_equal(column_array(good, "joints"), expected)  # a pandas frame
    np.testing.assert_array_equal(column_array(good["joints"]), expected)  # a pandas column
    plain = pd.read_parquet(root)  # what pandas itself gives: nested object arrays
    np.testing.assert_array_equal(column_array(plain[plain["error"].isna()], "joints"), expected)


def test_a_job_file_limits_the_dataset_to_its_units(tmp_path):
    root, _ = _written(tmp_path)
    (tmp_path / "res" / "part-0.parquet").rename(tmp_path / "part-0.parquet")
    ledger = claim_output(root, "infer", {})
    ledger.declare(units={"mine.parquet": {}})
    (tmp_path / "part-0.parquet").rename(tmp_path / "res" / "mine.parquet")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "res" / "theirs.parquet")
    assert [f.rsplit("/", 1)[-1] for f in results_files(root)] == ["mine.parquet"]
    assert read_results(root, ["source"]).num_rows == 4
