"""What a TAD cache run is: its arguments (``CacheArgs``), the provenance recorded with the dataset, and the fingerprint
that refuses to mix the shards of two different runs in one output.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

from ..tad.config import METHODS, TADConfig
from .rows import IMAGE_FORMATS

STATE_DIR = ".kfgrpo-cache"


@dataclass
class CacheArgs:
    """Arguments of ``kfgrpo tad`` (the TAD knobs themselves are ``TADConfig`` fields)."""

    manifest: str = field(metadata={"help": "Canonical manifest (JSONL); relative video paths resolve against it."})
    output: str = field(metadata={"help": "Output folder; `datasets.load_from_disk(output)` reads the result."})
    num_frames: int = field(default=16, metadata={"help": "Keyframes per video (K)."})
    method: str = field(default="tad", metadata={"help": f"Selection method, one of {METHODS}."})
    num_proc: int = field(default=1, metadata={"help": "Worker processes (shards run in parallel)."})
    shard_size: int = field(default=256, metadata={"help": "Manifest lines per shard (the unit of resumption)."})
    strict: bool = field(default=False, metadata={"help": "Exit non-zero if any row fails."})
    query_aware: bool = field(
        default=False, metadata={"help": "Pass each row's `problem` as the query (hf: encoders with a text tower)."}
    )
    plot_dir: str | None = field(default=None, metadata={"help": "Write `tad-plot` PNGs of a few rows here."})
    plot_samples: int = field(default=4, metadata={"help": "How many videos `--plot_dir` draws."})
    push_to_hub: str | None = field(
        default=None, metadata={"help": "Hub dataset repo to upload to, with a dataset card (token from HF login)."}
    )
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})
    video_root: str | None = field(
        default=None,
        metadata={
            "help": "Folder every video must lie in (default: the manifest's folder); relative paths still resolve "
            "against the manifest's folder. `kfgrpo prepare --video-root DIR` manifests: pass the same DIR."
        },
    )
    allow_outside_root: bool = field(
        default=False,
        metadata={
            "help": "Let the manifest name videos outside the video root. By default `..` and absolute paths "
            "elsewhere are reported in errors.jsonl and skipped, so a downloaded manifest cannot pull other files "
            "into a cache that --push-to-hub publishes."
        },
    )
    image_format: str = field(
        default="jpeg",
        metadata={
            "help": "How frames are stored: `jpeg` (4.3x smaller than PNG on real footage at quality 90, and a row "
            "reads 4.1x faster: docs/scale_out.md) or `png` (lossless). `datasets.Image` decodes either: PNG caches load unchanged."
        },
    )
    claim_timeout: float = field(
        default=600.0,
        metadata={
            "help": "Seconds after which another host's unrefreshed shard claim, or a claim file that cannot be read, "
            "counts as abandoned (claims are refreshed every 30 s; on the same host a dead process's claim is taken "
            "over at once)."
        },
    )
    claim_read_grace: float = field(
        default=2.0,
        metadata={
            "help": "Seconds a worker waits, once, before judging a claim file it cannot read (kfgrpo writes claims "
            "whole; another writer may still be writing one); then the file is judged by its age (`claim_timeout`)."
        },
    )
    frame_table: bool = field(
        default=True,
        metadata={
            "help": "Store each video's frames once, in `output/frames`, joined to its question rows when loaded "
            "(`kfgrpo.cache.load_tad_dataset`): with two questions per video, half the size. False stores the frames "
            "in every row (self-contained rows, e.g. for the Hub's dataset viewer)."
        },
    )
    jpeg_quality: int = field(
        default=90,
        metadata={
            "help": "JPEG quality (1-95; 4:4:4 chroma at 90 and above). On real footage at K = 16 / 100,352 px "
            "(benchmarks/bench_cache_size.py): 90 gives 522 KiB/row and >= 37.8 dB PSNR to the selected frame, "
            "85 gives 351 KiB/row and >= 34.3 dB; PNG 2,226 KiB/row."
        },
    )

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {METHODS}")
        if self.num_frames < 1 or self.shard_size < 1 or self.num_proc < 1:
            raise ValueError("num_frames, shard_size and num_proc must be >= 1")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {self.image_format!r}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError("jpeg_quality must be in 1-95 (Pillow's useful range)")


def _fingerprint(manifest_bytes: bytes, args: CacheArgs, cfg: TADConfig) -> str:
    spec = dict(
        num_frames=args.num_frames,
        method=args.method,
        shard_size=args.shard_size,
        query_aware=args.query_aware,
        tad=cfg.to_dict(),
        selector=cfg.selector(),  # a rewritten selector.json is another cache, even under the same path
        image_format=args.image_format,
        jpeg_quality=args.jpeg_quality,
        frame_table=args.frame_table,
    )
    return hashlib.sha256(manifest_bytes + json.dumps(spec, sort_keys=True).encode()).hexdigest()


def provenance(args: CacheArgs, cfg: TADConfig) -> dict:
    from .. import __version__

    return {
        "kfgrpo_tad": dict(
            method=args.method,
            selector=cfg.selector() if args.method == "tad" else None,
            num_frames=args.num_frames,
            query_aware=args.query_aware,
            image_format=args.image_format,
            jpeg_quality=args.jpeg_quality if args.image_format == "jpeg" else None,
            frame_table=args.frame_table,
            config=cfg.to_dict(),
            manifest=os.path.basename(args.manifest),
            kfgrpo_version=__version__,
        )
    }
