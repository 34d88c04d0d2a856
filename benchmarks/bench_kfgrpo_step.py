"""Step time of KF-GRPO / plain GRPO, tiny Qwen2.5-VL on CPU, in one process: the ``kf-grpo`` preset's default (the
per-completion reliance reward: teacher-forced forwards per frame set over the completions it can pay, scored by the
reference model), the group rule with likelihood or sampled probes, and the contrastive credit gate (``credit``:
shuffle + swap_salient + blind sampled, G_p each (``--probe-generations``) and 1 each, for the groups it can act on,
in one generation call).

All runs use the same data (ChronoSynth, TAD keyframes), seed and settings; the figure is the median of TRL's
per-step ``step_time`` after ``--warmup`` steps, best over ``--rounds`` interleaved rounds. Also prints the share of
the generation cycle spent in probes, and the share of completions the reliance reward scored (it scores the correct
completions of groups it can rank: a random model answers nothing right, so the honest setting is a trained one).

    python benchmarks/bench_kfgrpo_step.py [--steps 8] [--rounds 2] [--num-frames 8]
    python benchmarks/bench_kfgrpo_step.py --model outputs/tiny-cpu/sft --dataset data/chronosynth/train-tad \
        --generations 4 --prompts 4 --completion-length 72   # the CPU demo's model, data and RL (after make train)

``--results FILE`` also writes the figures as JSON (docs/benchmarks.md renders its step-cost table from them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

DEMO_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny-cpu" / "kfgrpo.yaml"


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


def demo_data(dataset: str, recipe: Path = DEMO_RECIPE):
    """The rows as the demo's RL stage sees them: the prompt fields of its recipe (question position, the empty
    system prompt and templates the warm start was trained on, dropped rows), read from the recipe itself: a prompt
    the warm start never saw leaves it answering almost nothing right, and a step time measured there is not the
    demo's."""
    import dataclasses

    import yaml

    from kfgrpo.data_utils import KFScriptArguments, load_keyframe_dataset, to_grpo_dataset

    fields = {f.name for f in dataclasses.fields(KFScriptArguments)} - {"dataset_name"}
    args = KFScriptArguments(
        dataset_name=dataset, **{k: v for k, v in yaml.safe_load(recipe.read_text()).items() if k in fields}
    )
    return to_grpo_dataset(load_keyframe_dataset(args), args)  # as `kfgrpo train` loads it


