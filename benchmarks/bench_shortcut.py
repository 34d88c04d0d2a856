"""Does KF-GRPO help? GRPO, T-GRPO and KF-GRPO from one warm start, on training data with a frame-free shortcut.

The training split is ChronoSynth `order` questions whose answer is option A 80 % of the time
(``recipes/tiny-cpu/synth-shortcut.yaml``): a policy can earn most of its reward without looking at the frames. The
held-out split places the answer uniformly, so there the shortcut is worth 1/4 and only reading the frames pays.
KF-GRPO's contrastive reward pays a correct answer only when the group does worse on shuffled / salient-swapped frames,
so it should favour reading the frames over the cue; GRPO rewards both the same.

Stages (each skipped when its output exists, so an interrupted run resumes):

1. the tiny random-weight model, the CPU demo's (``kfgrpo tiny-model --size demo``);
2. ChronoSynth, 400 training videos (seed 0) twice: ``warm``, the CPU demo's training data (``order`` and ``count``,
   no cue), and ``train``, the same videos' ``order`` questions with the cue; the held-out split without the cue
   (``--split test``, seed 1, 200 videos) or the tuning split (``--split tune``, seed 2): the knobs of
   ``recipes/tiny-cpu/shortcut.yaml`` were chosen on the tuning split with RL seed 0, never on the held-out split;
3. TAD keyframes for both training splits (``recipes/tiny-cpu/tad.yaml``, K = 8);
4. the warm start: the demo's SFT stage (``recipes/tiny-cpu/sft.yaml``; ``--sft-epochs`` overrides) on ``warm``; a model that
   reads its frames about as well as a pretrained one would, and has never seen the cue (``--warm-start DIR``
   takes an existing one, e.g. ``outputs/tiny-cpu/sft`` after ``make train``: the same data and recipe);
5. for every arm and seed: ``kfgrpo train --config recipes/tiny-cpu/shortcut.yaml`` + the arm's arguments on
   ``train``, then ``kfgrpo eval`` (greedy, real and shuffled keyframes) on the held-out split. ``grpo-blind-filter``
   trains on ``train`` less the questions the warm start answers right without frames (``kfgrpo blind-filter``,
   ``--filter-samples`` N, ``--filter-threshold`` τ), run once before the arms.

Writes ``--results`` (a list of runs: arm, preset, seed, accuracy, frame_sensitivity, accuracy on shortcut-consistent
and shortcut-violating questions, the share of answers that are the shortcut letter, the logged ``kf/*`` metrics)
and ``--plot`` (learning curves per arm, mean over seeds), and prints the table with standard errors over seeds.

    python benchmarks/bench_shortcut.py [--split test] [--seeds 1 2 3] [--arms grpo t-grpo kf-grpo]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

# The credit gate's arguments: its three probes (order, content, no frames) with equal weights.
CREDIT = ["--kf_preset", "kf-grpo", "--kf_reward", "credit", "--kf_probes", "shuffle", "swap_salient", "blind",
          "--kf_probe_bonus", "1", "1", "1"]  # fmt: skip
# Every arm trains recipes/tiny-cpu/shortcut.yaml; these are the arguments that differ.
ARMS: dict[str, list[str]] = {
    "grpo": ["--kf_preset", "grpo"],
    "t-grpo": ["--kf_preset", "t-grpo"],
    # the method spec's per-group rule with sampled probes (the kf-grpo preset before kf_reward existed)
    "kf-grpo-group": ["--kf_preset", "kf-grpo", "--kf_reward", "group"],
    "kf-grpo": ["--kf_preset", "kf-grpo"],  # the preset's default (kf_reward shape)
    "kf-grpo-rank": ["--kf_preset", "kf-grpo", "--kf_reward", "rank"],
    "kf-grpo-shape": ["--kf_preset", "kf-grpo", "--kf_reward", "shape"],
    "kf-grpo-gate": ["--kf_preset", "kf-grpo", "--kf_reward", "gate"],
    "grpo-batch": ["--kf_preset", "grpo", "--scale_rewards", "batch"],
    "kf-grpo-group-batch": ["--kf_preset", "kf-grpo", "--kf_reward", "group", "--scale_rewards", "batch"],
    # the contrastive credit gate: positive advantages x how much the real frames caused the group's success
    "kf-grpo-credit": CREDIT,
    # the same, every advantage of the group times g (kf_credit_scope: group), not only the positive ones
    "kf-grpo-credit-group": [*CREDIT, "--kf_credit_scope", "group"],
    # the same with one completion per probe (G_p = 1): the setting that keeps its step cost within 1.35x of grpo
    # where half the groups are probed (docs/benchmarks.md#step-cost), at the price of a noisier credit
    "kf-grpo-credit-gp1": [*CREDIT, "--kf_probe_generations", "1"],
    # the same with the probes' drops averaged (kf_credit_aggregate: mean): the blind probe alone cannot grant full
    # credit to a group that shuffle and swap answered as well; `min`: credit only for what every probe took away
    "kf-grpo-credit-mean": [*CREDIT, "--kf_credit_aggregate", "mean"],
    "kf-grpo-credit-min": [*CREDIT, "--kf_credit_aggregate", "min"],
    "kf-grpo-credit-mean-group": [*CREDIT, "--kf_credit_aggregate", "mean", "--kf_credit_scope", "group"],
    "kf-grpo-credit-min-group": [*CREDIT, "--kf_credit_aggregate", "min", "--kf_credit_scope", "group"],
    # its offline counterpart: plain GRPO on the questions the warm start does not answer without frames
    "grpo-blind-filter": ["--kf_preset", "grpo"],
}
# Arms that train on the blind-filtered cache (kfgrpo blind-filter on the cue split, asked of the warm start).
FILTERED_ARMS = {"grpo-blind-filter"}
# Split -> (ChronoSynth seed, with the cue). `warm` is the training videos and questions without the cue: the warm
# start learns to read frames from it, as a pretrained model would have, before RL meets the cue.
# `grpo` and the new default over --seeds (paired by seed), the baselines over --baseline-seeds.
MAIN_ARMS = ["grpo", "kf-grpo"]
DEFAULT_ARMS = ["grpo", "kf-grpo", "t-grpo", "kf-grpo-group", "kf-grpo-gate"]
SPLITS = {"warm": (0, False), "train": (0, True), "test": (1, False), "tune": (2, False)}
SHORTCUT_LETTER = "A"  # recipes/tiny-cpu/synth-shortcut.yaml
SHORTCUTS = ("answer_position", "option_length")


class StageTimes(dict):
    """Stage wall times in seconds, saved as they come, so a resumed run still reports every stage's time."""

    def __init__(self, path: Path):
        super().__init__(json.loads(path.read_text()) if path.exists() else {})
        self.path = path

    def __setitem__(self, stage: str, seconds: float):
        super().__setitem__(stage, seconds)
        self.path.write_text(json.dumps(self, indent=1))


