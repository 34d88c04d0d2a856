"""Peak RSS of TAD on a 10× longer video / on the 1× video (60 s vs 600 s, 640×360 H.264), each run in a fresh
process that imports the same modules as the `kfgrpo tad` stage; the import-only RSS is printed for scale.

    python benchmarks/bench_tad_memory.py [--seconds 60] [--factor 10] [--num-frames 16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _videos import make_clip, repeat_clip

CHILD = """
import json, resource, sys
import kfgrpo.cache, kfgrpo.tad  # what the cache stage imports
from kfgrpo.tad import select_keyframes
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[1] != "-":
    sel = select_keyframes(sys.argv[1], int(sys.argv[2]))
print(json.dumps({"base_kib": base, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def peak_rss(video: str, k: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, video, str(k)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kfgrpo-bench-"))
    short = make_clip(work / f"clip{int(args.seconds)}s.mp4", args.seconds)
    long = repeat_clip(short, work / f"clip{int(args.seconds * args.factor)}s.mp4", args.factor)
    imports = peak_rss("-", args.num_frames)
    a = peak_rss(str(short), args.num_frames)
    b = peak_rss(str(long), args.num_frames)
    mib = 1024.0
    print(f"imports only           peak {imports['peak_kib'] / mib:7.1f} MiB")
    print(
        f"TAD on {args.seconds:4.0f} s video     peak {a['peak_kib'] / mib:7.1f} MiB "
        f"(+{(a['peak_kib'] - imports['peak_kib']) / mib:.1f} over imports)"
    )
    print(
        f"TAD on {args.seconds * args.factor:4.0f} s video     peak {b['peak_kib'] / mib:7.1f} MiB "
        f"(+{(b['peak_kib'] - imports['peak_kib']) / mib:.1f} over imports)"
    )
    ratio = b["peak_kib"] / a["peak_kib"]
    print(f"peak RSS {args.factor}x / 1x = {ratio:.3f}  (goal <= 1.1)")
    return ratio


if __name__ == "__main__":
    main()
