"""Step time of KF-GRPO / plain GRPO, tiny Qwen2.5-VL on CPU, G = 8, in one process: the default per-completion
reliance reward (``kf_reward: rank``: one teacher-forced forward per frame set over all completions) and the group
rule with likelihood or sampled probes.

All runs use the same data (ChronoSynth, TAD keyframes), seed and settings; the figure is the median of TRL's
per-step ``step_time`` after ``--warmup`` steps, best over ``--rounds`` interleaved rounds. Also prints the share of the generation cycle spent in probes.

    python benchmarks/bench_kfgrpo_step.py [--steps 8] [--rounds 2] [--num-frames 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def build_data(work: Path, num_frames: int):

    from kfgrpo.cache import CacheArgs, build_tad_cache, load_tad_dataset
    from kfgrpo.chronosynth import generate
    from kfgrpo.data_utils import KFScriptArguments, to_grpo_dataset
    from kfgrpo.tad import TADConfig
    from kfgrpo.testing import build_tiny_model

    model = build_tiny_model(work / "model", seed=0)
    generate(work / "synth", num_videos=16, seed=0, progress=False)
    build_tad_cache(
        CacheArgs(str(work / "synth" / "manifest.jsonl"), str(work / "tad"), num_frames=num_frames),
        TADConfig(),
        progress=False,
    )
    ds = to_grpo_dataset(load_tad_dataset(work / "tad"), KFScriptArguments(dataset_name="x"))
    return str(model), ds


def step_times(model, ds, out, steps, warmup, **kf):
    from kfgrpo.config import KFGRPOConfig
    from kfgrpo.rewards import accuracy_reward, format_reward
    from kfgrpo.trainer import KFGRPOTrainer

    args = KFGRPOConfig(
        output_dir=out,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        seed=0,
        per_device_train_batch_size=16,
        num_generations=8,
        max_completion_length=32,
        max_steps=steps + warmup,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        **kf,
    )
    trainer = KFGRPOTrainer(model, [accuracy_reward, format_reward], args=args, train_dataset=ds)
    trainer.train()
    times = [h["step_time"] for h in trainer.state.log_history if "step_time" in h][warmup:]
    return statistics.median(times), trainer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kfgrpo-step-"))
    model, ds = build_data(work, args.num_frames)
    configs = {
        "grpo": dict(kf_preset="grpo"),
        "rank": dict(kf_preset="kf-grpo"),
        "lik": dict(kf_preset="kf-grpo", kf_reward="group", kf_probe_mode="likelihood"),
        "smp": dict(kf_preset="kf-grpo", kf_reward="group", kf_probe_mode="sample"),
    }
    best, trainers = {}, {}
    for r in range(args.rounds):  # interleaved rounds: background load hits every configuration alike
        for name, kf in configs.items():
            t, trainers[name] = step_times(model, ds, str(work / f"{name}{r}"), args.steps, args.warmup, **kf)
            best[name] = min(best.get(name, t), t)
    t_grpo, t_rank, t_lik, t_smp = best["grpo"], best["rank"], best["lik"], best["smp"]
    tr_rank, tr_lik, tr_smp = trainers["rank"], trainers["lik"], trainers["smp"]
    print(
        f"tiny Qwen2.5-VL on CPU, G=8, 2 prompts/step, K={args.num_frames} TAD frames, probes shuffle + "
        f"swap_salient (G_p=4), median step time over {args.steps} steps, best of {args.rounds} rounds:"
    )
    print(f"grpo                               {t_grpo:.3f} s  1.00")
    print(f"kf-grpo (kf_reward rank, default)  {t_rank:.3f} s  {t_rank / t_grpo:.2f}  (goal <= 1.15)")
    print(f"kf-grpo, group rule, likelihood    {t_lik:.3f} s  {t_lik / t_grpo:.2f}  (goal <= 1.25)")
    print(f"kf-grpo, group rule, sampled       {t_smp:.3f} s  {t_smp / t_grpo:.2f}  (goal <= 1.6)")
    share = [h["kf/probe_time_share"] for h in tr_smp.state.log_history if "kf/probe_time_share" in h]
    lshare = [h["kf/probe_time_share"] for h in tr_lik.state.log_history if "kf/probe_time_share" in h]
    rshare = [h["kf/probe_time_share"] for h in tr_rank.state.log_history if "kf/probe_time_share" in h]
    print(
        f"probe time share: rank {statistics.median(rshare):.2f}, group sampled {statistics.median(share):.2f}, "
        f"group likelihood {statistics.median(lshare):.2f}"
    )
    return t_rank / t_grpo, t_lik / t_grpo, t_smp / t_grpo


if __name__ == "__main__":
    main()
