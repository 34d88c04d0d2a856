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

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from .claims import Heartbeat, is_stale, release, try_claim
from .manifest import RowError, confined_video, parse_line, unique_ids, warn_renamed
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
            "help": "How frames are stored: `jpeg` (4.3x smaller than PNG on real footage at quality 90, and 4.5x "
            "faster to decode) or `png` (lossless). `datasets.Image` decodes either: PNG caches load unchanged."
        },
    )
    claim_timeout: float = field(
        default=600.0,
        metadata={
            "help": "Seconds after which another host's unrefreshed shard claim counts as abandoned (claims are "
            "refreshed every 30 s; on the same host a dead process's claim is taken over at once)."
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
    """``dataset.map`` over text columns without decoding any frame (the join is set again on the result)."""
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


def _process_shard(task: dict) -> dict:
    """Selects frames for one shard's lines and commits the shard (data, errors, done marker) atomically."""
    import datasets

    from .tad import select_keyframes

    cfg = TADConfig(**task["tad_config"])
    shard_dir = Path(task["shard_dir"])
    base = Path(task["manifest_dir"])
    rows, errors, frame_rows = [], [], []
    # query-free selections are shared by the rows of one video: selected and encoded once, (numbers, images)
    cache: dict[str, object] = {}
    stored: set[str] = set()  # frames_key already in this shard's frame table
    for lineno, line in task["lines"]:
        row_id = None
        try:
            row = parse_line(line)
            row["id"] = task["renamed"].get(lineno, row["id"])  # a repeated id, made unique (X#2)
            row_id = row["id"]
            video = confined_video(row["video"], base, task["video_root"], task["allow_outside_root"])
            query = row["problem"] if task["query_aware"] else None
            key = frames_key(row["video"], query)
            if key not in cache:
                cache.clear()  # rows of a video are adjacent; keep one video's frames in memory
                try:
                    # method="gumbel" only; seeded by the key so a video cut by a shard boundary selects alike
                    seed = int(key[:8], 16)
                    sel = select_keyframes(
                        video, task["num_frames"], method=task["method"], query=query, config=cfg, seed=seed
                    )
                    images = selection_images(sel, task["image_format"], task["jpeg_quality"])
                    cache[key] = selection_numbers(sel), images
                    if task["frame_table"] and key not in stored:
                        stored.add(key)
                        frame_rows.append(dict(frames_key=key, **images))
                except VideoError as exc:
                    cache[key] = exc
            if isinstance(cache[key], VideoError):
                raise cache[key]
            numbers, images = cache[key]
            rows.append({**row, **numbers, **({"frames_key": key} if task["frame_table"] else images)})
        except (RowError, VideoError) as exc:
            errors.append(dict(id=row_id, line=lineno, reason=str(exc)))
    tmp = shard_dir.with_name(shard_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if rows:
        ds = datasets.Dataset.from_list(rows)
        ds = ds.cast(datasets.Features({**ds.features, **_features(frames=not task["frame_table"])}))
        ds.save_to_disk(str(tmp / "data"))
    if frame_rows:
        datasets.Dataset.from_list(frame_rows, features=_frame_features()).save_to_disk(str(tmp / "frames"))
    with open(tmp / "errors.jsonl", "w") as fh:
        for e in errors:
            fh.write(json.dumps(e) + "\n")
    (tmp / "done").write_text(json.dumps(dict(kept=len(rows), failed=len(errors), videos=len(frame_rows))))
    shutil.rmtree(shard_dir, ignore_errors=True)
    os.replace(tmp, shard_dir)  # the shard exists only once it is complete
    return dict(shard=shard_dir.name, kept=len(rows), failed=len(errors), lines=len(task["lines"]))


def _line_id(line: str):
    """The id of a manifest line, or None when the line is not a JSON object with one (reported by its shard)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return str(row["id"]) if isinstance(row, dict) and row.get("id") not in (None, "") else None


def _fingerprint(manifest_bytes: bytes, args: CacheArgs, cfg: TADConfig) -> str:
    spec = dict(
        num_frames=args.num_frames,
        method=args.method,
        shard_size=args.shard_size,
        query_aware=args.query_aware,
        tad=cfg.to_dict(),
        image_format=args.image_format,
        jpeg_quality=args.jpeg_quality,
        frame_table=args.frame_table,
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
            frame_table=args.frame_table,
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
    renamed = unique_ids((i, _line_id(line)) for i, line in lines if _line_id(line) is not None)
    warn_renamed(renamed, str(manifest))
    shards = [lines[i : i + args.shard_size] for i in range(0, len(lines), args.shard_size)]
    shard_dirs = [state / f"shard-{i:05d}" for i in range(len(shards))]
    complete = (state / "complete").exists()
    pending = [] if complete else [i for i, d in enumerate(shard_dirs) if not (d / "done").exists()]
    reused = len(shards) - len(pending)
    tasks = {
        i: dict(
            lines=shards[i],
            shard_dir=str(shard_dirs[i]),
            manifest_dir=str(manifest.parent),
            num_frames=args.num_frames,
            method=args.method,
            query_aware=args.query_aware,
            tad_config=cfg.to_dict(),
            image_format=args.image_format,
            jpeg_quality=args.jpeg_quality,
            frame_table=args.frame_table,
            renamed={n: renamed[n] for n, _ in shards[i] if n in renamed},
            video_root=args.video_root,
            allow_outside_root=args.allow_outside_root,
        )
        for i in pending
    }
    done_lines = sum(len(shards[i]) for i in range(len(shards)) if i not in tasks)
    _run_shards(tasks, args, state, len(lines), done_lines, progress)
    if not complete and not _publish(args, cfg, out, shard_dirs, len(lines)):
        waiting = sum(not (d / "done").exists() for d in shard_dirs)
        return dict(
            kept=None,
            failed=None,
            seconds=round(time.perf_counter() - start, 2),
            shards_reused=reused,
            published=False,
            shards_left=waiting,
        )
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
        published=True,
    )
    (out / "summary.json").write_text(json.dumps(summary))
    if args.plot_dir:
        plot_samples(args, cfg)
    if args.push_to_hub:
        from .hub import push_tad_dataset

        push_tad_dataset(out, args.push_to_hub, provenance(args, cfg), summary, private=args.hub_private)
    return summary


def _run_shards(tasks: dict[int, dict], args: CacheArgs, state: Path, total: int, done: int, progress: bool) -> None:
    """Claims pending shards one at a time (``claims.try_claim``) and processes them, ``num_proc`` at once; shards
    that another process holds are left to it. Every process on the same output thus shares the work."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=done, desc="tad", unit="row", disable=not progress)
    queue = list(tasks)

    def claim_next():
        while queue:
            i = queue.pop(0)
            path = state / f"shard-{i:05d}.claim"
            if not (Path(tasks[i]["shard_dir"]) / "done").exists() and try_claim(path, args.claim_timeout):
                heartbeat.paths.add(path)
                return i
        return None

    def finish(i):
        path = state / f"shard-{i:05d}.claim"
        heartbeat.paths.discard(path)
        release(path)
        bar.update(len(tasks[i]["lines"]))

    with Heartbeat() as heartbeat:
        if args.num_proc > 1 and len(tasks) > 1:
            with ProcessPoolExecutor(max_workers=args.num_proc, mp_context=get_context("spawn")) as pool:
                running = {}
                while True:
                    while len(running) < args.num_proc and (i := claim_next()) is not None:
                        running[pool.submit(_process_shard, tasks[i])] = i
                    if not running:
                        break
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        fut.result()
                        finish(running.pop(fut))
        else:
            while (i := claim_next()) is not None:
                _process_shard(tasks[i])
                finish(i)
    bar.close()


def _publish(args: CacheArgs, cfg: TADConfig, out: Path, shard_dirs: list[Path], total: int) -> bool:
    """When every shard is done, one process (whoever takes the merge claim) publishes the dataset; False when shards
    are still being processed elsewhere (the last process to finish publishes)."""
    state = out / STATE_DIR
    if not all((d / "done").exists() for d in shard_dirs):
        return False
    lock = state / "merge.claim"
    if not try_claim(lock, args.claim_timeout):
        while not (state / "complete").exists():  # another process is publishing: wait for it
            if not lock.exists() or is_stale(lock, args.claim_timeout):  # it failed or died: publish here
                return _publish(args, cfg, out, shard_dirs, total)
            time.sleep(1)
        return True
    try:
        if not (state / "complete").exists():
            _merge_shards(args, cfg, out, shard_dirs, total)
    finally:
        release(lock)
    return True


def _merge_shards(args: CacheArgs, cfg: TADConfig, out: Path, shard_dirs: list[Path], total: int) -> None:
    """Publishes the finished shards as one dataset in ``out`` (and its frame table in ``out/frames``) by moving their
    Arrow files (no copy of any frame), with errors.jsonl and provenance. The moves are planned first, so an
    interrupted merge resumes."""
    state = out / STATE_DIR
    errors = []
    for d in shard_dirs:
        errors += [json.loads(x) for x in (d / "errors.jsonl").read_text().splitlines()]
    _write_errors(out, errors)
    plan_file = state / "merge-plan.json"
    if plan_file.exists():
        plan = json.loads(plan_file.read_text())
    else:
        rows = sum(json.loads((d / "done").read_text())["kept"] for d in shard_dirs)
        if not rows or (args.strict and errors):
            raise RuntimeError(f"{len(errors)} of {total} rows failed; see {out / 'errors.jsonl'}")
        plan = dict(rows=rows, tables={})
        for name, dest in (("data", "."), ("frames", "frames")):
            table = _table_plan([d / name for d in shard_dirs], dest)
            if table is not None:
                plan["tables"][name] = table
        plan_file.write_text(json.dumps(plan))
    if "data" not in plan["tables"]:
        _merge_by_copy(out, [d / "data" for d in shard_dirs])
    for table in plan["tables"].values():
        dest = out / table["dest"]
        dest.mkdir(parents=True, exist_ok=True)
        for src, dst in table["files"]:
            if os.path.exists(src):
                os.replace(src, dest / dst)  # same filesystem: a rename, not a copy
        (dest / "dataset_info.json").write_text(json.dumps(table["info"], indent=2))
        (dest / "state.json").write_text(
            json.dumps(dict(table["state"], _data_files=[{"filename": d} for _, d in table["files"]]), indent=2)
        )
    info = json.loads((out / "dataset_info.json").read_text())
    info["description"] = json.dumps(provenance(args, cfg))
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2))
    (out / "tad_config.json").write_text(json.dumps(provenance(args, cfg), indent=2))
    (state / "complete").write_text(json.dumps(dict(kept=plan["rows"], failed=len(errors))))
    plan_file.unlink()


def _merge_by_copy(out: Path, data_dirs: list[Path]) -> None:
    """Question shards with different columns (a manifest whose rows carry different extra fields): ``datasets``
    aligns them while concatenating, which writes them once more (text only, unless ``frame_table`` is off)."""
    import datasets

    if (out / "state.json").exists():  # copied by an earlier, interrupted merge
        return
    parts = [datasets.load_from_disk(str(d)) for d in data_dirs if d.exists()]
    tmp = out / STATE_DIR / "merged.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    datasets.concatenate_datasets(parts).save_to_disk(str(tmp))
    for f in sorted(tmp.iterdir(), key=lambda f: f.name == "state.json"):  # state.json last: the copy is complete
        os.replace(f, out / f.name)
    tmp.rmdir()
    for d in data_dirs:  # keep the markers, drop the duplicate rows
        shutil.rmtree(d, ignore_errors=True)


def _table_plan(table_dirs: list[Path], dest: str) -> dict | None:
    """Which shard Arrow file becomes which data file of one published table. Shards whose columns were inferred
    as ``null`` (e.g. ``scene_cuts: []`` in every row of a shard) are cast to the common type first, one shard at a
    time; None when no shard has the table or shards differ in their columns (then ``datasets`` aligns them in a
    copy)."""
    for d in table_dirs:  # a recast interrupted between its two renames
        old = d.with_name(d.name + ".old")
        if not d.exists() and old.exists():
            os.replace(old, d)
    table_dirs = [d for d in table_dirs if d.exists()]
    infos = [json.loads((d / "dataset_info.json").read_text()) for d in table_dirs]
    if not infos:
        return None
    try:
        features = infos[0]["features"]
        for info in infos[1:]:
            features = _unify(features, info["features"])
    except ValueError:
        return None
    for d, info in zip(table_dirs, infos):
        if info["features"] != features:
            _recast_shard(d, features)
    states = [json.loads((d / "state.json").read_text()) for d in table_dirs]  # after any recast
    files = []
    for d, state in zip(table_dirs, states):
        for entry in state["_data_files"]:
            files.append((str(d / entry["filename"]), f"data-{len(files):05d}.arrow"))
    info = json.loads((table_dirs[0] / "dataset_info.json").read_text())
    return dict(dest=dest, files=files, info=info, state=states[0])


_NULL = {"dtype": "null", "_type": "Value"}


def _unify(a, b):
    """The common type of two serialised ``datasets`` features, a ``null`` value type giving way to the other."""
    if a == b or b == _NULL:
        return a
    if a == _NULL:
        return b
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return {k: _unify(a[k], b[k]) for k in a}
    raise ValueError("incompatible features")


def _recast_shard(data: Path, features: dict) -> None:
    import datasets

    tmp = data.with_name(data.name + ".recast")
    shutil.rmtree(tmp, ignore_errors=True)
    datasets.load_from_disk(str(data)).cast(datasets.Features.from_dict(features)).save_to_disk(str(tmp))
    old = data.with_name(data.name + ".old")
    os.replace(data, old)  # each step a rename: an interruption leaves the table or its `.old` (restored on rerun)
    os.replace(tmp, data)
    shutil.rmtree(old)


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
            video = confined_video(row["video"], manifest.parent, args.video_root, args.allow_outside_root)
        except RowError:
            continue
        if video in seen:
            continue
        seen.add(video)
        try:
            sel = select_keyframes(video, args.num_frames, method=args.method, config=cfg)
        except VideoError:
            continue
        written.append(
            plot_selection(sel, out / f"{Path(video).stem}.png", title=f"{row['id']}: {row['problem']}", config=cfg)
        )
    return written


def _write_errors(out: Path, errors: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "errors.jsonl", "w") as fh:
        for e in sorted(errors, key=lambda e: e["line"]):
            fh.write(json.dumps(e) + "\n")
