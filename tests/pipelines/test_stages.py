"""The inference stages on plain batch dicts, without Ray: what they yield and that rows equal the Predictor's."""

import cv2
import numpy as np
import pytest

from core.predictor import ImagePreparer, Predictor
from core.settings import PredictorSettings
from jobs.synthetic import draw_scene, write_video
from pipelines.inference import CommitResults, unit_of
from pipelines.schema import column_array, results_schema
from pipelines.skeleton import unit_batch
from pipelines.stages import predict_frames, read_frames
from pipelines.units import WorkUnit
from pipelines.video import probe_video


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    cv2.imwrite(str(root / "a.jpg"), draw_scene(90, 160, 2, seed=1))
    cv2.imwrite(str(root / "b.png"), draw_scene(120, 80, 1, seed=2))
    (root / "bad.jpg").write_bytes(b"not an image")
    write_video(root / "v.mp4", [draw_scene(64, 80, 1, seed=10 + i) for i in range(4)], fps=8)
    return root


@pytest.fixture(scope="module")
def predictor(romp_net, body_models):
    return Predictor(romp_net, body_models, PredictorSettings(device="cpu"))


def _read(unit: WorkUnit, size: int = 8) -> list[dict]:
    return list(read_frames(unit_batch(unit_of(unit)), ImagePreparer("romp"), frames_per_batch=size))


def test_read_frames_yields_exactly_the_units_frames(corpus):
    images = WorkUnit("images", tuple(str(corpus / n) for n in ("a.jpg", "bad.jpg", "b.png")), 0, 3)
    batches = _read(images, size=2)
    rows = {k: np.concatenate([b[k] for b in batches]) for k in ("item", "source", "error", "height")}
    assert rows["item"].tolist() == [0, 1, 2] and rows["height"].tolist() == [90, 0, 120]
    assert "cannot decode image" in rows["error"][1] and rows["error"][0] == rows["error"][2] == ""
    good = [b for b in batches if b["views"].shape[1]]
    assert all(b["views"].dtype == np.uint8 and b["views"].shape[2:] == (512, 512, 3) for b in good)
    info = probe_video(str(corpus / "v.mp4"))  # a chunk reaching past the frames that decode (truncated)
    cut = WorkUnit("video", (str(corpus / "v.mp4"),), 2, info.frames + 2, info.fps, info.frames + 2)
    batches = _read(cut)
    frames, errors = (np.concatenate([b[k] for b in batches]) for k in ("frame", "error"))
    assert frames.tolist() == list(range(2, info.frames + 2))  # one row per frame of the chunk
    assert (errors[:2] == "").all() and all("v.mp4" in e for e in errors[2:])


def test_predict_frames_equals_the_predictor(corpus, predictor):
    names = ("a.jpg", "b.png")
    unit = WorkUnit("images", tuple(str(corpus / n) for n in (*names, "bad.jpg")), 0, 3)
    batches = _read(unit, size=1)
    out = [predict_frames(b, predictor) for b in batches]
    rows = {k: np.concatenate([o[k] for o in out]) for k in out[0]}
    for i, name in enumerate(names):
        expected = predictor.predict([cv2.imread(str(corpus / name))])
        mine = rows["item"] == i
        assert mine.sum() == len(expected) and rows["person"][mine].tolist() == list(range(len(expected)))
        for column in ("joints", "cam_trans", "smpl_thetas", "pj2d_org"):
            np.testing.assert_allclose(rows[column][mine], getattr(expected, column), atol=1e-5)
    failed = rows["item"] == 2
    assert failed.sum() == 1 and rows["person"][failed][0] == -1 and "bad.jpg" in rows["error"][failed][0]
    assert all(b["unit"][0] == unit.name for b in batches)
    schema = results_schema(10)
    committed = CommitResults(schema, "romp")(unit_of(unit), rows)
    assert committed.rows == int((rows["person"] >= 0).sum()) and committed.error_rows == 1
    assert committed.failed == ((str(corpus / "bad.jpg"), rows["error"][failed][0]),)


def test_results_table_is_the_documented_schema(corpus, predictor):
    from pipelines.schema import results_table

    unit = WorkUnit("images", (str(corpus / "a.jpg"), str(corpus / "bad.jpg")), 0, 2)
    out = [predict_frames(b, predictor) for b in _read(unit)]
    rows = {k: np.concatenate([o[k] for o in out]) for k in out[0]}
    table = results_table(rows, results_schema(10), "romp")
    assert table.schema == results_schema(10)
    good = table.filter(table.column("error").is_null())
    assert good.column("model").to_pylist() == ["romp"] * good.num_rows
    bad = table.filter(table.column("error").is_valid())
    assert bad.column("person").null_count == 1 and bad.column("timestamp").null_count == 1
    assert bad.column("joints").combine_chunks().flatten().flatten().null_count == 71 * 3  # lists of nulls
    np.testing.assert_allclose(column_array(good, "joints"), rows["joints"][rows["person"] >= 0])


def test_predict_frames_takes_ragged_views_as_ray_batches_them(tmp_path, bev_net, body_models):
    """BEV in crowd mode cuts a long image into several views: a batch that mixes it with a normal
    image holds ragged views (object arrays), as Ray Data gives them; rows equal the Predictor's."""
    predictor = Predictor(bev_net, body_models, PredictorSettings(device="cpu", crowd=True))
    images = {"wide.jpg": draw_scene(80, 180, 3, seed=5), "square.jpg": draw_scene(100, 100, 2, seed=6)}
    for name, image in images.items():
        cv2.imwrite(str(tmp_path / name), image)
    unit = WorkUnit("images", tuple(str(tmp_path / n) for n in images), 0, 2)
    batches = list(read_frames(unit_batch(unit_of(unit)), predictor.prepare_image))
    views = [b["views"].shape[1] for b in batches]
    assert views[0] > 1 and views[1] == 1  # a long image: one view per crop, so separate batches
    ragged = {k: np.concatenate([b[k] for b in batches]) for k in batches[0] if k not in ("views", "offsets", "crop")}
    for key in ("views", "offsets", "crop"):
        ragged[key] = np.empty(2, dtype=object)
        for j, batch in enumerate(batches):
            ragged[key][j] = batch[key][0]
    rows = predict_frames(ragged, predictor)
    for i, name in enumerate(images):
        expected = predictor.predict([cv2.imread(str(tmp_path / name))])
        mine = rows["item"] == i
        assert mine.sum() == len(expected)
        np.testing.assert_allclose(rows["joints"][mine], expected.joints, atol=1e-5)
