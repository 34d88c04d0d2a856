"""TAD wall time / PyAV decode-only wall time on the same 60 s 640×360 H.264 clip, in one process.

Both decode with the same threading (``TADConfig.decode_thread_type``); each figure is the best of ``--repeats``
runs after one warm-up, the runs of the different functions interleaved. Also prints keyframe-only decoding (``skip_frame="NONKEY"``) for reference.

    python benchmarks/bench_tad_speed.py [--seconds 60] [--num-frames 16] [--repeats 7]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av

from _videos import make_clip


def decode_only(path: str, thread_type: str = "SLICE") -> int:
    n = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = thread_type
        for _ in c.decode(s):
            n += 1
    return n


def keyframes_only(path: str) -> int:
    n = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.codec_context.skip_frame = "NONKEY"
        for _ in c.decode(s):
            n += 1
    return n


def best_interleaved(fns: dict, repeats: int) -> dict:
    """Best wall time of each function; runs alternate, so background load hits all of them alike."""
    for fn in fns.values():
        fn()  # warm-up: imports, file cache
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: min(ts) for name, ts in times.items()}


def main(argv=None):
    from kfgrpo.tad import TADConfig, select_keyframes

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kfgrpo-bench-"))
    clip = str(make_clip(work / f"clip{int(args.seconds)}s.mp4", args.seconds))
    cfg = TADConfig()
    t = best_interleaved(
        {
            "decode": lambda: decode_only(clip, cfg.decode_thread_type),
            "tad": lambda: select_keyframes(clip, args.num_frames, config=cfg),
            "uniform": lambda: select_keyframes(clip, args.num_frames, method="uniform", config=cfg),
            "key": lambda: keyframes_only(clip),
        },
        args.repeats,
    )
    t_dec, t_tad, t_uni, t_key = t["decode"], t["tad"], t["uniform"], t["key"]
    frames = decode_only(clip)
    print(
        f"clip: {args.seconds:.0f} s, 640x360 H.264, {frames} frames; K={args.num_frames}, "
        f"candidates at {cfg.candidate_fps} fps, encoder={cfg.encoder}"
    )
    print(f"PyAV decode-only      {t_dec:7.3f} s   1.00")
    print(f"TAD select_keyframes  {t_tad:7.3f} s   {t_tad / t_dec:.2f}  <- TAD / decode-only (goal <= 1.2)")
    print(f"uniform (same API)    {t_uni:7.3f} s   {t_uni / t_dec:.2f}")
    print(f"keyframes-only decode {t_key:7.3f} s   {t_key / t_dec:.2f}")
    return t_tad / t_dec


if __name__ == "__main__":
    main()