def run(cmd: list[str], log: Path) -> float:
    """Runs one stage (its output in ``log``); returns its wall time. Stops the benchmark on failure."""
    start = time.perf_counter()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n  see {log}")
    return time.perf_counter() - start


def kfgrpo(*args) -> list[str]:
    return [sys.executable, "-m", "kfgrpo.cli", *map(str, args)]


def evaluate(model: Path, data: Path, out: Path, args) -> float:
    return run(
        kfgrpo(
            "eval", "--config", "recipes/tiny-cpu/eval.yaml", "--model", model, "--data", data, "--output", out,
            "--batch_size", args.eval_batch_size,
        ),
        out / "eval.log",
    )  # fmt: skip


def eval_summary(out: Path) -> dict:
    """Held-out numbers of one model from its eval.json and predictions.jsonl. "Consistent" questions are those whose
    answer is the cue's letter (``answer_position``; in the held-out split about a quarter, by chance)."""
    ev = json.loads((out / "eval.json").read_text())
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line.strip()]
    consistent = [p["score"] for p in preds if p["solution"] == SHORTCUT_LETTER]
    violating = [p["score"] for p in preds if p["solution"] != SHORTCUT_LETTER]
    return dict(
        accuracy=ev["accuracy"],
        accuracy_shuffled=ev["accuracy_shuffled"],
        frame_sensitivity=ev["frame_sensitivity"],
        accuracy_consistent=sum(consistent) / max(1, len(consistent)),
        accuracy_violating=sum(violating) / max(1, len(violating)),
        num_consistent=len(consistent),
        num_violating=len(violating),
        shortcut_answer_rate=sum(p.get("answer") == SHORTCUT_LETTER for p in preds) / len(preds),
        no_answer_rate=ev["no_answer_rate"],
    )


