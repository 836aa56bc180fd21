import numpy as np
import pyarrow as pa
import pytest

from core.predictor import Predictions
from eval.mot import FrameBoxes, clear_mot, hota
from eval.mot_format import format_mot, parse_mot, tracks_from_results
from pipelines.schema import FrameRef, column_array, predictions_table, results_schema
from pipelines.tracking import TrackingSettings, VideoTracker


def synthetic_video(frames=40, people=3, model="bev", seed=0, skip=(12, 13), fps=30.0):
    """Results rows of people walking across a 480x640 video (BEV cam = (s, y, x))."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(-0.6, 0.6, (people, 2))
    velocity = rng.uniform(-0.01, 0.01, (people, 2))
    depth = rng.uniform(3, 8, people)
    tables = []
    schema = results_schema(11 if model == "bev" else 10, with_age=model == "bev", with_tracking=True)
    for t in range(frames):
        if t in skip:
            continue  # frames where nobody was detected have no rows at all
        xy = start + velocity * t + rng.normal(0, 0.003, (people, 2))
        s = 1 / (depth * np.tan(np.radians(30)))
        cam = np.column_stack([s, xy[:, 1], xy[:, 0]]) if model == "bev" else np.column_stack([s, xy])
        trans = np.column_stack([xy[:, 0] * depth * np.tan(np.radians(30)), xy[:, 1] * depth * np.tan(np.radians(30)),
                                 depth])
        n = people
        pj2d = (np.stack([xy] * 71, 1) + rng.normal(0, 0.05, (n, 71, 2)) + 1) * 320 - np.array([0, 80])
        thetas = rng.normal(0, 0.3, (n, 72))
        thetas[:, 66:] = 0
        pred = Predictions(
            model=model, image_index=np.zeros(n, np.int64), person=np.arange(n, dtype=np.int32),
            center_conf=np.full(n, 0.5, np.float32), cam=cam.astype(np.float32), cam_trans=trans.astype(np.float32),
            smpl_thetas=thetas.astype(np.float32), smpl_betas=np.zeros((n, schema.field("smpl_betas").type.list_size),
                                                                       np.float32),
            joints=np.zeros((n, 71, 3), np.float32), pj2d_org=pj2d.astype(np.float32),
            image_hw=np.array([[480, 640]]), age_class=np.zeros(n, np.int8))
        tables.append(predictions_table(pred, [FrameRef("/data/walk.mp4", t, t / fps)], schema))
    return pa.concat_tables(tables)


def test_chunked_tracking_equals_unchunked():
    table = synthetic_video()
    whole = VideoTracker("bev", TrackingSettings()).process(table)
    tracker = VideoTracker("bev", TrackingSettings())
    frames = table.column("frame").to_numpy()
    parts = [tracker.process(table.filter(pa.array((frames >= a) & (frames < b))))
             for a, b in ((0, 10), (10, 25), (25, 40))]
    chunked = pa.concat_tables(parts)
    assert whole.column("track_id").to_pylist() == chunked.column("track_id").to_pylist()
    for name in ("smpl_thetas_smoothed", "cam_smoothed", "cam_trans_smoothed"):
        np.testing.assert_array_equal(column_array(whole, name), column_array(chunked, name))
    ids = np.array(whole.column("track_id").to_pylist(), dtype=float)
    assert np.isnan(ids[:3]).sum() == 0 and len(set(ids[~np.isnan(ids)])) == 3  # 3 people, 3 ids, no churn
    np.testing.assert_array_equal(column_array(whole, "smpl_thetas"), column_array(table, "smpl_thetas"))  # raw kept
    with pytest.raises(ValueError, match="frames must increase"):
        tracker.process(table)


@pytest.mark.parametrize("fps,same_id", [(60.0, True), (30.0, False)])
def test_lost_track_buffer_is_two_seconds_at_the_video_rate(fps, same_id):
    """Nobody is detected for 90 frames: 1.5 s at 60 fps (within the 2 s buffer: same id), 3 s at
    30 fps (a new id)."""
    table = VideoTracker("bev", TrackingSettings()).process(synthetic_video(150, people=1, skip=range(20, 110),
                                                                            fps=fps))
    ids = table.column("track_id").to_pylist()
    assert (ids[-1] == ids[5]) == same_id


def test_mot_metrics_hand_computed_id_switch():
    box = np.array([[10.0, 10, 50, 100]])
    gt = [FrameBoxes(np.array([1]), box)] * 4
    pred = [FrameBoxes(np.array([7]), box)] * 2 + [FrameBoxes(np.array([8]), box)] * 2
    h = hota(gt, pred)
    # DetA = 1; matches (1,7) = (1,8) = 2: AssA = (2*2/(4+2-2) + 2*2/(4+2-2)) / 4 = 0.5
    assert h["DetA"] == pytest.approx(1) and h["AssA"] == pytest.approx(0.5)
    assert h["HOTA"] == pytest.approx(np.sqrt(0.5)) and h["AssPr"] == pytest.approx(1) and h["AssRe"] == 0.5
    c = clear_mot(gt, pred)
    # one switch: MOTA = 1 - (0 + 0 + 1) / 4; IDF1 = 2 * 2 / (4 + 4)
    assert c["mota"] == pytest.approx(0.75) and c["idf1"] == pytest.approx(0.5) and c["num_switches"] == 1


def test_mot_metrics_equal_motmetrics_reference_on_a_larger_case(tmp_path, monkeypatch):
    import motmetrics as mm

    monkeypatch.setattr(np, "asfarray", lambda a, dtype=float: np.asarray(a, dtype=dtype), raising=False)
    rng = np.random.default_rng(1)
    gt_lines, pred_lines = [], []
    for t in range(1, 81):
        for ident in range(1, 6):
            x, y = 40 * ident + 2 * t, 100 + 10 * np.sin(t / 5 + ident)
            if rng.random() < 0.9:
                gt_lines.append(f"{t},{ident},{x:.2f},{y:.2f},40,90,1,1,1")
            if rng.random() < 0.85:
                pid = ident + (10 if t < 40 or ident != 2 else 20)
                pred_lines.append(f"{t},{pid},{x + rng.normal(0, 4):.2f},{y + rng.normal(0, 4):.2f},40,90,1,-1,-1,-1")
        if rng.random() < 0.2:
            pred_lines.append(f"{t},99,{rng.uniform(0, 400):.2f},300,40,90,1,-1,-1,-1")
    (tmp_path / "gt.txt").write_text("\n".join(gt_lines))
    (tmp_path / "pred.txt").write_text("\n".join(pred_lines))
    gt = parse_mot("\n".join(gt_lines), "s", "gt", ground_truth=True).aligned(80)
    pred = parse_mot("\n".join(pred_lines), "s", "pred", ground_truth=False).aligned(80)
    ours = clear_mot(gt, pred)
    acc = mm.utils.compare_to_groundtruth(mm.io.loadtxt(str(tmp_path / "gt.txt"), fmt="mot15-2D"),
                                          mm.io.loadtxt(str(tmp_path / "pred.txt"), fmt="mot15-2D"), "iou", distth=0.5)
    ref = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "idp", "idr", "num_switches",
                                                   "num_false_positives", "num_misses"], name="r").iloc[0]
    for key in ("mota", "idf1", "idp", "idr", "num_switches", "num_false_positives", "num_misses"):
        assert ours[key] == pytest.approx(float(ref[key])), key


def test_mot_export_round_trip_and_ignore_rules():
    table = VideoTracker("bev", TrackingSettings()).process(synthetic_video())
    (seq,) = tracks_from_results(table).values()
    assert seq.name == "walk" and min(seq.frames) == 1  # frame 0 -> MOT frame 1 (first-frame tracks are confirmed)
    back = parse_mot(format_mot(seq), "walk", "x", ground_truth=False)
    for frame, boxes in seq.frames.items():
        np.testing.assert_array_equal(back.frames[frame].ids, boxes.ids)
        np.testing.assert_allclose(back.frames[frame].boxes, boxes.boxes, atol=0.006)
    gt = parse_mot("1,1,0,0,10,10,1,1,1\n1,2,0,0,10,10,0,1,1\n1,3,0,0,10,10,1,8,1", "g", "g", ground_truth=True)
    assert gt.frames[1].ids.tolist() == [1]  # conf 0 = ignore region, class 8 = distractor
