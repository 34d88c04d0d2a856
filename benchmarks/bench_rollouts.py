"""Rollout throughput: vLLM colocate vs transformers ``generate``, through the trainer's own rollout path.

Two ``KFGRPOTrainer``s on the same ``small`` tiny Qwen2.5-VL (head_dim 64, which vLLM needs) and the same TAD rows:
one generates with transformers, one with a colocated vLLM engine (vLLM's CPU build on a CPU machine, the CUDA build
on a GPU). Each timed call is TRL's ``_tokenize_prompts`` + ``_generate_single_turn`` on ``--prompts`` prompts ×
``--generations`` completions of up to ``--tokens`` tokens (a rollout batch), after one warm-up call. Throughput is
completion tokens per second (random weights stop at different lengths in the two backends, so tokens, not calls,
are compared); the ratio is vLLM / transformers in one process.

    python benchmarks/bench_rollouts.py [--prompts 4] [--generations 8] [--tokens 64] [--frames 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")


def build(work: Path, num_frames: int):

    from kfgrpo.cache import CacheArgs, build_tad_cache, load_tad_dataset
    from kfgrpo.chronosynth import generate
    from kfgrpo.data_utils import KFScriptArguments, to_grpo_dataset
    from kfgrpo.tad import TADConfig
    from kfgrpo.testing import build_tiny_model

    model = build_tiny_model(work / "model", size="small", seed=0)
    generate(work / "synth", num_videos=8, seed=0, progress=False)
    build_tad_cache(
        CacheArgs(str(work / "synth" / "manifest.jsonl"), str(work / "tad"), num_frames=num_frames),
        TADConfig(max_pixels=56 * 56),
        progress=False,
    )
    ds = to_grpo_dataset(load_tad_dataset(work / "tad"), KFScriptArguments(dataset_name="bench"))
    return str(model), ds


def throughput(model, ds, work, args, use_vllm: bool):
    import torch
    from trl.data_utils import prepare_multimodal_messages

    from kfgrpo.config import KFGRPOConfig
    from kfgrpo.rewards import accuracy_reward
    from kfgrpo.trainer import KFGRPOTrainer

    on_gpu = torch.cuda.is_available()
    cfg = KFGRPOConfig(
        output_dir=str(work / ("vllm" if use_vllm else "hf")),
        kf_preset="grpo",
        use_cpu=not on_gpu,
        bf16=on_gpu,
        per_device_train_batch_size=args.generations,
        num_generations=args.generations,
        max_completion_length=args.tokens,
        temperature=1.0,
        report_to="none",
        use_vllm=use_vllm,
        vllm_mode="colocate",
        vllm_max_model_length=2048,
        vllm_gpu_memory_utilization=0.3,
        seed=0,
    )
    trainer = KFGRPOTrainer(model, [accuracy_reward], args=cfg, train_dataset=ds)
    rows = ds.select(range(args.prompts))
    prompts = [prepare_multimodal_messages(r["prompt"], images=r["images"]) for r in rows]
    prompts = [p for p in prompts for _ in range(args.generations)]
    times, tokens = [], []
    for i in range(args.repeats + 1):
        start = time.perf_counter()
        prompt_ids, images, fields = trainer._tokenize_prompts(prompts)
        completion_ids, _ = trainer._generate_single_turn(prompt_ids, images, fields, num_generations=1)
        if i:  # the first call warms up (engine graphs, kernels, caches)
            times.append(time.perf_counter() - start)
            tokens.append(sum(len(c) for c in completion_ids))
    return sum(tokens) / sum(times), statistics.mean(tokens), statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kfgrpo-rollouts-"))
    model, ds = build(work, args.frames)
    hf = throughput(model, ds, work, args, use_vllm=False)
    vl = throughput(model, ds, work, args, use_vllm=True)
    batch = f"{args.prompts} prompts x {args.generations}, <= {args.tokens} tokens, {args.frames} frames"
    print(f"rollout batch: {batch}")
    print(f"transformers generate: {hf[0]:8.1f} tokens/s ({hf[1]:.0f} tokens in {hf[2]:.2f} s)")
    print(f"vLLM colocate:         {vl[0]:8.1f} tokens/s ({vl[1]:.0f} tokens in {vl[2]:.2f} s)")
    print(f"vLLM / transformers:   {vl[0] / hf[0]:8.2f}x")


if __name__ == "__main__":
    main()