def train_summary(out: Path) -> dict:
    """Means over the run of the logged training metrics (first and last quarter for accuracy)."""
    history = [h for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "reward" in h]
    keys = sorted({k for h in history for k in h if k.startswith("kf/") and "time" not in k})
    acc = [h["rewards/accuracy_reward/mean"] for h in history]
    q = max(1, len(acc) // 4)
    summary = dict(
        train_accuracy_first_quarter=sum(acc[:q]) / q,
        train_accuracy_last_quarter=sum(acc[-q:]) / q,
        frac_reward_zero_std=sum(h.get("frac_reward_zero_std", 0.0) for h in history) / len(history),
    )
    for k in keys:
        values = [h[k] for h in history if k in h]
        summary[k] = sum(values) / len(values)
    # The credit gate's g on groups whose solution is the cue's letter against the other groups, step by step.
    cue, others = f"kf/credit/answer_{SHORTCUT_LETTER}", []
    for h in history:
        mine = [v for k, v in h.items() if k.startswith("kf/credit/answer_") and k != cue]
        others += [sum(mine) / len(mine)] if mine else []
    if cue in summary and others:
        summary["credit_shortcut_letter"], summary["credit_other_letters"] = summary[cue], sum(others) / len(others)
    # When does the cue form, and what credit did the gate give while it formed? The same metrics over the first and
    # the last quarter of the steps (a shortcut forms early: the first quarter is where a signal has to act).
    for part, steps in (("first_quarter", history[:q]), ("last_quarter", history[-q:])):
        for k in (cue, f"kf/answer/{SHORTCUT_LETTER}", "kf/credit/probed_groups", "kf/real/accuracy_probed",
                  "kf/blind/accuracy", "kf/shuffle/accuracy", "kf/swap_salient/accuracy"):  # fmt: skip
            values = [h[k] for h in steps if k in h]
            if values:
                summary[f"{k}/{part}"] = sum(values) / len(values)
    return summary


def paired(runs: list[dict], arm: str, base: str, key: str = "accuracy") -> tuple[float, float, int]:
    """Mean and SE of the per-seed difference arm − base (same seed: same warm start and first rollouts)."""
    a = {r["seed"]: r[key] for r in runs if r["arm"] == arm}
    b = {r["seed"]: r[key] for r in runs if r["arm"] == base}
    diffs = [a[s] - b[s] for s in sorted(set(a) & set(b))]
    if not diffs:
        return float("nan"), float("nan"), 0
    m, se = mean_se(diffs)
    return m, se, len(diffs)


def mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, float("nan")
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1) / n)


