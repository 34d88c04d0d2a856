"""The TAD cache stage: manifest rows → keyframes → a Hugging Face dataset that training reads without decoding video.

``build_tad_cache(CacheArgs(manifest, output, ...), tad_config)`` writes a dataset that ``load_tad_dataset(output)``
reads: one row per usable manifest row, every manifest field passed through, plus ``images`` (``List(Image())``,
chronological), ``timestamps``, ``frame_indices``, ``saliency``, ``is_apex``, ``distractor_images`` and
``distractor_timestamps`` / ``distractor_saliency`` (the lowest-saliency candidates, for content probes) and
``short_video`` (True when the video had fewer decodable frames than K: the row then holds all of them). The TAD
configuration is recorded in the dataset info (``description``, JSON) and in ``tad_config.json``.

Frames are stored once per video (``frame_table``, the default): ``output/`` holds the question rows (text and the TAD
numbers, a ``frames_key`` per row; ``datasets.load_from_disk(output)`` reads them without any frame) and
``output/frames/`` one row per video selection (``frames_key``, ``images``, ``distractor_images``).
``load_tad_dataset`` joins the two lazily with a ``datasets`` transform, so every row it returns is an ordinary TRL
GRPO row and a frame is decoded only when its row is read. Why not the alternatives: ``datasets`` has no join, an
Arrow dictionary column is not kept by ``datasets``' features, and ``Image`` paths to JPEG files would put millions of
small files on a cluster's shared filesystem. With ``frame_table: false`` every row carries its own frames (the
self-contained layout of earlier versions, which ``load_tad_dataset`` and ``datasets.load_from_disk`` read as is).

Bad input never stops the stage: a row whose manifest line is malformed or lacks fields, or whose video is missing,
empty, truncated, not a video, audio-only or too short, goes to ``errors.jsonl`` (``id`` if known, ``line``,
``reason``) and is skipped. The work is split into shards of ``shard_size`` manifest lines; each finished shard is
committed atomically under ``output/.kfgrpo-cache/``, so rerunning the same command after a crash (even ``kill -9``)
skips finished shards and yields the same dataset as an uninterrupted run.
"""

from .args import STATE_DIR, CacheArgs, provenance
from .build import build_tad_cache, plot_samples
from .rows import (
    FRAME_COLUMNS,
    IMAGE_FORMATS,
    FrameJoin,
    encode_frames,
    frame_join_of,
    frames_key,
    join_frames,
    load_tad_dataset,
    map_text,
    selection_images,
    selection_numbers,
)

__all__ = [
    "FRAME_COLUMNS",
    "IMAGE_FORMATS",
    "STATE_DIR",
    "CacheArgs",
    "FrameJoin",
    "build_tad_cache",
    "encode_frames",
    "frame_join_of",
    "frames_key",
    "join_frames",
    "load_tad_dataset",
    "map_text",
    "plot_samples",
    "provenance",
    "selection_images",
    "selection_numbers",
]
