"""The TAD cache stage: manifest rows → keyframes → a Hugging Face dataset that training reads without decoding video.

``build_tad_cache(CacheArgs(manifest, output, ...), tad_config)`` writes a dataset that ``datasets.load_from_disk(output)``
reads: one row per usable manifest row, every manifest field passed through, plus ``images`` (``List(Image())``,
chronological), ``timestamps``, ``frame_indices``, ``saliency``, ``is_apex``, ``distractor_images`` and
``distractor_timestamps`` / ``distractor_saliency`` (the lowest-saliency candidates, for content probes). The TAD configuration is recorded in
the dataset info (``description``, JSON) and in ``tad_config.json``.

Bad input never stops the stage: a row whose manifest line is malformed or lacks fields, or whose video is missing,
empty, truncated, not a video, audio-only or too short, goes to ``errors.jsonl`` (``id`` if known, ``line``,
``reason``) and is skipped. The work is split into shards of ``shard_size`` manifest lines; each finished shard is
committed atomically under ``output/.kfgrpo-cache/``, so rerunning the same command after a crash (even ``kill -9``)
skips finished shards and yields the same dataset as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from .manifest import RowError, parse_line, resolve_video
from .tad.config import METHODS, TADConfig
from .video import VideoError

STATE_DIR = ".kfgrpo-cache"
IMAGE_FORMATS = ("jpeg", "png")


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
    image_format: str = field(
        default="jpeg",
        metadata={
            "help": "How frames are stored: `jpeg` (4.3x smaller than PNG on real footage at quality 90, and 4.5x "
            "faster to decode) or `png` (lossless). `datasets.Image` decodes either: PNG caches load unchanged."
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


def selection_columns(selection, image_format: str = "png", quality: int = 95) -> dict:
    return dict(
        images=encode_frames(selection.frames, image_format, quality),
        timestamps=selection.timestamps,
        frame_indices=selection.frame_indices,
        saliency=selection.saliency,
        is_apex=selection.is_apex,
        distractor_images=encode_frames(selection.distractor_frames, image_format, quality),
        distractor_timestamps=selection.distractor_timestamps,
        distractor_saliency=selection.distractor_saliency,
    )


def _features():
    import datasets

    return {
        "images": datasets.List(datasets.Image()),
        "timestamps": datasets.List(datasets.Value("float64")),
        "frame_indices": datasets.List(datasets.Value("int64")),
        "saliency": datasets.List(datasets.Value("float64")),
        "is_apex": datasets.List(datasets.Value("bool")),
        "distractor_images": datasets.List(datasets.Image()),
        "distractor_timestamps": datasets.List(datasets.Value("float64")),
        "distractor_saliency": datasets.List(datasets.Value("float64")),
    }


def _process_shard(task: dict) -> dict:
    """Selects frames for one shard's lines and commits the shard (data, errors, done marker) atomically."""
    import datasets

    from .tad import select_keyframes

    cfg = TADConfig(**task["tad_config"])
    shard_dir = Path(task["shard_dir"])
    base = Path(task["manifest_dir"])
    rows, errors = [], []
    cache: dict[str, object] = {}  # query-free selections are shared by the rows of one video
    for lineno, line in task["lines"]:
        row_id = None
        try:
            row = parse_line(line)
            row_id = row["id"]
            video = resolve_video(row["video"], base)
            query = row["problem"] if task["query_aware"] else None
            key = f"{video}\0{query}"
            if key not in cache:
                cache.clear()  # rows of a video are adjacent; keep one video's frames in memory
                try:
                    seed = int(hashlib.sha256(row_id.encode()).hexdigest()[:8], 16)  # method="gumbel" only
                    cache[key] = select_keyframes(
                        video, task["num_frames"], method=task["method"], query=query, config=cfg, seed=seed
                    )
                except VideoError as exc:
                    cache[key] = exc
            if isinstance(cache[key], VideoError):
                raise cache[key]
            rows.append({**row, **selection_columns(cache[key], task["image_format"], task["jpeg_quality"])})
        except (RowError, VideoError) as exc:
            errors.append(dict(id=row_id, line=lineno, reason=str(exc)))
    tmp = shard_dir.with_name(shard_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if rows:
        ds = datasets.Dataset.from_list(rows)
        ds = ds.cast(datasets.Features({**ds.features, **_features()}))
        ds.save_to_disk(str(tmp / "data"))
    with open(tmp / "errors.jsonl", "w") as fh:
        for e in errors:
            fh.write(json.dumps(e) + "\n")
    (tmp / "done").write_text(json.dumps(dict(kept=len(rows), failed=len(errors))))
    shutil.rmtree(shard_dir, ignore_errors=True)
    os.replace(tmp, shard_dir)  # the shard exists only once it is complete
    return dict(shard=shard_dir.name, kept=len(rows), failed=len(errors), lines=len(task["lines"]))


def _fingerprint(manifest_bytes: bytes, args: CacheArgs, cfg: TADConfig) -> str:
    spec = dict(
        num_frames=args.num_frames,
        method=args.method,
        shard_size=args.shard_size,
        query_aware=args.query_aware,
        tad=cfg.to_dict(),
        image_format=args.image_format,
        jpeg_quality=args.jpeg_quality,
    )
    return hashlib.sha256(manifest_bytes + json.dumps(spec, sort_keys=True).encode()).hexdigest()


def provenance(args: CacheArgs, cfg: TADConfig) -> dict:
    from . import __version__

    return {
        "kfgrpo_tad": dict(
            method=args.method,
            num_frames=args.num_frames,
            query_aware=args.query_aware,
            image_format=args.image_format,
            jpeg_quality=args.jpeg_quality if args.image_format == "jpeg" else None,
            config=cfg.to_dict(),
            manifest=os.path.basename(args.manifest),
            kfgrpo_version=__version__,
        )
    }


def build_tad_cache(args: CacheArgs, config: TADConfig | None = None, progress: bool = True) -> dict:
    """Runs the stage; returns the summary ``{"kept", "failed", "seconds", "shards_reused"}``."""
    cfg = config or TADConfig()
    start = time.perf_counter()
    manifest = Path(args.manifest)
    out = Path(args.output)
    state = out / STATE_DIR
    raw = manifest.read_bytes()
    fingerprint = _fingerprint(raw, args, cfg)
    run_file = state / "run.json"
    if run_file.exists() and json.loads(run_file.read_text())["fingerprint"] != fingerprint:
        raise RuntimeError(f"{out} holds a run with another manifest or config; choose a new --output or delete it")
    state.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(dict(fingerprint=fingerprint, manifest=str(manifest.resolve()))))

    lines = [
        (i, line) for i, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1) if line.strip()
    ]
    shards = [lines[i : i + args.shard_size] for i in range(0, len(lines), args.shard_size)]
    shard_dirs = [state / f"shard-{i:05d}" for i in range(len(shards))]
    complete = (state / "complete").exists()
    pending = [] if complete else [i for i, d in enumerate(shard_dirs) if not (d / "done").exists()]
    reused = len(shards) - len(pending)
    tasks = [
        dict(
            lines=shards[i],
            shard_dir=str(shard_dirs[i]),
            manifest_dir=str(manifest.parent),
            num_frames=args.num_frames,
            method=args.method,
            query_aware=args.query_aware,
            tad_config=cfg.to_dict(),
            image_format=args.image_format,
            jpeg_quality=args.jpeg_quality,
        )
        for i in pending
    ]
    done_lines = sum(len(shards[i]) for i in range(len(shards)) if i not in set(pending))
    _run_shards(tasks, args.num_proc, len(lines), done_lines, progress)
    if not complete:
        _merge_shards(args, cfg, out, shard_dirs, len(lines))
    counts = json.loads((state / "complete").read_text())
    if args.strict and counts["failed"]:
        raise RuntimeError(
            f"{counts['failed']} of {counts['failed'] + counts['kept']} rows failed; see {out / 'errors.jsonl'}"
        )
    summary = dict(
        kept=counts["kept"],
        failed=counts["failed"],
        seconds=round(time.perf_counter() - start, 2),
        shards_reused=reused,
    )
    (out / "summary.json").write_text(json.dumps(summary))
    if args.plot_dir:
        plot_samples(args, cfg)
    if args.push_to_hub:
        from .hub import push_tad_dataset

        push_tad_dataset(out, args.push_to_hub, provenance(args, cfg), summary, private=args.hub_private)
    return summary


