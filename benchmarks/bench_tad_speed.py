"""TAD time / PyAV decode-only time on the same 60 s 640×360 H.264 clip, in one process: wall and CPU seconds.

Both decode with the same threading (``TADConfig.decode_thread_type``, PyAV's default SLICE); each figure is the best
of ``--repeats`` runs after one warm-up, the runs of the different functions interleaved. CPU time (all threads of
the process) is what a cache build over many videos pays per video, since every core is busy then. Rows: TAD as
configured (``decode_skip`` on: only what the candidates need is decoded), TAD decoding every frame
(``decode_skip: false``), TAD with a learned stage 3 (``selector_weights``: its greedy draw replaces the
hand-set distillation), uniform through the same API, and keyframe-only decoding (``skip_frame="NONKEY"``) for
reference. The candidates of the two TAD rows are checked to be the same frames, bit for bit.

    python benchmarks/bench_tad_speed.py [--seconds 60] [--num-frames 16] [--repeats 7]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import av
import numpy as np

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


def best_interleaved(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Best wall and best CPU time of each function; runs alternate, so background load hits all of them alike."""
    for fn in fns.values():
        fn()  # warm-up: imports, file cache
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    return {n: min(ts) for n, ts in wall.items()}, {n: min(ts) for n, ts in cpu.items()}


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
    full_decode = replace(cfg, decode_skip=False)
    from kfgrpo.tad.learned import LearnedSelector

    learned = replace(cfg, selector_weights=str(LearnedSelector().save(work / "selector.json")))
    fast, slow = (
        select_keyframes(clip, args.num_frames, config=cfg),
        select_keyframes(clip, args.num_frames, config=full_decode),
    )
    same = fast.frame_indices == slow.frame_indices and all(
        np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(fast.frames, slow.frames)
    )
    wall, cpu = best_interleaved(
        {
            "decode": lambda: decode_only(clip, cfg.decode_thread_type),
            "tad": lambda: select_keyframes(clip, args.num_frames, config=cfg),
            "tad_full": lambda: select_keyframes(clip, args.num_frames, config=full_decode),
            "tad_learned": lambda: select_keyframes(clip, args.num_frames, config=learned),
            "uniform": lambda: select_keyframes(clip, args.num_frames, method="uniform", config=cfg),
            "key": lambda: keyframes_only(clip),
        },
        args.repeats,
    )
    frames = decode_only(clip)
    print(
        f"clip: {args.seconds:.0f} s, 640x360 H.264, {frames} frames; K={args.num_frames}, "
        f"candidates at {cfg.candidate_fps} fps, encoder={cfg.encoder}; best of {args.repeats}"
    )
    print(f"{'':34}{'wall s':>8} {'ratio':>6} {'CPU s':>8} {'ratio':>6}")
    rows = (
        ("PyAV decode-only", "decode", ""),
        ("TAD select_keyframes", "tad", "  <- TAD / decode-only (goal <= 0.7)"),
        ("TAD, decode_skip: false", "tad_full", ""),
        ("TAD, learned stage 3 (tad-learn)", "tad_learned", ""),
        ("uniform (same API)", "uniform", ""),
        ("keyframes-only decode", "key", ""),
    )
    for label, key, note in rows:
        print(
            f"{label:34}{wall[key]:8.3f} {wall[key] / wall['decode']:6.2f} {cpu[key]:8.3f} "
            f"{cpu[key] / cpu['decode']:6.2f}{note}"
        )
    print(f"same candidates and keyframes, bit for bit, with and without decode_skip: {same}")
    # Stage 3 alone, on the same curve: the hand-set distillation against the learned selector's greedy draw.
    from kfgrpo.tad.select import decode_and_score, pick_positions

    curve = decode_and_score(clip, args.num_frames, cfg)[1]
    stage3, _ = best_interleaved(
        {
            "distill": lambda: pick_positions(curve, args.num_frames, "tad", None, cfg),
            "learned": lambda: pick_positions(curve, args.num_frames, "tad", None, learned),
        },
        50,
    )
    print(
        f"stage 3 alone ({len(curve.timestamps)} candidates): hand-set distillation {stage3['distill'] * 1e3:.2f} ms, "
        f"learned greedy draw {stage3['learned'] * 1e3:.2f} ms"
    )
    return wall["tad"] / wall["decode"]


if __name__ == "__main__":
    main()
