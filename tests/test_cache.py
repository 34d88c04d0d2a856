import json

import datasets
import pytest
from PIL import Image

from kfgrpo.cache import CacheConfig, build_frame_cache


def test_round_trip(frame_cache, synth_train):
    ds = datasets.load_from_disk(str(frame_cache))
    n = len((synth_train / "manifest.jsonl").read_text().splitlines())
    assert len(ds) == n
    assert isinstance(ds.features["images"], datasets.List) and isinstance(
        ds.features["images"].feature, datasets.Image
    )
    row = ds[0]
    assert len(row["images"]) == 4 and all(isinstance(im, Image.Image) for im in row["images"])
    assert all(im.size[0] % 28 == 0 and im.size[1] % 28 == 0 for im in row["images"])
    assert row["timestamps"] == sorted(row["timestamps"]) and row["frame_indices"] == sorted(row["frame_indices"])
    for col in ("id", "problem", "options", "solution", "problem_type", "event_timestamps"):
        assert col in ds.column_names
    assert json.loads(ds.info.description)["kfgrpo_frames"]["num_frames"] == 4


def test_bad_rows_are_reported_and_skipped(tmp_path, synth_train):
    good = (synth_train / "manifest.jsonl").read_text().splitlines()[:2]
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video")
    base = dict(problem="q?", solution="A", problem_type="multiple_choice", options=["A. x"])
    lines = [
        json.loads(good[0]),
        "{not json",
        dict(id="no-video", problem="q", solution="A", problem_type="multiple_choice"),
        dict(base, id="missing", video="nope.mp4"),
        dict(base, id="empty", video="empty.mp4"),
        dict(base, id="text", video="text.mp4"),
        dict(base, id="bad-type", video="empty.mp4", problem_type="essay"),
        json.loads(good[1]),
    ]
    for row in (lines[0], lines[-1]):
        row["video"] = str(synth_train / row["video"])
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out"
    summary = build_frame_cache(manifest, out, CacheConfig(num_frames=2, max_pixels=56 * 56), progress=False)
    assert summary["kept"] == 2 and summary["failed"] == 6
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["line"] for e in errors] == [2, 3, 4, 5, 6, 7]
    assert [e["id"] for e in errors] == [None, None, "missing", "empty", "text", None]
    reasons = " | ".join(e["reason"] for e in errors)
    for word in ("malformed JSON", "missing fields: video", "not found", "empty file", "cannot open", "problem_type"):
        assert word in reasons
    assert len(datasets.load_from_disk(str(out))) == 2
    with pytest.raises(RuntimeError, match="6 of 8 rows failed"):
        build_frame_cache(manifest, tmp_path / "strict", CacheConfig(num_frames=2), strict=True, progress=False)
