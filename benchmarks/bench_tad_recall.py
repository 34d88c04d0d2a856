"""Event recall@K of TAD vs uniform frames on held-out ChronoSynth videos (benchmark (c) of the TAD stage).

A planted event (an object's appearance) counts as hit when a selected frame lies within one candidate interval
after it: ``event <= t <= event + 1 / candidate_fps``. The videos are generated here from seeds never used for
anything else (default 101), so nothing was tuned on them.

    python benchmarks/bench_tad_recall.py [--num-videos 100] [--seed 101] [--k 4 8 16]

Rows: TAD with the ``TADConfig`` defaults, TAD with ``--config`` (a recipe YAML, if given), and uniform.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def event_recall(timestamps, events, interval: float) -> tuple[int, int]:
    """(hits, events): events with a selected timestamp in [event, event + interval]."""
    hits = sum(any(e - 1e-6 <= t <= e + interval + 1e-6 for t in timestamps) for e in events)
    return hits, len(events)


def run(num_videos: int, seed: int, ks: list[int], methods=("tad", "uniform"), config=None, workdir=None) -> dict:
    from kfgrpo.chronosynth import generate
    from kfgrpo.tad import TADConfig, select_keyframes

    cfg = config or TADConfig()
    work = Path(workdir or tempfile.mkdtemp(prefix="kfgrpo-recall-"))
    manifest = work / "manifest.jsonl"
    if not manifest.exists():
        generate(work, num_videos, seed=seed, progress=False)
    videos = {}
    for line in manifest.read_text().splitlines():
        row = json.loads(line)
        videos[row["video"]] = row["event_timestamps"]
    interval = 1.0 / cfg.candidate_fps
    results = {}
    for method in methods:
        for k in ks:
            hits = total = 0
            for video, events in videos.items():
                sel = select_keyframes(work / video, k, method=method, config=cfg)
                h, n = event_recall(sel.timestamps, events, interval)
                hits, total = hits + h, total + n
            results[f"{method}@{k}"] = hits / total
    return results


def main(argv=None):
    import yaml

    from kfgrpo.tad import TADConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-videos", type=int, default=100)
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--k", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--config", default=None, help="Also run TAD with this recipe (YAML of TADConfig fields).")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    work = tempfile.mkdtemp(prefix="kfgrpo-recall-")
    spec = run(args.num_videos, args.seed, args.k, methods=("tad", "uniform"), workdir=work)
    tuned = None
    if args.config:
        cfg = TADConfig(**(yaml.safe_load(Path(args.config).read_text()) or {}))
        tuned = run(args.num_videos, args.seed, args.k, methods=("tad",), workdir=work, config=cfg)
    print(f"event recall on {args.num_videos} held-out ChronoSynth videos (seed {args.seed}):")
    extra = f" {'TAD (' + Path(args.config).name + ')':>20}" if tuned else ""
    print(f"{'K':>4} {'TAD (defaults)':>15}{extra} {'uniform':>8}")
    for k in args.k:
        cell = f" {tuned[f'tad@{k}']:>20.3f}" if tuned else ""
        print(f"{k:>4} {spec[f'tad@{k}']:>15.3f}{cell} {spec[f'uniform@{k}']:>8.3f}")
    print(f"({time.perf_counter() - start:.1f} s)")
    return spec


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
