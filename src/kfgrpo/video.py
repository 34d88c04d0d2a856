"""Video helpers shared by the stages: PyAV probing, the uniform frame rule, and pixel budgets shared with the
processor. Decoding itself happens in one streaming pass in ``kfgrpo.tad.select``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import av
import numpy as np


class VideoError(RuntimeError):
    """A video that cannot be used: missing, unreadable, without a video stream, or too short."""


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    duration: float  # seconds
    width: int
    height: int


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame count, fps, duration and size of the first video stream (from the container header)."""
    if not os.path.exists(path):
        raise VideoError(f"file not found: {path}")
    if os.path.getsize(path) == 0:
        raise VideoError(f"empty file: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"no video stream (audio-only or not a video): {path}")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
            if not duration and container.duration:
                duration = container.duration / av.time_base
            num_frames = int(stream.frames) or int(round(duration * fps))
            return VideoInfo(num_frames, fps, duration, stream.codec_context.width, stream.codec_context.height)
    except av.error.FFmpegError as exc:
        raise VideoError(f"cannot open video ({type(exc).__name__}: {exc}): {path}") from exc


def fit_to_patches(
    height: int, width: int, factor: int = 28, min_pixels: int = 28 * 28, max_pixels: int = 128 * 28 * 28
) -> tuple[int, int]:
    """(height, width) rounded to multiples of ``factor`` within ``[min_pixels, max_pixels]``.

    This is the rule of the Qwen-VL processors' ``smart_resize``: frames already at that size pass through the HF
    processor and vLLM unchanged, so both tokenise them to the same number of visual tokens. It is restated here
    because importing it from transformers costs ~200 MiB and seconds in the frame stage, which needs nothing else
    from transformers; ``tests/test_video.py`` checks it against transformers' function.
    """
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be < 200, got {max(height, width) / min(height, width)}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def uniform_indices(num_frames: int, k: int) -> list[int]:
    """qwen-vl-utils' uniform sampling: ``round(linspace(0, n - 1, k))``, de-duplicated, chronological."""
    if num_frames <= 0 or k <= 0:
        return []
    return sorted({int(round(x)) for x in np.linspace(0, num_frames - 1, min(k, num_frames))})
