"""Publishing a finished run: when every shard is done, the process that takes the merge claim moves the shards' Arrow
files into the output (no frame copied), recasting the few shards whose null-typed columns differ, with errors.jsonl
and the provenance.
Each step is a rename or a file written whole, and the moves are planned before the first one, so a merge killed at
any point is finished by a rerun (tested: ``tests/cache/test_crash_points.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from ..files import crash_point, write_atomic, write_json
from ..tad.config import TADConfig
from .args import STATE_DIR, CacheArgs, provenance
from .claims import is_stale, release, try_claim
from .rows import quiet_datasets
from .shard import remove_leftovers


def _publish(args: CacheArgs, cfg: TADConfig, out: Path, shard_dirs: list[Path], total: int) -> str | None:
    """When every shard is done, one process (whoever takes the merge claim) publishes the dataset and gets
    ``"here"``; a process that finished at the same moment waits for it and gets ``"elsewhere"`` (so only the
    publisher pushes to the Hub or plots); None when shards are still being processed elsewhere (the last process to
    finish publishes)."""
    state = out / STATE_DIR
    if not all((d / "done").exists() for d in shard_dirs):
        return None
    lock = state / "merge.claim"
    if not try_claim(lock, args.claim_timeout, args.claim_read_grace):
        while not (state / "complete").exists():  # another process is publishing: wait for it
            if not lock.exists() or is_stale(lock, args.claim_timeout, args.claim_read_grace):  # it died: publish here
                return _publish(args, cfg, out, shard_dirs, total)
            time.sleep(1)
        return "elsewhere"
    try:
        if not (state / "complete").exists():
            _merge_shards(args, cfg, out, shard_dirs, total)
    finally:
        release(lock)
    return "here"


def _merge_shards(args: CacheArgs, cfg: TADConfig, out: Path, shard_dirs: list[Path], total: int) -> None:
    """Publishes the finished shards as one dataset in ``out`` (and its frame table in ``out/frames``) by moving their
    Arrow files (no copy of any frame), with errors.jsonl and provenance. The moves are planned first, so an
    interrupted merge resumes."""
    state = out / STATE_DIR
    remove_leftovers(state, args.claim_timeout)
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
        write_json(plan_file, plan)
        crash_point("merge.planned")
    if "data" not in plan["tables"]:
        _merge_by_copy(out, [d / "data" for d in shard_dirs])
    for table in plan["tables"].values():
        dest = out / table["dest"]
        dest.mkdir(parents=True, exist_ok=True)
        for src, dst in table["files"]:
            if os.path.exists(src):
                os.replace(src, dest / dst)  # same filesystem: a rename, not a copy
                crash_point("merge.moved")
        write_json(dest / "dataset_info.json", table["info"], indent=2)
        state_json = dict(table["state"], _data_files=[{"filename": d} for _, d in table["files"]])
        write_json(dest / "state.json", state_json, indent=2)
    info = json.loads((out / "dataset_info.json").read_text())
    info["description"] = json.dumps(provenance(args, cfg))
    write_json(out / "dataset_info.json", info, indent=2)
    write_json(out / "tad_config.json", provenance(args, cfg), indent=2)
    crash_point("merge.published")
    write_json(state / "complete", dict(kept=plan["rows"], failed=len(errors)))
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
    with quiet_datasets():
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
    with quiet_datasets():
        datasets.load_from_disk(str(data)).cast(datasets.Features.from_dict(features)).save_to_disk(str(tmp))
    old = data.with_name(data.name + ".old")
    os.replace(data, old)  # each step a rename: an interruption leaves the table or its `.old` (restored on rerun)
    os.replace(tmp, data)
    shutil.rmtree(old)


def _write_errors(out: Path, errors: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "errors.jsonl", "".join(json.dumps(e) + "\n" for e in sorted(errors, key=lambda e: e["line"])))
