"""The cache's row format: frames as ``datasets.Image`` storage, the TAD columns, and the per-video frame table joined
lazily to the question rows (``load_tad_dataset``), so a frame is decoded only when its row is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

IMAGE_FORMATS = ("jpeg", "png")


def encode_frames(frames, image_format: str = "png", quality: int = 95) -> list[dict]:
    """Frames as ``datasets.Image`` storage dicts (``{"bytes", "path"}``), encoded once here and never re-encoded."""
    import io

    out = []
    for frame in frames:
        buf = io.BytesIO()
        if image_format == "jpeg":
            frame.convert("RGB").save(buf, format="JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
        else:
            frame.save(buf, format="PNG")
        out.append({"bytes": buf.getvalue(), "path": None})
    return out


def selection_images(selection, image_format: str = "png", quality: int = 95) -> dict:
    """The encoded frames of a selection: ``images`` and ``distractor_images`` (``FRAME_COLUMNS``)."""
    return dict(
        images=encode_frames(selection.frames, image_format, quality),
        distractor_images=encode_frames(selection.distractor_frames, image_format, quality),
    )


def selection_numbers(selection) -> dict:
    """The per-frame numbers of a selection (small: kept in every question row)."""
    return dict(
        timestamps=selection.timestamps,
        frame_indices=selection.frame_indices,
        saliency=selection.saliency,
        is_apex=selection.is_apex,
        distractor_timestamps=selection.distractor_timestamps,
        distractor_saliency=selection.distractor_saliency,
        short_video=selection.short_video,
    )


FRAME_COLUMNS = ("images", "distractor_images")


def _features(frames: bool = True):
    import datasets

    images = {c: datasets.List(datasets.Image()) for c in FRAME_COLUMNS} if frames else {}
    return {
        "options": datasets.List(datasets.Value("string")),  # typed even when a shard holds no multiple choice
        **images,
        "timestamps": datasets.List(datasets.Value("float64")),
        "frame_indices": datasets.List(datasets.Value("int64")),
        "saliency": datasets.List(datasets.Value("float64")),
        "is_apex": datasets.List(datasets.Value("bool")),
        "distractor_timestamps": datasets.List(datasets.Value("float64")),
        "distractor_saliency": datasets.List(datasets.Value("float64")),
        "short_video": datasets.Value("bool"),
    }


def _frame_features():
    import datasets

    return datasets.Features(
        {"frames_key": datasets.Value("string"), **{c: datasets.List(datasets.Image()) for c in FRAME_COLUMNS}}
    )


class FrameJoin:
    """A ``datasets`` transform that adds ``images`` and ``distractor_images`` to question rows from the per-video
    frame table, by ``frames_key``. Picklable (the frame table is memory-mapped Arrow), so DataLoader workers get it."""

    def __init__(self, frames):
        self.frames = frames
        self.index: dict[str, int] = {}
        for i, key in enumerate(frames.data.column("frames_key").to_pylist()):
            self.index.setdefault(key, i)  # a key seen twice (a video cut by a shard boundary): its first row

    def __call__(self, batch: dict) -> dict:
        if "frames_key" not in batch:
            raise KeyError(
                "a TAD cache row lost its `frames_key` column, so its frames cannot be found: keep `frames_key` when "
                "removing columns (and `remove_unused_columns: false`)"
            )
        picked = self.frames[[self.index[k] for k in batch["frames_key"]]]
        return {**batch, **{c: picked[c] for c in FRAME_COLUMNS}}


def join_frames(questions, frames):
    """``questions`` with every row's frames joined lazily from ``frames`` (``FrameJoin``)."""
    return questions.with_transform(FrameJoin(frames))


def frame_join_of(dataset) -> FrameJoin | None:
    fmt = getattr(dataset, "format", None) or {}
    transform = fmt.get("format_kwargs", {}).get("transform") if fmt.get("type") == "custom" else None
    return transform if isinstance(transform, FrameJoin) else None


def map_text(dataset, function, **kwargs):
    """``dataset.map`` over text columns without decoding any frame (the join is set again on the result).

    Never read from ``datasets``' map cache: its fingerprint hashes ``function`` but not the module-level functions it
    calls (a prompt template or an SFT trace), so after an upgrade that changes them the cache would hand back rows
    built by the old code. These maps only touch text; recomputing them is cheap."""
    kwargs.setdefault("load_from_cache_file", False)
    join = frame_join_of(dataset)
    if join is None:
        return dataset.map(function, **kwargs)
    return dataset.with_format(None).map(function, **kwargs).with_transform(join)


def load_tad_dataset(path: str | os.PathLike):
    """A ``kfgrpo tad`` output folder as TRL GRPO rows with their frames: the question rows joined to the per-video
    frame table when the cache has one, else the rows as stored (caches with frames in every row, PNG or JPEG)."""
    import datasets

    path = Path(path)
    ds = datasets.load_from_disk(str(path))
    if (path / "frames").is_dir() and "frames_key" in getattr(ds, "column_names", ()):
        return join_frames(ds, datasets.load_from_disk(str(path / "frames")))
    return ds


def frames_key(video: str, query: str | None) -> str:
    """Which frame-table row a question reads: one per video (and per query when selection is query-aware)."""
    return hashlib.sha256(f"{video}\0{query}".encode()).hexdigest()[:24]


@contextlib.contextmanager
def quiet_datasets():
    """No `datasets` progress bars inside: a TAD run shows one bar for the whole stage, not three per shard (thousands
    of lines in a SLURM log)."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
