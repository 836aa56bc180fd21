import pytest

from jobs.synthetic import draw_scene, write_video
from pipelines.readers import InputItem
from pipelines.storage import TransientError, with_retries
from pipelines.units import WorkUnit, plan_units


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    return str(write_video(root / "v.mp4", [draw_scene(32, 32, 1, seed=i) for i in range(7)], fps=7))


def test_plan_groups_images_and_chunks_videos(video):
    items = [InputItem(f"/x/{i}.jpg", "image") for i in range(5)] + [InputItem(video, "video"),
             InputItem("/x/gone.jpg", "missing", "/x/gone.jpg: not found"), InputItem("/x/9.jpg", "image")]
    units = plan_units(items, images_per_unit=2, frames_per_chunk=3)
    assert [(u.kind, u.start, u.stop, len(u.uris)) for u in units] == [
        ("images", 0, 2, 2), ("images", 2, 4, 2), ("images", 4, 5, 1),
        ("video", 0, 3, 1), ("video", 3, 6, 1), ("video", 6, 7, 1),
        ("error", 0, 0, 1), ("images", 5, 6, 1)]
    assert units[3].fps == pytest.approx(7) and units[3].total_frames == 7
    assert sum(u.frames for u in units) == 5 + 7 + 1 + 1
    assert len({u.name for u in units}) == len(units)
    again = plan_units(items, images_per_unit=2, frames_per_chunk=3)
    assert [u.name for u in again] == [u.name for u in units]
    assert [u.name for u in plan_units(items, images_per_unit=3, frames_per_chunk=3)] != [u.name for u in units]
    assert WorkUnit.from_json(units[4].to_json()) == units[4]


def test_unreadable_video_becomes_error_unit(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    (unit,) = plan_units([InputItem(str(bad), "video")])
    assert unit.kind == "error" and "bad.mp4" in unit.error


def test_retries_transient_but_not_permanent_errors():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("throttled")
        return "ok"

    assert with_retries(flaky, "flaky", backoff_s=0.001) == "ok" and len(calls) == 3

    def missing():
        calls.append(1)
        raise FileNotFoundError("gone")

    calls.clear()
    with pytest.raises(FileNotFoundError):
        with_retries(missing, "missing", backoff_s=0.001)
    assert len(calls) == 1
    with pytest.raises(TransientError, match="down.*after 2 attempts") as raised:
        with_retries(lambda: (_ for _ in ()).throw(ConnectionError("down")), "down", attempts=2, backoff_s=0.001)
    assert isinstance(raised.value.__cause__, ConnectionError)
