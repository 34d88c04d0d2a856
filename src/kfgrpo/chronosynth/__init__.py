"""ChronoSynth: synthetic videos with pixel-recoverable temporal questions (order, count, succession, grounding),
the CPU demo's data. ``videos`` generates them and holds the pixel oracle; ``traces`` builds SFT reasoning traces."""

from .traces import frame_trace, keyframe_trace, tally_trace
from .videos import (
    COLORS,
    FAMILIES,
    LETTERS,
    SynthConfig,
    answer_from_frames,
    generate,
    render_frames,
    vocabulary_corpus,
    write_video,
)

__all__ = [
    "COLORS",
    "FAMILIES",
    "LETTERS",
    "SynthConfig",
    "answer_from_frames",
    "frame_trace",
    "generate",
    "keyframe_trace",
    "render_frames",
    "tally_trace",
    "vocabulary_corpus",
    "write_video",
]
