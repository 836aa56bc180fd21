import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from core.predictor import Predictions
from pipelines.schema import (
    FrameRef,
    column_array,
    error_table,
    predictions_table,
    read_metadata,
    results_schema,
    with_metadata,
)


def fake_predictions(n=3, betas=11, verts=False):
    rng = np.random.default_rng(0)
    f32 = np.float32
    return Predictions(
        model="bev", image_index=np.array([0, 1, 1][:n]), person=np.array([0, 0, 1][:n], np.int32),
        center_conf=rng.random(n).astype(f32), cam=rng.random((n, 3)).astype(f32),
        cam_trans=rng.random((n, 3)).astype(f32), smpl_thetas=rng.random((n, 72)).astype(f32),
        smpl_betas=rng.random((n, betas)).astype(f32), joints=rng.random((n, 71, 3)).astype(f32),
        pj2d_org=rng.random((n, 71, 2)).astype(f32), image_hw=np.array([[10, 20], [30, 40]]),
        verts=rng.random((n, 6890, 3)).astype(f32) if verts else None,
        age_class=np.array([0, 3, -1][:n], np.int8),
    )


def test_types_are_nested_fixed_size_lists():
    schema = results_schema(11, with_verts=True, with_age=True)
    assert str(schema.field("joints").type) == "fixed_size_list<item: fixed_size_list<item: float>[3]>[71]"
    assert str(schema.field("smpl_betas").type) == "fixed_size_list<item: float>[11]"
    assert schema.field("verts").type.list_size == 6890
    for name in ("source", "frame", "person", "track_id", "model", "center_conf", "cam", "cam_trans",
                 "smpl_thetas", "smpl_betas", "joints", "pj2d_org", "image_height", "image_width", "error"):
        assert name in schema.names


def test_round_trip_through_parquet_pandas_and_dataset(tmp_path):
    pred = fake_predictions(verts=True)
    schema = with_metadata(results_schema(11, with_verts=True, with_age=True), {"model": "bev", "x": [1]})
    frames = [FrameRef("a.jpg"), FrameRef("v.mp4", 7, 0.29)]
    table = predictions_table(pred, frames, schema)
    pq.write_table(table, tmp_path / "part-00000.parquet")
    back = ds.dataset(tmp_path).to_table()
    assert back.column("source").to_pylist() == ["a.jpg", "v.mp4", "v.mp4"]
    assert back.column("frame").to_pylist() == [0, 7, 7]
    assert back.column("image_height").to_pylist() == [10, 30, 30]
    assert back.column("track_id").null_count == 3
    for name in ("cam", "smpl_thetas", "joints", "pj2d_org", "verts"):
        np.testing.assert_array_equal(column_array(back, name), getattr(pred, name))
    assert read_metadata(pq.read_schema(tmp_path / "part-00000.parquet")) == {"model": "bev", "x": [1]}
    frame = pd.read_parquet(tmp_path)
    assert np.stack(frame["joints"].iloc[0]).shape == (71, 3)


def test_flat_lists_are_accepted():
    table = pa.table({"cam": pa.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], pa.list_(pa.float32()))})
    np.testing.assert_array_equal(column_array(table, "cam"), [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(column_array(table, "cam", (3, 1))[:, :, 0], [[1, 2, 3], [4, 5, 6]])


def test_error_rows_and_null_guard():
    schema = results_schema(10)
    table = error_table([FrameRef("bad.jpg")], ["bad.jpg: cannot decode image"], schema)
    assert table.num_rows == 1 and table.column("error").to_pylist() == ["bad.jpg: cannot decode image"]
    assert table.column("joints").combine_chunks().flatten().flatten().null_count == 71 * 3
    assert np.isnan(column_array(table, "joints")).all()
    with pytest.raises(ValueError, match="drop error rows"):
        column_array(pa.table({"joints": pa.nulls(1, schema.field("joints").type)}), "joints")


def test_error_rows_survive_parquet(tmp_path):
    schema = results_schema(11, with_age=True)
    good = predictions_table(fake_predictions(), [FrameRef("a.jpg"), FrameRef("b.jpg")], schema)
    bad = error_table([FrameRef("c.jpg")], ["c.jpg: cannot decode image"], schema)
    pq.write_table(pa.concat_tables([good, bad]), tmp_path / "p.parquet")
    back = pq.read_table(tmp_path / "p.parquet")
    assert back.num_rows == 4 and back.column("error").to_pylist()[-1] == "c.jpg: cannot decode image"
    assert pd.read_parquet(tmp_path / "p.parquet")["error"].notna().sum() == 1


def test_frame_count_must_match():
    with pytest.raises(ValueError, match="frame refs"):
        predictions_table(fake_predictions(), [FrameRef("a")], results_schema(11, with_age=True))
