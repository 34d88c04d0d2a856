"""``kfgrpo blind-filter``: drop the training questions a model answers without their frames.

A question the policy answers right from its text alone (a prior, an answer cue, an option that gives itself away)
teaches GRPO to reinforce that answer whether the policy read the frames or not. Asked every Video-R1-260k question
without its video, a text-only model answered 30.9 % right, and plain GRPO on the rest beat several RL rules that add
rewards ("Watch Before You Answer", 2026). This is that filter, offline, as a counterpart of the online credit gate
(``kf_reward: credit`` with the ``blind`` probe): the model (the warm start) answers each question of a TAD cache
``num_samples`` times with no frame (the ``blind`` probe's prompt: the question alone, the prompt layout the recipe
trains with), sampled at ``temperature``, scored by the accuracy reward; a question answered right at least
``threshold`` of the time is dropped.

Writes to ``output``: the kept question rows as a TAD cache (the frame table, when the cache has one, is linked, not
copied: frames are stored once), ``blind_accuracy.jsonl`` (one line per question: its id, blind accuracy and the
answers; appended in whole lines, so an interrupted run resumes where it stopped) and ``blind_filter.json`` (counts,
arguments). Down-weighting instead of dropping is left to the user: the blind accuracy of every kept row is in the
jsonl.

    kfgrpo blind-filter --model_name_or_path outputs/tiny-cpu/sft --dataset_name data/chronosynth/train-tad \\
        --output data/chronosynth/blind-filtered --num_samples 8 --threshold 0.5 \\
        --question_position before --system_prompt "" --frame_template "" --timestamps_template ""

(the prompt flags as the training recipe sets them: the model is asked as it will be trained).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class BlindFilterArguments:
    output: str = field(metadata={"help": "Folder for the kept rows (a TAD cache) and the per-question results."})
    num_samples: int = field(default=8, metadata={"help": "N: answers sampled per question without its frames."})
    threshold: float = field(
        default=0.5,
        metadata={"help": "τ: a question answered right without frames in at least this share of N is dropped."},
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the blind answers."})
    max_new_tokens: int = field(default=128, metadata={"help": "Token budget of each blind answer."})
    batch_size: int = field(default=8, metadata={"help": "Questions per generate call (each sampled N times)."})
    filter_seed: int = field(default=0, metadata={"help": "Seed of the sampling."})

    def __post_init__(self):
        if self.num_samples < 1:
            raise ValueError("num_samples must be >= 1")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")


def blind_accuracy(model, processor, rows, args: BlindFilterArguments) -> list[dict]:
    """Per row: the share of ``num_samples`` sampled answers without frames that the accuracy reward scores right."""
    import torch

    from .probes import probe_prompt
    from .rewards import accuracy_reward

    conversations = [probe_prompt(row["prompt"], []) for row in rows]
    inputs = processor.apply_chat_template(
        conversations, tokenize=True, return_dict=True, add_generation_prompt=True, return_tensors="pt",
        processor_kwargs={"padding": True},
    ).to(model.device)  # fmt: skip
    with torch.inference_mode():
        ids = model.generate(
            **inputs, max_new_tokens=args.max_new_tokens, do_sample=True, temperature=args.temperature,
            num_return_sequences=args.num_samples,
        )  # fmt: skip
    texts = processor.batch_decode(ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    n = args.num_samples
    out = []
    for i, row in enumerate(rows):
        answers = texts[i * n : (i + 1) * n]
        scores = accuracy_reward(
            [[{"role": "assistant", "content": t}] for t in answers],
            solution=[row["solution"]] * n,
            problem_type=[row.get("problem_type")] * n,
            options=[row.get("options")] * n,
        )
        right = [float(s or 0.0) for s in scores]
        out.append(dict(id=row["id"], blind_accuracy=sum(right) / n, answers=answers))
    return out


def run(args: BlindFilterArguments, script_args, model_args) -> dict:
    import datasets
    import torch

    from .cache import frame_join_of, load_tad_dataset
    from .data_utils import to_grpo_dataset
    from .files import append_lines, read_jsonl, write_json
    from .model_utils import load_model, load_processor

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "blind_accuracy.jsonl"
    done = {r["id"]: r for r in read_jsonl(results_path, repair=True)}  # a rerun resumes
    cache = Path(script_args.dataset_name)
    rows = to_grpo_dataset(load_tad_dataset(cache), script_args)
    # the question text only: no frame is decoded (joined from the frame table, or stored in the row)
    text = rows.with_format(None) if frame_join_of(rows) is not None else rows
    text = text.remove_columns([c for c in text.column_names if c in ("images", "distractor_images")])
    todo = [i for i, rid in enumerate(text["id"]) if rid not in done]
    if todo:
        torch.manual_seed(args.filter_seed)
        model, processor = load_model(model_args), load_processor(model_args)
        if torch.cuda.is_available():
            model = model.to("cuda")
        from tqdm import tqdm

        for start in tqdm(range(0, len(todo), args.batch_size), desc="blind answers", file=sys.stderr):
            batch = [text[i] for i in todo[start : start + args.batch_size]]
            records = blind_accuracy(model, processor, batch, args)
            append_lines(results_path, [json.dumps(r) for r in records])
            done.update((r["id"], r) for r in records)
    keep = [i for i, rid in enumerate(text["id"]) if done[rid]["blind_accuracy"] < args.threshold]
    questions = datasets.load_from_disk(str(cache)).select(keep)
    target = out / "cache"
    questions.save_to_disk(str(target))
    if (cache / "frames").is_dir() and not (target / "frames").exists():
        os.symlink((cache / "frames").resolve(), target / "frames")  # frames stored once
    summary = dict(
        questions=len(text), kept=len(keep), dropped=len(text) - len(keep),
        mean_blind_accuracy=sum(r["blind_accuracy"] for r in done.values()) / max(len(done), 1),
        cache=str(target), arguments=asdict(args), model=model_args.model_name_or_path,
        dataset=str(cache),
    )  # fmt: skip
    write_json(out / "blind_filter.json", summary, indent=1)
    return summary


def cli(argv: list[str]) -> int:
    from .data_utils import KFScriptArguments
    from .errors import make_parser, parse_args
    from .model_utils import KFModelConfig

    parser = make_parser((BlindFilterArguments, KFScriptArguments, KFModelConfig), "kfgrpo blind-filter")
    args, script_args, model_args = parse_args(parser, argv)
    summary = run(args, script_args, model_args)
    print(
        f"{summary['dropped']} of {summary['questions']} questions answered right without frames in >= "
        f"{args.threshold:.0%} of {args.num_samples} samples (dropped); {summary['kept']} kept -> {summary['cache']}"
    )
    return 0