def _run_shards(tasks: list[dict], num_proc: int, total: int, done: int, progress: bool) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=done, desc="tad", unit="row", disable=not progress)
    if num_proc > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=num_proc, mp_context=get_context("spawn")) as pool:
            for fut in as_completed([pool.submit(_process_shard, t) for t in tasks]):
                bar.update(fut.result()["lines"])
    else:
        for t in tasks:
            bar.update(_process_shard(t)["lines"])
    bar.close()


def _merge_shards(args: CacheArgs, cfg: TADConfig, out: Path, shard_dirs: list[Path], total: int) -> None:
    """Publishes the finished shards as one dataset in ``out`` (atomic moves), with errors.jsonl and provenance."""
    import datasets

    state = out / STATE_DIR
    errors, parts = [], []
    for d in shard_dirs:
        errors += [json.loads(x) for x in (d / "errors.jsonl").read_text().splitlines()]
        if (d / "data").exists():
            parts.append(datasets.load_from_disk(str(d / "data")))
    _write_errors(out, errors)
    if not parts or (args.strict and errors):
        raise RuntimeError(f"{len(errors)} of {total} rows failed; see {out / 'errors.jsonl'}")
    ds = datasets.concatenate_datasets(parts)
    ds.info.description = json.dumps(provenance(args, cfg))
    tmp = state / "merged.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    ds.save_to_disk(str(tmp))
    for f in tmp.iterdir():  # move the finished dataset into place, next to errors.jsonl and the state folder
        os.replace(f, out / f.name)
    tmp.rmdir()
    (out / "tad_config.json").write_text(json.dumps(provenance(args, cfg), indent=2))
    (state / "complete").write_text(json.dumps(dict(kept=len(ds), failed=len(errors))))
    for d in shard_dirs:  # keep the markers, drop the duplicate frames
        shutil.rmtree(d / "data", ignore_errors=True)


def plot_samples(args: CacheArgs, cfg: TADConfig) -> list[Path]:
    """``tad-plot`` pictures of the first ``plot_samples`` distinct videos of the manifest."""
    from .tad import select_keyframes
    from .tad.plot import plot_selection

    out = Path(args.plot_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Path(args.manifest)
    seen, written = set(), []
    for line in manifest.read_text().splitlines():
        if len(written) >= args.plot_samples:
            break
        try:
            row = parse_line(line)
        except RowError:
            continue
        video = resolve_video(row["video"], manifest.parent)
        if video in seen:
            continue
        seen.add(video)
        try:
            sel = select_keyframes(video, args.num_frames, method=args.method, config=cfg)
        except VideoError:
            continue
        written.append(plot_selection(sel, out / f"{Path(video).stem}.png", title=f"{row['id']}: {row['problem']}"))
    return written


def _write_errors(out: Path, errors: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "errors.jsonl", "w") as fh:
        for e in sorted(errors, key=lambda e: e["line"]):
            fh.write(json.dumps(e) + "\n")
