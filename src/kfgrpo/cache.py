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
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from .claims import Heartbeat, is_stale, release, try_claim
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
    claim_timeout: float = field(
        default=600.0,
        metadata={
            "help": "Seconds after which another host's unrefreshed shard claim counts as abandoned (claims are "
            "refreshed every 30 s; on the same host a dead process's claim is taken over at once)."
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
        "options": datasets.List(datasets.Value("string")),  # typed even when a shard holds no multiple choice
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
    """Publishes the finished shards as one dataset in ``out`` by moving their Arrow files (no copy of any frame),
    with errors.jsonl and provenance. The moves are planned first, so an interrupted merge resumes."""
    state = out / STATE_DIR
    errors = []
    for d in shard_dirs:
        errors += [json.loads(x) for x in (d / "errors.jsonl").read_text().splitlines()]
    _write_errors(out, errors)
    plan_file = state / "merge-plan.json"
    if plan_file.exists():
        plan = json.loads(plan_file.read_text())
    else:
        plan = _merge_plan(shard_dirs, out)
        if plan is not None and (not plan["files"] or (args.strict and errors)):
            raise RuntimeError(f"{len(errors)} of {total} rows failed; see {out / 'errors.jsonl'}")
        if plan is None:
            return _merge_by_copy(args, cfg, out, shard_dirs, errors, total)
        plan_file.write_text(json.dumps(plan))
    for src, dst in plan["files"]:
        if os.path.exists(src):
            os.replace(src, out / dst)  # same filesystem: a rename, not a copy
    info = dict(plan["info"], description=json.dumps(provenance(args, cfg)))
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2))
    (out / "state.json").write_text(
        json.dumps(dict(plan["state"], _data_files=[{"filename": d} for _, d in plan["files"]]), indent=2)
    )
    (out / "tad_config.json").write_text(json.dumps(provenance(args, cfg), indent=2))
    (state / "complete").write_text(json.dumps(dict(kept=plan["rows"], failed=len(errors))))
    plan_file.unlink()


def _merge_by_copy(args, cfg, out: Path, shard_dirs: list[Path], errors: list[dict], total: int) -> None:
    """Shards with different columns (a manifest whose rows carry different extra fields): ``datasets`` aligns them
    while concatenating, which writes the frames once more."""
    import datasets

    state = out / STATE_DIR
    parts = [datasets.load_from_disk(str(d / "data")) for d in shard_dirs if (d / "data").exists()]
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


def _merge_plan(shard_dirs: list[Path], out: Path) -> dict | None:
    """Which shard Arrow file becomes which data file of the published dataset. Shards whose columns were inferred
    as ``null`` (e.g. ``scene_cuts: []`` in every row of a shard) are cast to the common type first, one shard at a
    time; None when shards differ in their columns (then ``datasets`` aligns them in a copy)."""
    for d in shard_dirs:  # a recast interrupted between its two renames
        if not (d / "data").exists() and (d / "data.old").exists():
            os.replace(d / "data.old", d / "data")
    data_dirs = [d / "data" for d in shard_dirs if (d / "data").exists()]
    infos = [json.loads((d / "dataset_info.json").read_text()) for d in data_dirs]
    if not infos:
        return dict(files=[], info=None, state=None, rows=0)
    try:
        features = infos[0]["features"]
        for info in infos[1:]:
            features = _unify(features, info["features"])
    except ValueError:
        return None
    for d, info in zip(data_dirs, infos):
        if info["features"] != features:
            _recast_shard(d, features)
    states = [json.loads((d / "state.json").read_text()) for d in data_dirs]  # after any recast
    files = []
    for d, state in zip(data_dirs, states):
        for entry in state["_data_files"]:
            files.append((str(d / entry["filename"]), f"data-{len(files):05d}.arrow"))
    rows = sum(json.loads((d.parent / "done").read_text())["kept"] for d in data_dirs)
    info = json.loads((data_dirs[0] / "dataset_info.json").read_text())
    return dict(files=files, info=info, state=states[0], rows=rows)


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

    tmp = data.with_name("data.recast")
    shutil.rmtree(tmp, ignore_errors=True)
    datasets.load_from_disk(str(data)).cast(datasets.Features.from_dict(features)).save_to_disk(str(tmp))
    old = data.with_name("data.old")
    os.replace(data, old)  # each step a rename: an interruption leaves `data` or `data.old` (restored on rerun)
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