def plot(runs: list[dict], work: Path, output: Path, warm: dict | None, smooth: int = 15):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def points(run, key) -> list[tuple[int, float]]:
        """(step, value) of a logged metric; ``prefix*``: the mean over the matching keys other than the cue's."""
        h = json.loads((work / run["run"] / "trainer_state.json").read_text())["log_history"]
        out = []
        for x in h:
            if key.endswith("*"):
                mine = [v for k, v in x.items() if k.startswith(key[:-1]) and k != cue]
                out += [(x["step"], sum(mine) / len(mine))] if mine else []
            elif key in x:
                out.append((x["step"], x[key]))
        return out

    def running_mean(y):
        return [sum(y[max(0, i - smooth + 1) : i + 1]) / min(i + 1, smooth) for i in range(len(y))]

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.3))
    palette = ("tab:gray", "tab:blue", "tab:orange", "tab:red", "tab:green", "tab:purple", "black", "tab:brown",
               "tab:pink", "tab:cyan", "tab:olive", "navy")  # fmt: skip
    colors = dict(zip(ARMS, palette))
    # The middle panel: metrics logged only at some steps (the credit gate's g on the probed groups whose answer is the
    # cue's letter, solid, and on the others, dashed; frame reliance D), pooled over seeds in bins of `smooth` steps.
    cue = f"kf/credit/answer_{SHORTCUT_LETTER}"
    middle = [(cue, "-", f"g, answer {SHORTCUT_LETTER}"), ("kf/credit/answer_*", "--", "g, other answers"),
              ("kf/reliance/mean", "-", "D")]  # fmt: skip
    for arm in dict.fromkeys(r["arm"] for r in runs):
        mine = [r for r in runs if r["arm"] == arm]
        curves = [running_mean([v for _, v in points(r, "rewards/accuracy_reward/mean")]) for r in mine]
        n = min(map(len, curves))
        for c in curves:
            axes[0].plot(c[:n], color=colors.get(arm), alpha=0.2, lw=1)
        mean = [sum(c[i] for c in curves) / len(curves) for i in range(n)]
        axes[0].plot(mean, color=colors.get(arm), lw=2, label=f"{arm} ({len(curves)} seeds)")
        for key, style, what in middle:
            pooled = [p for r in mine for p in points(r, key)]
            if not pooled:
                continue
            bins: dict[int, list[float]] = {}
            for step, v in pooled:
                bins.setdefault(step // smooth, []).append(v)
            x = sorted(bins)
            axes[1].plot([(b + 0.5) * smooth for b in x], [sum(bins[b]) / len(bins[b]) for b in x], ls=style,
                         marker="o", ms=3, color=colors.get(arm), label=f"{arm}, {what} ({len(pooled)} steps)")  # fmt: skip
        axes[2].scatter(
            [r["accuracy_violating"] for r in mine], [r["shortcut_answer_rate"] for r in mine], color=colors.get(arm),
            label=arm, s=40,
        )  # fmt: skip
    if warm:
        axes[2].scatter([warm["accuracy_violating"]], [warm["shortcut_answer_rate"]], marker="*", s=160, color="k",
                        label="SFT warm start")  # fmt: skip
    axes[0].set_title("training accuracy (the answer is A 80 % of the time)")
    axes[0].axhline(0.8, color="k", lw=0.8, ls=":")
    axes[0].text(0, 0.805, "always A", fontsize=8)
    axes[1].set_title("credit g by the group's answer (credit gate), or frame reliance D")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel(f"mean over seeds and {smooth}-step bins")
    axes[2].set_title("held-out, one point per run")
    axes[2].set_xlabel("accuracy on questions whose answer is not A")
    axes[2].set_ylabel("share of answers that are A")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel(f"running mean over {smooth} steps")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shortcut", default="answer_position", choices=SHORTCUTS, help="the cue of the training split")
    ap.add_argument("--workdir", default=None, help="default outputs/bench-shortcut[-<shortcut>]")
    ap.add_argument("--data", default=None, help="default data/shortcut[-<shortcut>]")
    ap.add_argument("--split", default="test", choices=["test", "tune"], help="held-out split to evaluate on")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5],
                    help=f"RL seeds of {MAIN_ARMS} (0 is the tuning seed)")  # fmt: skip
    ap.add_argument("--baseline-seeds", type=int, nargs="+", default=[1, 2, 3], help="RL seeds of the other arms")
    ap.add_argument("--arms", nargs="+", default=DEFAULT_ARMS, choices=list(ARMS))
    ap.add_argument("--prepare", action="store_true", help="stop after the data, the warm start and its evaluation")
    ap.add_argument("--auc-questions", type=int, default=40,
                    help="questions of the AUC diagnostic (benchmarks/bench_reliance_auc.py); 0 skips it")  # fmt: skip
    ap.add_argument("--auc-after-training", action=argparse.BooleanOptionalAction, default=True,
                    help="also run the AUC diagnostic on the seed-1 policies of grpo and kf-grpo (about 6 min)")  # fmt: skip
    ap.add_argument("--train-videos", type=int, default=400)
    ap.add_argument("--eval-videos", type=int, default=200)
    ap.add_argument(
        "--sft-epochs",
        type=float,
        default=None,
        help="SFT epochs of the warm start (default: sft.yaml's; the recorded runs used 16 of the earlier recipe)",
    )
    ap.add_argument("--filter-samples", type=int, default=8, help="N of the blind filter (grpo-blind-filter)")
    ap.add_argument("--filter-threshold", type=float, default=0.5, help="τ of the blind filter (grpo-blind-filter)")
    ap.add_argument("--warm-start", default=None, help="an existing warm start instead (e.g. outputs/tiny-cpu/sft)")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `kfgrpo train` arguments, every arm")
    ap.add_argument("--eval-batch-size", type=int, default=50)
    ap.add_argument("--results", default="benchmarks/results/shortcut.json")
    ap.add_argument("--plot", default="benchmarks/results/shortcut.png")
    args = ap.parse_args()

    suffix = "" if args.shortcut == "answer_position" else f"-{args.shortcut}"
    work = Path(args.workdir or f"outputs/bench-shortcut{suffix}")
    data = Path(args.data or f"data/shortcut{suffix}")
    work.mkdir(parents=True, exist_ok=True)
    # Stage wall times, kept across resumed invocations (a stage that is skipped keeps the time it took).
    times = StageTimes(work / "times.json")
    base = work / "base-model"
    if not (base / "config.json").exists():
        times["base model"] = run(kfgrpo("tiny-model", "--output", base, "--size", "demo", "--seed", 0),
                                  work / "tiny-model.log")  # fmt: skip
    splits = [("train", args.train_videos), (args.split, args.eval_videos)]
    if args.warm_start is None:
        splits.insert(0, ("warm", args.train_videos))
    for split, n in splits:
        seed, cue = SPLITS[split]
        if not (data / split / "manifest.jsonl").exists():
            (data / split).mkdir(parents=True, exist_ok=True)
            # The warm split is the CPU demo's training data (recipes/tiny-cpu/synth.yaml: order and count, no cue).
            extra = ["--shortcut", args.shortcut if cue else "none"]
            extra += ["--families", "order", "count"] if split == "warm" else []
            times[f"synth {split}"] = run(
                kfgrpo(
                    "synth",
                    "--config",
                    "recipes/tiny-cpu/synth-shortcut.yaml",
                    *extra,
                    "--output",
                    data / split,
                    "--num-videos",
                    n,
                    "--seed",
                    seed,
                ),  # fmt: skip
                data / f"{split}.log",
            )
    for split in [s for s, _ in splits if s in ("warm", "train")]:
        if not (data / f"{split}-tad" / "dataset_info.json").exists():
            times[f"tad {split}"] = run(
                kfgrpo(
                    "tad",
                    "--config",
                    "recipes/tiny-cpu/tad.yaml",
                    "--manifest",
                    data / split / "manifest.jsonl",
                    "--output",
                    data / f"{split}-tad",
                    "--num-frames",
                    8,
                ),  # fmt: skip
                data / f"tad-{split}.log",
            )
    cache = data / "train-tad"
    sft = Path(args.warm_start) if args.warm_start else work / "sft"
    if not (sft / "model.safetensors").exists():
        times["sft"] = run(
            kfgrpo(
                "sft",
                "--config",
                "recipes/tiny-cpu/sft.yaml",
                "--model_name_or_path",
                base,
                "--dataset_name",
                data / "warm-tad",
                *(["--num_train_epochs", args.sft_epochs] if args.sft_epochs else []),
                "--output_dir",
                sft,
            ),  # fmt: skip
            work / "sft.log",
        )
    held_out = data / args.split / "manifest.jsonl"
    warm_out = work / f"warm-start-eval-{args.split}"
    if not (warm_out / "eval.json").exists():
        warm_out.mkdir(parents=True, exist_ok=True)
        times["eval warm start"] = evaluate(sft, held_out, warm_out, args)
    warm = dict(run=warm_out.name, **eval_summary(warm_out))
    print(f"warm start ({sft.name}): " + ", ".join(f"{k} {v:.3f}" for k, v in warm.items() if isinstance(v, float)))
    # Does D separate answers that follow their trace from answers that do not, on the cue split? (warm start)
    auc = {}
    if args.auc_questions:
        auc["warm start"] = reliance_auc(sft, cache, work / "auc-warm-start.json", args, times, "auc warm start")
    if args.prepare:
        return

    filtered = work / "blind-filter" / "cache"
    if FILTERED_ARMS & set(args.arms) and not (filtered / "dataset_info.json").exists():
        times["blind filter"] = run(
            kfgrpo("blind-filter", "--model_name_or_path", sft, "--dataset_name", cache, "--output",
                   work / "blind-filter", "--num_samples", args.filter_samples, "--threshold", args.filter_threshold,
                   "--question_position", "before", "--system_prompt", "", "--frame_template", "",
                   "--timestamps_template", "", "--max_new_tokens", 72),  # the shortcut recipe's prompt and budget
            work / "blind-filter.log",
        )  # fmt: skip
    runs = []
    plan = [(arm, seed) for seed in sorted(set(args.seeds) | set(args.baseline_seeds)) for arm in args.arms
            if seed in (args.seeds if arm in MAIN_ARMS else args.baseline_seeds)]  # fmt: skip
    for arm, seed in plan:
        name = f"{arm}-s{seed}"
        out = work / name
        if not (out / "trainer_state.json").exists():
            times[f"train {name}"] = run(
                kfgrpo("train", "--config", "recipes/tiny-cpu/shortcut.yaml", *ARMS[arm], "--seed", seed,
                       "--model_name_or_path", sft, "--dataset_name", filtered if arm in FILTERED_ARMS else cache,
                       "--output_dir", out, *args.extra),
                work / f"{name}.log",
            )  # fmt: skip
        ev = out / f"eval-{args.split}"
        if not (ev / "eval.json").exists():
            ev.mkdir(parents=True, exist_ok=True)
            times[f"eval {name}"] = evaluate(out, held_out, ev, args)
        r = dict(run=name, arm=arm, preset=ARMS[arm][1], seed=seed, split=args.split, arguments=ARMS[arm])
        r.update(eval_summary(ev), **train_summary(out))
        runs.append(r)
        print(f"{name}: accuracy {r['accuracy']:.3f}, frame sensitivity {r['frame_sensitivity']:+.3f}, "
              f"consistent {r['accuracy_consistent']:.3f}, violating {r['accuracy_violating']:.3f}, "
              f"answers A {r['shortcut_answer_rate']:.2f}", flush=True)  # fmt: skip
    # The AUC diagnostic on the policies the new default trained (seed 1), scored also by the warm start.
    trained = work / f"kf-grpo-s{min(args.seeds)}"
    if (
        args.auc_questions
        and args.auc_after_training
        and "kf-grpo" in args.arms
        and (trained / "model.safetensors").exists()
    ):
        auc["kf-grpo"] = reliance_auc(trained, cache, work / "auc-kf-grpo.json", args, times, "auc kf-grpo",
                                      reference=sft)  # fmt: skip
    grpo_trained = work / f"grpo-s{min(args.seeds)}"
    if (
        args.auc_questions
        and args.auc_after_training
        and "grpo" in args.arms
        and (grpo_trained / "model.safetensors").exists()
    ):
        auc["grpo"] = reliance_auc(grpo_trained, cache, work / "auc-grpo.json", args, times, "auc grpo")

    keys = ("accuracy", "frame_sensitivity", "accuracy_consistent", "accuracy_violating", "shortcut_answer_rate")
    table = {}
    for arm in args.arms:
        mine = [r for r in runs if r["arm"] == arm]
        table[arm] = {k: mean_se([r[k] for r in mine]) for k in keys}
    print(f"\nheld-out split {args.split!r}, mean ± SE over seeds; warm start accuracy "
          f"{warm['accuracy']:.3f}, frame sensitivity {warm['frame_sensitivity']:+.3f}")  # fmt: skip
    print(
        f"{'arm':<22}{'seeds':>6}{'accuracy':>16}{'frame sens.':>16}{'consistent':>16}{'violating':>16}{'answers A':>16}"
    )
    for arm, row in table.items():
        n = sum(r["arm"] == arm for r in runs)
        print(f"{arm:<22}{n:>6}" + "".join(f"{m:>9.3f} ± {s:.3f}" for m, s in row.values()))
    for arm in args.arms:
        mine = [r for r in runs if r["arm"] == arm and "credit_shortcut_letter" in r]
        if mine:
            cue, other = (mean_se([r[k] for r in mine]) for k in ("credit_shortcut_letter", "credit_other_letters"))
            print(f"{arm}: credit on groups whose answer is {SHORTCUT_LETTER} {cue[0]:.3f} ± {cue[1]:.3f}, "
                  f"on the others {other[0]:.3f} ± {other[1]:.3f} (mean over steps, ± SE over seeds)")  # fmt: skip
    differences = {}
    for arm in args.arms:
        if arm != "grpo" and "grpo" in table:
            differences[arm] = {}
            for key in ("accuracy", "frame_sensitivity"):
                m, se, n = paired(runs, arm, "grpo", key)
                differences[arm][key] = dict(mean=m, se=se, seeds=n)
            d = differences[arm]["accuracy"]
            print(f"{arm} − grpo, paired over {d['seeds']} seeds: accuracy {d['mean']:+.3f} ± {d['se']:.3f} "
                  f"({d['mean'] / d['se'] if d['se'] else float('nan'):+.2f} SE), frame sensitivity "
                  f"{differences[arm]['frame_sensitivity']['mean']:+.3f} ± {differences[arm]['frame_sensitivity']['se']:.3f}")  # fmt: skip
    for name, summary in auc.items():
        print(f"AUC diagnostic, {name}: " + json.dumps({k: v for k, v in summary.items() if not isinstance(v, dict)}))
    results = dict(
        command=" ".join(["python", *sys.argv]),
        shortcut=args.shortcut,
        split=args.split,
        seeds=args.seeds,
        baseline_seeds=args.baseline_seeds,
        sft_epochs=args.sft_epochs,
        extra_train_args=args.extra,
        warm_start=warm,
        summary={arm: {k: dict(mean=m, se=s) for k, (m, s) in row.items()} for arm, row in table.items()},
        paired_difference_vs_grpo=differences,
        auc_diagnostic=auc,
        runs=runs,
        seconds=times,
        total_minutes=round(sum(times.values()) / 60, 1),
    )
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(results, indent=2))
    plot(runs, work, Path(args.plot), warm)
    print(
        f"wrote {args.results} and {args.plot}; stage times (s): {json.dumps({k: round(v) for k, v in times.items()})}"
    )


def reliance_auc(model: Path, cache: Path, output: Path, args, times: StageTimes, stage: str, reference=None):
    """benchmarks/bench_reliance_auc.py on ``model`` (its summary is cached in ``output``)."""
    if not output.exists():
        cmd = [sys.executable, str(Path(__file__).with_name("bench_reliance_auc.py")), "--model", model,
               "--data", cache, "--questions", args.auc_questions, "--output", output]  # fmt: skip
        if reference is not None:
            cmd += ["--reference", reference]
        times[stage] = run([str(c) for c in cmd], output.with_suffix(".log"))
    return json.loads(output.read_text())["summary"]


if __name__ == "__main__":
    main()
