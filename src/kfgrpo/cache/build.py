"""``build_tad_cache``: the stage itself. Shards are claimed one at a time on the shared output (``cache/claims.py``),
so any number of processes, nodes or SLURM array tasks share the work; the last to finish publishes. Every file that
another worker or a rerun reads is written whole (``kfgrpo.files``).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from ..files import crash_point, write_json
from ..manifest import RowError, confined_video, parse_line, unique_ids, warn_renamed
from ..tad.config import TADConfig
from ..video import VideoError
from .args import STATE_DIR, CacheArgs, _fingerprint, provenance
from .claims import Heartbeat, release, try_claim
from .publish import _publish
from .shard import _line_id, _process_shard


def build_tad_cache(args: CacheArgs, config: TADConfig | None = None, progress: bool = True) -> dict:
    """Runs the stage; returns the summary ``{"kept", "failed", "seconds", "shards_reused", "published",
    "published_here"}`` (``published_here`` False: another worker finishing at the same moment published it)."""
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
    write_json(run_file, dict(fingerprint=fingerprint, manifest=str(manifest.resolve())))

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
    published = "here" if complete else _publish(args, cfg, out, shard_dirs, len(lines))
    if published is None:
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
        published_here=published == "here",
    )
    if published == "elsewhere":  # another worker merged, writes the summary, plots and pushes
        return summary
    write_json(out / "summary.json", summary)
    if args.plot_dir:
        plot_samples(args, cfg)
    if args.push_to_hub:
        from ..hub import push_tad_dataset

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
            done = Path(tasks[i]["shard_dir"]) / "done"
            if done.exists() or not try_claim(path, args.claim_timeout, args.claim_read_grace):
                continue
            if done.exists():  # committed (and released) by another worker between the check and the claim
                release(path)
                continue
            heartbeat.paths.add(path)
            crash_point("shard.claimed")
            return i
        return None

    def finish(i):
        path = state / f"shard-{i:05d}.claim"
        heartbeat.paths.discard(path)
        crash_point("shard.finished")  # committed, its claim still held
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


def plot_samples(args: CacheArgs, cfg: TADConfig) -> list[Path]:
    """``tad-plot`` pictures of the first ``plot_samples`` distinct videos of the manifest."""
    from ..tad import select_keyframes
    from ..tad.plot import plot_selection

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
