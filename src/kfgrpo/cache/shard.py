"""One shard of a TAD cache run: its manifest lines selected, encoded and committed atomically (data, errors, done
marker), so that a crash at any moment leaves either a complete shard or none.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

from ..files import crash_point
from ..manifest import RowError, confined_video, parse_line
from ..tad.config import TADConfig
from ..video import VideoError
from .claims import process_alive
from .rows import _features, _frame_features, frames_key, quiet_datasets, selection_images, selection_numbers


def _process_shard(task: dict) -> dict:
    """Selects frames for one shard's lines and commits the shard (data, errors, done marker) atomically."""
    import datasets

    from ..tad import select_keyframes

    cfg = TADConfig(**task["tad_config"])
    shard_dir = Path(task["shard_dir"])
    base = Path(task["manifest_dir"])
    rows, errors, frame_rows = [], [], []
    # query-free selections are shared by the rows of one video: selected and encoded once, (numbers, images)
    cache: dict[str, object] = {}
    stored: set[str] = set()  # frames_key already in this shard's frame table
    for lineno, line in task["lines"]:
        row_id = task["renamed"].get(lineno, _line_id(line))  # known even when the row is rejected
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
    tmp = staging_dir(shard_dir)  # this worker's own: a worker that took the shard over never shares it
    shutil.rmtree(tmp, ignore_errors=True)  # left by a dead process whose pid this one reuses
    tmp.mkdir(parents=True)
    if rows:
        with quiet_datasets():
            ds = datasets.Dataset.from_list(rows)
            ds = ds.cast(datasets.Features({**ds.features, **_features(frames=not task["frame_table"])}))
            ds.save_to_disk(str(tmp / "data"))
    if frame_rows:
        with quiet_datasets():
            datasets.Dataset.from_list(frame_rows, features=_frame_features()).save_to_disk(str(tmp / "frames"))
    with open(tmp / "errors.jsonl", "w") as fh:
        for e in errors:
            fh.write(json.dumps(e) + "\n")
    (tmp / "done").write_text(json.dumps(dict(kept=len(rows), failed=len(errors), videos=len(frame_rows))))
    crash_point("shard.staged")
    shutil.rmtree(shard_dir, ignore_errors=True)
    os.replace(tmp, shard_dir)  # the shard exists only once it is complete
    return dict(shard=shard_dir.name, kept=len(rows), failed=len(errors), lines=len(task["lines"]))


def staging_dir(shard_dir: Path) -> Path:
    """Where this process stages ``shard_dir`` before renaming it into place: named by host and pid, so that
    ``remove_abandoned_staging`` can tell a dead worker's leftovers from a live worker's work."""
    return shard_dir.with_name(f"{shard_dir.name}.staging-{socket.gethostname()}-{os.getpid()}")


def remove_leftovers(state: Path, stale_after: float) -> None:
    """Once every shard is committed: deletes the claims left on committed shards by workers killed before releasing
    them, and the staging folders of workers that died before committing (same host: the pid is gone; another
    host: untouched for ``stale_after`` seconds)."""
    for claim in state.glob("shard-*.claim"):
        if (state / claim.stem / "done").exists():
            claim.unlink(missing_ok=True)
    host = socket.gethostname()
    for d in state.glob("shard-*.staging-*"):
        owner_host, _, pid = d.name.split(".staging-", 1)[1].rpartition("-")
        try:
            dead = not process_alive(int(pid)) if owner_host == host else time.time() - d.stat().st_mtime > stale_after
        except (ValueError, FileNotFoundError):
            continue
        if dead:
            shutil.rmtree(d, ignore_errors=True)


def _line_id(line: str):
    """The id of a manifest line, or None when the line is not a JSON object with one (reported by its shard)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return str(row["id"]) if isinstance(row, dict) and row.get("id") not in (None, "") else None