def step_times(model, ds, out, steps, warmup, generations=8, completion_length=32, prompts=2, **kf):
    from kfgrpo.config import KFGRPOConfig
    from kfgrpo.rewards import accuracy_reward, format_reward
    from kfgrpo.trainer import KFGRPOTrainer

    args = KFGRPOConfig(
        output_dir=out,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        seed=0,
        per_device_train_batch_size=prompts * generations,
        num_generations=generations,
        max_completion_length=completion_length,
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
    parser.add_argument("--model", default=None, help="a trained model (default: a random tiny one)")
    parser.add_argument("--dataset", default=None, help="its TAD cache (default: 16 ChronoSynth videos)")
    parser.add_argument("--generations", type=int, default=8, help="G")
    parser.add_argument("--completion-length", type=int, default=32)
    parser.add_argument("--prompts", type=int, default=2, help="prompts per step")
    parser.add_argument("--probe-generations", type=int, default=2, help="G_p of the credit gate (per probe)")
    parser.add_argument("--results", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kfgrpo-step-"))
    if args.model:
        model, ds = args.model, demo_data(args.dataset)
    else:
        model, ds = build_data(work, args.num_frames)
    configs = {
        "grpo": dict(kf_preset="grpo"),
        "default": dict(kf_preset="kf-grpo"),
        "lik": dict(kf_preset="kf-grpo", kf_reward="group", kf_probe_mode="likelihood"),
        "smp": dict(kf_preset="kf-grpo", kf_reward="group", kf_probe_mode="sample"),
    }
    credit = dict(kf_preset="kf-grpo", kf_reward="credit", kf_probes=["shuffle", "swap_salient", "blind"],
                  kf_probe_bonus=[1.0, 1.0, 1.0])  # fmt: skip
    configs["credit"] = dict(credit, kf_probe_generations=args.probe_generations)
    configs["credit-gp1"] = dict(credit, kf_probe_generations=1)  # the cheaper setting, in the same process
    best, trainers = {}, {}
    for r in range(args.rounds):  # interleaved rounds: background load hits every configuration alike
        for name, kf in configs.items():
            t, trainers[name] = step_times(
                model, ds, str(work / f"{name}{r}"), args.steps, args.warmup, args.generations,
                args.completion_length, args.prompts, **kf,
            )  # fmt: skip
            best[name] = min(best.get(name, t), t)
    t_grpo, t_default, t_lik, t_smp = best["grpo"], best["default"], best["lik"], best["smp"]
    tr_default, tr_lik, tr_smp = trainers["default"], trainers["lik"], trainers["smp"]
    print(
        f"{args.model or 'random tiny Qwen2.5-VL'} on CPU, G={args.generations}, {args.prompts} prompts/step, "
        f"completions <= {args.completion_length} tokens, probes shuffle + swap_salient (group rule: "
        f"G_p={args.generations // 2}), median step time over {args.steps} steps, best of {args.rounds} rounds:"
    )
    print(f"grpo                               {t_grpo:.3f} s  1.00")
    print(
        f"kf-grpo (default: kf_reward {tr_default.args.kf_reward})  {t_default:.3f} s  {t_default / t_grpo:.2f}  (goal <= 1.15)"
    )
    print(f"kf-grpo, group rule, likelihood    {t_lik:.3f} s  {t_lik / t_grpo:.2f}  (goal <= 1.25)")
    print(f"kf-grpo, group rule, sampled       {t_smp:.3f} s  {t_smp / t_grpo:.2f}  (goal <= 1.6)")
    probed = {}
    for name, gp in (("credit", args.probe_generations), ("credit-gp1", 1)):
        log = trainers[name].state.log_history
        probed[name] = statistics.mean(h["kf/credit/probed_groups"] for h in log if "kf/credit/probed_groups" in h)
        print(f"kf-grpo, credit gate (G_p={gp})    {best[name]:.3f} s  {best[name] / t_grpo:.2f}  (goal <= 1.35)"
              f"; groups probed {probed[name]:.2f}")  # fmt: skip
    share = [h["kf/probe_time_share"] for h in tr_smp.state.log_history if "kf/probe_time_share" in h]
    lshare = [h["kf/probe_time_share"] for h in tr_lik.state.log_history if "kf/probe_time_share" in h]
    rshare = [h["kf/probe_time_share"] for h in tr_default.state.log_history if "kf/probe_time_share" in h]
    scored = [h["kf/reliance/scored"] for h in tr_default.state.log_history if "kf/reliance/scored" in h]
    print(f"reliance reward: share of completions scored {statistics.mean(scored):.2f} (mean over steps)")
    print(
        f"probe time share: default {statistics.median(rshare):.2f}, group sampled {statistics.median(share):.2f}, "
        f"group likelihood {statistics.median(lshare):.2f}"
    )
    if args.results:
        record = dict(
            command=" ".join(["python", *sys.argv]),
            machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            model=args.model,
            probe_generations=args.probe_generations,
            seconds={name: best[name] for name in configs},
            ratio_to_grpo={name: best[name] / t_grpo for name in configs},
            credit_probed_groups=probed,
            default_scored=statistics.mean(scored),
            probe_time_share=dict(
                default=statistics.median(rshare), group_sampled=statistics.median(share),
                group_likelihood=statistics.median(lshare),
            ),
        )  # fmt: skip
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(record, indent=2))
    return t_default / t_grpo, t_lik / t_grpo, t_smp / t_grpo, best["credit"] / t_grpo


if __name__ == "__main__":
    main()
