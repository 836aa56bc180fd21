import pytest

from jobs.synthetic import draw_scene, write_video
from pipelines.readers import InputError, expand_inputs, read_image
from pipelines.video import iter_video_frames, probe_video


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    import cv2

    root = tmp_path_factory.mktemp("corpus")
    cv2.imwrite(str(root / "b.png"), draw_scene(40, 60, 1))
    cv2.imwrite(str(root / "a.jpg"), draw_scene(50, 30, 1))
    (root / "notes.md").write_text("skip me")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    write_video(root / "clip.mp4", [draw_scene(48, 64, 1, seed=i) for i in range(6)], fps=12)
    write_video(root / "clip.avi", [draw_scene(48, 64, 1, seed=i) for i in range(4)], fps=10)
    data = (root / "clip.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(data[: len(data) // 2])
    return root


def test_expand_folder_glob_and_files(corpus):
    items = expand_inputs([str(corpus)])
    assert [(i.uri.rsplit("/", 1)[1], i.kind) for i in items] == [
        ("a.jpg", "image"), ("b.png", "image"), ("broken.jpg", "image"),
        ("clip.avi", "video"), ("clip.mp4", "video"), ("cut.mp4", "video")]
    assert [i.uri.rsplit("/", 1)[1] for i in expand_inputs([str(corpus / "*.png")])] == ["b.png"]
    with pytest.raises(InputError, match="notes.md: not an image, video or manifest"):
        expand_inputs([str(corpus / "notes.md")])
    with pytest.raises(InputError, match="glob matches no"):
        expand_inputs([str(corpus / "*.gif")])


def test_images(corpus):
    assert read_image(str(corpus / "a.jpg")).shape == (50, 30, 3)
    with pytest.raises(InputError, match="broken.jpg: cannot decode"):
        read_image(str(corpus / "broken.jpg"))
    with pytest.raises(InputError, match="missing.jpg: cannot read"):
        read_image(str(corpus / "missing.jpg"))


@pytest.mark.parametrize("name,count,fps", [("clip.mp4", 6, 12.0), ("clip.avi", 4, 10.0)])
def test_video_frames_and_timestamps(corpus, name, count, fps):
    info = probe_video(str(corpus / name))
    assert (info.frames, info.height, info.width) == (count, 48, 64)
    frames = list(iter_video_frames(str(corpus / name)))
    assert [f.index for f in frames] == list(range(count))
    assert all(f.image is not None and f.image.shape == (48, 64, 3) for f in frames)
    assert frames[2].timestamp == pytest.approx(2 / fps)
    part = list(iter_video_frames(str(corpus / name), start=1, stop=3))
    assert [f.index for f in part] == [1, 2]


def test_truncated_video_yields_an_error_frame(corpus):
    try:
        frames = list(iter_video_frames(str(corpus / "cut.mp4")))
    except InputError as err:  # the container index itself may be gone
        assert "cut.mp4" in str(err)
        return
    assert frames[-1].image is None and "cut.mp4" in frames[-1].error
    assert all(f.image is not None for f in frames[:-1])


def test_missing_video():
    with pytest.raises(InputError, match="video not found"):
        probe_video("/nonexistent/v.mp4")


def test_manifests(tmp_path, corpus):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "list.txt").write_text(f"# corpus\n{corpus / 'a.jpg'}\n\nclip.avi\n")
    (corpus / "rel.txt").write_text("clip.avi\nb.png\n")
    (tmp_path / "list.csv").write_text(f"uri,label\n{corpus / 'b.png'},x\n{corpus / 'missing.jpg'},y\n")
    pq.write_table(pa.table({"uri": [str(corpus / "clip.mp4")]}), tmp_path / "list.parquet")
    txt = expand_inputs([str(tmp_path / "list.txt")])
    assert [(i.uri.rsplit("/", 1)[1], i.kind) for i in txt] == [("a.jpg", "image"), ("clip.avi", "missing")]
    rel = expand_inputs([str(corpus / "rel.txt")])
    assert [(i.uri, i.kind) for i in rel] == [(str(corpus / "clip.avi"), "video"), (str(corpus / "b.png"), "image")]
    csv_items = expand_inputs([str(tmp_path / "list.csv")])
    assert [i.kind for i in csv_items] == ["image", "missing"] and "not found" in csv_items[1].error
    assert [i.kind for i in expand_inputs([str(tmp_path / "list.parquet")])] == ["video"]


def test_text_manifest_rule(tmp_path, corpus):
    """A .txt is a manifest when its lines are paths and one names an image or video; a listed path with
    another extension is an error row; prose or a missing path is refused, naming the file."""
    (tmp_path / "mixed.txt").write_text(f"{corpus / 'a.jpg'}\n{corpus / 'notes.doc'}\n")
    items = expand_inputs([str(tmp_path / "mixed.txt")])
    assert [i.kind for i in items] == ["image", "missing"]
    assert "notes.doc: not an image or video (listed in" in items[1].error
    (tmp_path / "prose.txt").write_text(f"{corpus / 'a.jpg'}\nThese are the frames we kept.\n")
    with pytest.raises(InputError, match=r"prose.txt: not a manifest \(the line 'These are"):
        expand_inputs([str(tmp_path / "prose.txt")])
    (tmp_path / "ids.txt").write_text("id001\nid002\n")
    with pytest.raises(InputError, match="ids.txt: not a manifest .no line names an image or video"):
        expand_inputs([str(tmp_path / "ids.txt")])
    with pytest.raises(InputError, match="gone.txt: does not exist"):
        expand_inputs([str(tmp_path / "gone.txt")])
    with pytest.raises(InputError, match="no_such_folder: does not exist"):
        expand_inputs([str(tmp_path / "no_such_folder")])


def test_missing_file_is_an_item_not_a_crash(corpus):
    (item,) = expand_inputs([str(corpus / "gone.jpg")])
    assert item.kind == "missing" and "gone.jpg: not found" in item.error
