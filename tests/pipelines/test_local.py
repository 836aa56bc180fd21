import cv2
import numpy as np
import pyarrow.dataset as ds
import pytest

from core.predictor import Predictor
from core.settings import PredictorSettings
from jobs.synthetic import draw_scene, write_video
from pipelines.local import run_local
from pipelines.readers import expand_inputs
from pipelines.schema import column_array, results_schema
from pipelines.writer import OutputExistsError, ResultsWriter


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("local_corpus")
    cv2.imwrite(str(root / "a.jpg"), draw_scene(120, 160, 2, seed=1))
    (root / "b.jpg").write_bytes(b"garbage")
    write_video(root / "c.mp4", [draw_scene(96, 128, 1, seed=i) for i in range(3)])
    return root


def test_local_run_writes_rows_and_error_rows(tmp_path, corpus, romp_net, body_models):
    predictor = Predictor(romp_net, body_models, PredictorSettings(device="cpu", batch_size=2))
    writer = ResultsWriter(tmp_path / "out", results_schema(10))
    summary = run_local(expand_inputs([str(corpus)]), predictor, writer, batch_size=2)
    table = ds.dataset(tmp_path / "out").to_table()
    assert summary.frames == 5 and summary.errors == 1 and summary.inputs == 3
    assert summary.persons == table.num_rows - 1
    errors = table.filter(table.column("error").is_valid())
    assert errors.column("source").to_pylist() == [str(corpus / "b.jpg")]
    good = table.filter(table.column("error").is_null())
    assert set(good.column("source").to_pylist()) == {str(corpus / "a.jpg"), str(corpus / "c.mp4")}
    video = good.filter(ds.field("source") == str(corpus / "c.mp4"))
    assert sorted(set(video.column("frame").to_pylist())) == [0, 1, 2]
    # the same frame predicted alone gives the same rows
    alone = predictor.predict([cv2.imread(str(corpus / "a.jpg"))])
    rows = good.filter(ds.field("source") == str(corpus / "a.jpg"))
    np.testing.assert_allclose(column_array(rows, "smpl_thetas"), alone.smpl_thetas, atol=1e-5)
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_writer_refuses_existing_output_unless_overwrite(tmp_path):
    schema = results_schema(10)
    first = ResultsWriter(tmp_path, schema)
    from pipelines.schema import FrameRef, error_table

    first.write(error_table([FrameRef("x")], ["boom"], schema))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        ResultsWriter(tmp_path, schema)
    again = ResultsWriter(tmp_path, schema, overwrite=True)
    assert not list(tmp_path.glob("part-*.parquet")) and again.parts == []
