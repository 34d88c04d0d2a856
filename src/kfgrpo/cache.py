"""The frame-cache stage: manifest rows → selected frames → a Hugging Face dataset that training reads directly.

One output row per usable manifest row: every manifest field passed through, plus ``images`` (``List(Image())``,
chronological), ``timestamps`` (seconds) and ``frame_indices``. Rows that cannot be used (malformed JSON, missing
fields, unreadable videos) are written to ``errors.jsonl`` with their line number and reason, and skipped: the good
rows always finish. Relative ``video`` paths are resolved against the manifest's folder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .video import VideoError, decode_frames, fit_to_patches, probe, uniform_indices

REQUIRED_FIELDS = ("id", "video", "problem", "solution", "problem_type")
PROBLEM_TYPES = ("multiple_choice", "numerical", "free_form", "temporal_grounding")
METHODS = ("uniform",)


@dataclass
class CacheConfig:
    """How frames are chosen and sized for the cache."""

    num_frames: int = field(default=8, metadata={"help": "Frames kept per video (K)."})
    method: str = field(default="uniform", metadata={"help": f"Frame selection method, one of {METHODS}."})
    min_pixels: int = field(default=28 * 28, metadata={"help": "Fewest pixels per kept frame."})
    max_pixels: int = field(default=128 * 28 * 28, metadata={"help": "Most pixels per kept frame."})
    patch_factor: int = field(default=28, metadata={"help": "Frame sides are multiples of this (patch × merge)."})

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {METHODS}")
        if self.num_frames < 1:
            raise ValueError("num_frames must be >= 1")


class RowError(ValueError):
    """A manifest row that cannot be cached."""


def parse_manifest_line(line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RowError(f"malformed JSON: {exc}") from exc
    if not isinstance(row, dict):
        raise RowError(f"expected a JSON object, got {type(row).__name__}")
    missing = [k for k in REQUIRED_FIELDS if k not in row or row[k] in (None, "")]
    if missing:
        raise RowError(f"missing fields: {', '.join(missing)}")
    if row["problem_type"] not in PROBLEM_TYPES:
        raise RowError(f"unknown problem_type {row['problem_type']!r}; expected one of {PROBLEM_TYPES}")
    row.setdefault("options", [])
    row["solution"] = str(row["solution"])
    return row


def select_row_frames(video_path: str, config: CacheConfig) -> dict:
    """The cached columns for one video: images, timestamps, frame_indices."""
    info = probe(video_path)
    if info.num_frames < 1:
        raise VideoError(f"video has no frames: {video_path}")
    indices = uniform_indices(info.num_frames, config.num_frames)
    size = fit_to_patches(info.height, info.width, config.patch_factor, config.min_pixels, config.max_pixels)
    images, timestamps, found = decode_frames(video_path, indices, size=size)
    return dict(images=images, timestamps=timestamps, frame_indices=found)


def build_frame_cache(
    manifest: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: CacheConfig,
    strict: bool = False,
    progress: bool = True,
) -> dict:
    """Runs the stage; returns the summary ``{"kept", "failed", "seconds"}``. See the module docstring."""
    import datasets
    from tqdm.auto import tqdm

    start = time.perf_counter()
    manifest = Path(manifest)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = manifest.read_text().splitlines()
    rows, errors = [], []
    for lineno, line in enumerate(tqdm(lines, desc="frames", disable=not progress), start=1):
        if not line.strip():
            continue
        row_id = None
        try:
            row = parse_manifest_line(line)
            row_id = row["id"]
            video = row["video"] if os.path.isabs(row["video"]) else str(manifest.parent / row["video"])
            rows.append({**row, **select_row_frames(video, config)})
        except (RowError, VideoError) as exc:
            errors.append(dict(id=row_id, line=lineno, reason=str(exc)))
    if not rows or (strict and errors):
        _write_errors(out, errors)
        raise RuntimeError(f"{len(errors)} of {len(errors) + len(rows)} rows failed; see {out / 'errors.jsonl'}")
    ds = datasets.Dataset.from_list(rows)
    if not isinstance(ds.features["images"], datasets.List) or not isinstance(
        ds.features["images"].feature, datasets.Image
    ):
        ds = ds.cast_column("images", datasets.List(datasets.Image()))
    ds.info.description = json.dumps({"kfgrpo_frames": asdict(config)})
    ds.save_to_disk(str(out))
    _write_errors(out, errors)
    summary = dict(kept=len(rows), failed=len(errors), seconds=round(time.perf_counter() - start, 2))
    (out / "summary.json").write_text(json.dumps(summary))
    return summary


def _write_errors(out: Path, errors: list[dict]) -> None:
    with open(out / "errors.jsonl", "w") as fh:
        for e in errors:
            fh.write(json.dumps(e) + "\n")
