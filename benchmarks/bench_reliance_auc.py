"""Does per-completion frame reliance D target a frame-free shortcut? The AUC diagnostic on ChronoSynth.

ChronoSynth's tally traces are parseable: a completion for an ``order`` question reads each keyframe, then checks
every option (`` blue red no none, red red yes B, white red no B, ...``: the match, then the answer so far; traces
of earlier warm starts wrote `` A blue red none, B red red B`` or marked the match `` B red red yes``) and answers. Each sampled completion is labelled

* *correct*: its answer is the solution;
* *follows its trace*: its answer is the option its own trace chooses (the shortcut acts by breaking this
  link: the answer says A while the trace says B);
* *trace right*: the option its trace chooses is the solution (the frames were read correctly).

and scored with the trainer's own machinery (``KFGRPOTrainer``, the recipe's probes): D_i from teacher-forced
log-probs under the real and the perturbed keyframes, the real-frame log-likelihood, eligibility and the centred
rank the ``rank`` reward pays. Reports the AUC of D for each label (Mann-Whitney U / n₁n₂; 0.5 = no separation),
the share of groups with at least two *distinct* right answers (what a within-group ranking can rank), the spread of
D among a group's right answers, and the quantiles of the real-frame log-likelihood (the likelihood floor's scale).
With ``--reference MODEL`` it also scores the same completions under that model (e.g. the warm start), which says
whether a trained policy became more fragile to the probes than its reference.

    python benchmarks/bench_reliance_auc.py --model outputs/tiny-cpu/sft --data data/shortcut/train-tad \\
        [--questions 40] [--generations 8] [--reference outputs/tiny-cpu/sft] [--output results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

YES = re.compile(r"(?<![A-Za-z])([A-J]) \S+ \S+ yes\b")  # `` B red red yes``: earlier warm starts' checks
CARRY = re.compile(r"(?<![A-Za-z])[A-J] \S+ \S+ ([A-J]|none)(?![A-Za-z])")  # `` B red red B``: the answer so far
MATCH = re.compile(r"\S+ \S+ (?:yes|no) ([A-J]|none)(?![A-Za-z])")  # `` red red yes B``: the match, the answer so far


def marked_option(think: str) -> str | None:
    """The option a tally trace's checks choose: the last check's answer so far, or the one marked ``yes``."""
    carried = MATCH.findall(think)
    if carried:
        return carried[-1] if carried[-1] != "none" else None
    yes = YES.findall(think)
    if yes:
        return yes[0] if len(yes) == 1 else None
    carried = CARRY.findall(think)
    return carried[-1] if carried and carried[-1] != "none" else None


def build_trainer(model: str, data: str, recipe: str, generations: int, batch_questions: int, extra: list[str]):
    from kfgrpo.data_utils import load_keyframe_dataset, to_grpo_dataset
    from kfgrpo.model_utils import model_init_kwargs, parse_recipe
    from kfgrpo.rewards import get_reward_funcs
    from kfgrpo.train import make_parser
    from kfgrpo.trainer import KFGRPOTrainer

    argv = ["--config", recipe, "--model_name_or_path", model, "--dataset_name", data,
            "--output_dir", tempfile.mkdtemp(prefix="kfgrpo-auc-"), "--num_generations", str(generations),
            "--per_device_train_batch_size", str(generations * batch_questions), "--kf_preset", "kf-grpo",
            "--kf_reward", "rank", *extra]  # fmt: skip
    script_args, training_args, model_args = parse_recipe(make_parser(), argv)
    training_args.model_init_kwargs = {**(training_args.model_init_kwargs or {}), **model_init_kwargs(model_args)}
    train = to_grpo_dataset(load_keyframe_dataset(script_args), script_args)
    trainer = KFGRPOTrainer(
        model=model, reward_funcs=get_reward_funcs(script_args.reward_funcs, training_args), args=training_args,
        train_dataset=train,
    )  # fmt: skip
    trainer.model.train()  # probes run in training mode only; the tiny model has no dropout
    return trainer, train


def auc(scores: list[float], labels: list[bool]) -> float:
    from scipy.stats import mannwhitneyu

    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return float("nan")
    return float(mannwhitneyu(pos, neg).statistic) / (len(pos) * len(neg))


def label(text: str, solution: str, options) -> dict:
    from kfgrpo.rewards.accuracy import extract_answer, extract_choice

    answer = extract_choice(extract_answer(text), options)
    think = text.split("</think>")[0]
    marked = marked_option(think)
    return dict(
        answer=answer,
        correct=answer == solution,
        follows=marked is not None and answer == marked,
        trace_right=marked == solution,
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default="data/shortcut/train-tad", help="a TAD cache of ChronoSynth order questions")
    ap.add_argument("--recipe", default="recipes/tiny-cpu/shortcut.yaml")
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--batch-questions", type=int, default=4)
    ap.add_argument("--reference", default=None, help="also score the completions under this model")
    ap.add_argument("--output", default=None, help="write the summary (and every completion's scores) as JSON")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="more `kfgrpo train` arguments (after --)")
    args = ap.parse_args(argv)
    extra = [a for a in args.extra if a != "--"] + ["--seed", str(args.seed)]

    from transformers import set_seed

    from kfgrpo.rewards.utils import completion_text

    trainer, train = build_trainer(args.model, args.data, args.recipe, args.generations, args.batch_questions, extra)
    reference = None
    if args.reference:
        reference, _ = build_trainer(args.reference, args.data, args.recipe, args.generations, 1, extra)
    set_seed(args.seed)
    g, records, groups = args.generations, [], []
    questions = [i for i in range(len(train)) if train[i]["problem_type"] == "multiple_choice"][: args.questions]
    for start in range(0, len(questions), args.batch_questions):
        rows = [train[i] for i in questions[start : start + args.batch_questions] for _ in range(g)]
        out = trainer._generate_and_score_completions(rows)
        completions = list(trainer._logs["completion"])[-len(rows) :]
        scores = trainer.kf_last_batch.derived  # the rule's reliance, eligibility and centred ranks
        targets = [ids[m.bool()].tolist() for ids, m in zip(out["completion_ids"], out["completion_mask"])]
        every = reliance_of_all(trainer, rows, targets)  # D of every completion, right or wrong
        ref_d = reliance_of_all(reference, rows, targets, frames_from=trainer) if reference is not None else None
        for i, (row, completion) in enumerate(zip(rows, completions)):
            text = completion_text(completion)
            rec = dict(
                id=row["id"], text=text, solution=row["solution"], **label(text, row["solution"], row["options"])
            )
            rec.update(
                reliance=every["reliance"][i],
                real_logp=every["real_logp"][i],
                eligible=bool(scores["eligible"][i]),
                centred=scores["centred"][i].item(),
                per_probe=every["per_probe"][i],
            )
            if ref_d is not None:
                rec["reference_reliance"] = ref_d["reliance"][i]
            records.append(rec)
        for k in range(0, len(rows), g):
            groups.append(records[-len(rows) + k : len(records) - len(rows) + k + g])
        print(f"{len(records)} completions scored", file=sys.stderr, flush=True)
    summary = summarize(records, groups, trainer.args.kf_probes, trainer.args.kf_likelihood_floor)
    print(json.dumps(summary, indent=1))
    if args.output:
        with open(args.output, "w") as fh:
            json.dump(
                dict(command=" ".join(["python", *sys.argv]), summary=summary, completions=records), fh, indent=1
            )
    return summary


def reliance_of_all(scorer, rows, targets, frames_from=None) -> dict:
    """D (and its per-probe parts and the real-frame log-likelihood) of every completion, scored by ``scorer``'s
    model with the probes of ``frames_from`` (default: the scorer's own), whatever their accuracy."""
    import torch

    from kfgrpo.rewards.reliance import combine_probes

    g = scorer.num_generations
    frames, gap = (frames_from or scorer)._kf_probe_sets(rows[::g])
    need = torch.ones(len(rows), dtype=torch.bool)
    per_probe, real_logp = scorer._kf_completion_reliance(rows, frames, targets, need)
    args = scorer.args
    d = combine_probes(per_probe, args.kf_probe_bonus, gap.repeat_interleave(g, dim=0), args.kf_saliency_weight)
    return dict(reliance=d.tolist(), per_probe=per_probe.tolist(), real_logp=real_logp.tolist())


def summarize(records, groups, probes, floor: float) -> dict:
    d = [r["reliance"] for r in records]
    right = [r for r in records if r["correct"]]
    out = dict(
        completions=len(records),
        groups=len(groups),
        probes=list(probes),
        accuracy=sum(r["correct"] for r in records) / len(records),
        follows_rate=sum(r["follows"] for r in records) / len(records),
        wrong_with_right_trace=sum(r["trace_right"] and not r["correct"] for r in records),
        wrong=sum(not r["correct"] for r in records),
        auc_correct=auc(d, [r["correct"] for r in records]),
        auc_follows_among_right=auc([r["reliance"] for r in right], [r["follows"] for r in right]),
        right_follows=sum(r["follows"] for r in right),
        right_not_follows=sum(not r["follows"] for r in right),
        auc_trace_right=auc(d, [r["trace_right"] for r in records]),
        auc_follows=auc(d, [r["follows"] for r in records]),
    )
    distinct = [len({r["text"] for r in grp if r["correct"]}) for grp in groups]
    out["groups_with_two_distinct_right"] = sum(n >= 2 for n in distinct) / len(groups)
    spreads = []
    for grp in groups:
        vals = [r["reliance"] for r in grp if r["correct"]]
        if len(vals) >= 2:
            spreads.append(max(vals) - min(vals))
    out["right_reliance_spread_median"] = statistics.median(spreads) if spreads else float("nan")
    out["right_reliance_spread_p90"] = sorted(spreads)[int(0.9 * (len(spreads) - 1))] if spreads else float("nan")
    out["ranked_groups"] = sum(any(r["centred"] != 0 for r in grp) for grp in groups) / len(groups)
    lp = sorted(r["real_logp"] for r in records)
    out["real_logp_quantiles"] = {q: lp[int(q * (len(lp) - 1))] for q in (0.01, 0.05, 0.5, 0.95)}
    out["right_below_likelihood_floor"] = sum(r["correct"] and r["real_logp"] < floor for r in records)
    if "reference_reliance" in records[0]:
        ref = [r["reference_reliance"] for r in records]
        out["reliance_mean_policy"] = sum(d) / len(d)
        out["reliance_mean_reference"] = sum(ref) / len(ref)
        out["auc_follows_among_right_reference"] = auc(
            [r["reference_reliance"] for r in right], [r["follows"] for r in right]
        )
    return out


if __name__ == "__main__":
    main()
