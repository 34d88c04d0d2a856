import hashlib
import json

import av
import numpy as np
import pytest

from kfgrpo.chronosynth import FAMILIES, LETTERS, SynthConfig, answer_from_frames, generate
from kfgrpo.rewards.accuracy import interval_iou


def _rows(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _decode(path):
    frames, ts = [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            ts.append(float(f.pts * f.time_base))
    return frames, ts


def test_manifest_schema(synth_train):
    rows = _rows(synth_train)
    assert len(rows) == 6 * len(FAMILIES)  # every video here has >= 2 objects, so all families apply
    types = {
        "order": "multiple_choice",
        "count": "numerical",
        "succession": "multiple_choice",
        "grounding": "temporal_grounding",
    }
    for r in rows:
        for key in ("id", "video", "problem", "options", "solution", "problem_type", "event_timestamps"):
            assert key in r
        assert (synth_train / r["video"]).exists()
        assert r["problem_type"] == types[r["family"]]
        assert r["event_timestamps"] == sorted(r["event_timestamps"]) and len(r["event_timestamps"]) >= 2
        if r["problem_type"] == "multiple_choice":
            assert [o[:3] for o in r["options"]] == [f"{LETTERS[i]}. " for i in range(4)]
            assert r["solution"] in LETTERS[:4]
            colors = [o[3:].split(" ")[0] for o in r["options"]]
            assert len(set(colors)) == len(colors)  # option colours are distinct
        else:
            assert r["options"] == []
    assert len({r["id"] for r in rows}) == len(rows)
    assert (synth_train / "videos").is_dir() and len(list((synth_train / "videos").glob("*.mp4"))) == 6


def test_h264_mp4(synth_train):
    with av.open(str(synth_train / "videos" / "cs0-00000.mp4")) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and (s.width, s.height) == (160, 120)


def _decoded_digest(path) -> bytes:
    digest = hashlib.sha256()
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            digest.update(frame.to_ndarray(format="rgb24").tobytes())
    return digest.digest()


def test_deterministic_and_held_out_by_seed(tmp_path, synth_train):
    a = generate(tmp_path / "a", num_videos=6, seed=0, progress=False)
    generate(tmp_path / "b", num_videos=2, seed=1, progress=False)
    assert a.read_text() == (synth_train / "manifest.jsonl").read_text()
    # The pictures, not the bytes: with vLLM's CPU build installed beside it (`make test-vllm`), x264 sometimes writes
    # another, equivalent bitstream for the same frames (same decoded pixels, same size); the data is the pixels.
    for v in (tmp_path / "a" / "videos").glob("*.mp4"):
        assert _decoded_digest(v) == _decoded_digest(synth_train / "videos" / v.name), v.name
    held_out = _rows(tmp_path / "b")
    assert not {r["id"] for r in held_out} & {r["id"] for r in _rows(synth_train)}
    assert [r["event_timestamps"] for r in held_out] != [r["event_timestamps"] for r in _rows(synth_train)[:8]]


def test_answers_are_recoverable_from_the_frames(synth_train):
    for r in _rows(synth_train):
        frames, ts = _decode(synth_train / r["video"])
        got = answer_from_frames(frames, ts, r)
        if r["problem_type"] == "temporal_grounding":
            assert interval_iou(got, r["solution"]) > 0.9, (r["id"], got, r["solution"])
        else:
            assert got == r["solution"], (r["id"], got, r["solution"])


def test_answers_change_when_frames_are_reversed(synth_train):
    """Order and succession questions depend on frame order."""
    for r in _rows(synth_train):
        if r["family"] not in ("order", "succession"):
            continue
        frames, ts = _decode(synth_train / r["video"])
        assert answer_from_frames(frames[::-1], ts[::-1], r) != r["solution"], r["id"]


def test_answers_change_when_event_frames_are_removed(synth_train):
    """Count questions depend on frame content: drop the frames where the last object is visible."""
    for r in _rows(synth_train):
        if r["family"] != "count":
            continue
        frames, ts = _decode(synth_train / r["video"])
        last = r["events"][-1]
        keep = [i for i, t in enumerate(ts) if not (last["start"] - 1e-6 <= t <= last["end"] + 1e-6)]
        got = answer_from_frames([frames[i] for i in keep], [ts[i] for i in keep], r)
        assert got == str(int(r["solution"]) - 1), r["id"]


def test_families_and_validation(tmp_path):
    m = generate(tmp_path, num_videos=2, seed=5, config=SynthConfig(families=["count"]), progress=False)
    assert {json.loads(x)["family"] for x in m.read_text().splitlines()} == {"count"}
    with pytest.raises(ValueError, match="unknown question families"):
        SynthConfig(families=["colour"])
    with pytest.raises(ValueError, match="even"):
        SynthConfig(width=161)


def test_calm_stretches_and_scene_cuts(tmp_path):
    m = generate(tmp_path, num_videos=8, seed=2, progress=False)
    rows = {json.loads(x)["video"]: json.loads(x) for x in m.read_text().splitlines()}
    assert any(r["scene_cuts"] for r in rows.values())
    for video, r in rows.items():
        frames, ts = _decode(tmp_path / video)
        for cut in r["scene_cuts"]:
            i = int(np.argmin(np.abs(np.asarray(ts) - cut)))
            jump = np.abs(frames[i].astype(int) - frames[i - 1].astype(int)).mean()
            assert jump > 5  # a hard cut: the whole background changes
            for e in r["events"]:  # cuts never coincide with events
                assert not (e["start"] <= cut <= e["end"])


def test_answer_position_shortcut(tmp_path, synth_train):
    """The cue moves the answer to `shortcut_letter` only; the answer still comes from the pixels, and a config
    without the cue generates exactly the default split (no extra random draws)."""
    cfg = SynthConfig(families=["order"], shortcut="answer_position", shortcut_strength=1.0)
    rows = _rows(generate(tmp_path / "cue", num_videos=4, seed=0, config=cfg, progress=False).parent)
    assert rows and {r["solution"] for r in rows} == {"A"}
    plain = {r["id"]: r for r in _rows(synth_train)}
    for r in rows:
        frames, ts = _decode(tmp_path / "cue" / r["video"])
        assert answer_from_frames(frames, ts, r) == "A", r["id"]
        # Same question and the same set of options as without the cue; only their order differs.
        p = plain[r["id"]]
        assert r["problem"] == p["problem"] and sorted(o[3:] for o in r["options"]) == sorted(
            o[3:] for o in p["options"]
        )
        assert r["options"][0][3:] == p["options"][LETTERS.index(p["solution"])][3:]
    none = generate(tmp_path / "none", num_videos=6, seed=0, config=SynthConfig(shortcut="none"), progress=False)
    assert none.read_text() == (synth_train / "manifest.jsonl").read_text()


def test_option_length_shortcut(tmp_path, synth_train):
    """The cue lengthens one option, the right one with probability `shortcut_strength`; the order and the answer
    stay those of the split without the cue."""
    cfg = SynthConfig(families=["order"], shortcut="option_length", shortcut_strength=1.0)
    rows = _rows(generate(tmp_path / "cue", num_videos=4, seed=0, config=cfg, progress=False).parent)
    plain = {r["id"]: r for r in _rows(synth_train)}
    assert rows
    for r in rows:
        longest = max(r["options"], key=len)
        assert longest[0] == r["solution"] and longest.endswith(cfg.shortcut_filler)
        assert sum(o.endswith(cfg.shortcut_filler) for o in r["options"]) == 1
        p = plain[r["id"]]
        assert r["solution"] == p["solution"]
        assert [o.removesuffix(" " + cfg.shortcut_filler) for o in r["options"]] == p["options"]
    weak = SynthConfig(families=["order"], shortcut="option_length", shortcut_strength=0.0, max_objects=2)
    rows = _rows(generate(tmp_path / "weak", num_videos=10, seed=0, config=weak, progress=False).parent)
    assert all(max(r["options"], key=len)[0] != r["solution"] for r in rows)


def test_shortcut_strength_sets_the_cue_rate(tmp_path):
    cfg = SynthConfig(families=["order"], shortcut="answer_position", shortcut_strength=0.5, shortcut_letter="C",
                      max_objects=2, width=32, height=24)  # fmt: skip
    rows = _rows(generate(tmp_path, num_videos=80, seed=3, config=cfg, progress=False).parent)
    share = sum(r["solution"] == "C" for r in rows) / len(rows)
    assert 0.35 < share < 0.65  # 0.5 expected; 80 draws
    assert {r["solution"] for r in rows} > {"C"}  # the other letters still occur
    with pytest.raises(ValueError, match="unknown shortcut"):
        SynthConfig(shortcut="wording")
    with pytest.raises(ValueError, match="shortcut_strength"):
        SynthConfig(shortcut_strength=1.5)
    with pytest.raises(ValueError, match="shortcut_letter"):
        SynthConfig(shortcut_letter="E")
