"""``kfgrpo sft --config RECIPE.yaml``: a supervised warm start with TRL's ``SFTTrainer`` before KF-GRPO.

Video-R1 and FrameThinker start RL from an SFT checkpoint; a model trained from random weights (the CPU demo) needs
one too, because RL only sharpens behaviour the model already produces sometimes. Rows are the same TAD cache rows
as for training, turned into prompt-completion pairs (loss on the completion only):

* ``sft_target: reasoning`` — ``<think>{objects seen in the keyframes, in order}.</think><answer>{solution}</answer>``
  for rows that carry ChronoSynth's ground truth (``events``); the trace names what the *selected* keyframes show,
  so it never mentions an object the model cannot see. Rows without ``events`` get the answer-only target.
* ``sft_target: answer`` — ``<think>.</think><answer>{solution}</answer>``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field

from trl import SFTConfig, SFTTrainer, TrlParser

from .data_utils import KFScriptArguments, load_keyframe_dataset, to_grpo_dataset
from .model_utils import KFModelConfig, freeze_vision_modules


@dataclass
class SFTScriptArguments(KFScriptArguments):
    sft_target: str = field(
        default="reasoning", metadata={"help": "Completion to learn: `reasoning` (ChronoSynth trace) or `answer`."}
    )
    trace_detail: str = field(
        default="color", metadata={"help": "Objects in the trace named by `color` or by `name` (colour + shape)."}
    )
    trace_format: str = field(
        default="objects",
        metadata={
            "help": "`objects`: the distinct objects the keyframes show, in order (`red, then blue`); `frames`: what "
            "each keyframe shows, numbered (`1 none, 2 red, ...`), which matches a `frame_template` such as "
            "`Frame {index}:`; `tally`: what each keyframe shows and how many objects have appeared so far "
            "(` none 0, red 1, red 1, blue 2,`), then for `first` / `last` questions the object meant and one check "
            "per option (` first red, so A blue red no, B red red yes, ...`)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.sft_target not in ("reasoning", "answer"):
            raise ValueError("sft_target must be `reasoning` or `answer`")
        if self.trace_detail not in ("color", "name"):
            raise ValueError("trace_detail must be `color` or `name`")
        if self.trace_format not in ("objects", "frames", "tally"):
            raise ValueError("trace_format must be `objects`, `frames` or `tally`")


def _visible(events, t: float, detail: str) -> list[str]:
    """Names of the objects on screen at time ``t`` (event start <= t <= end)."""
    return [
        e["name"].split(" ")[0] if detail == "color" else e["name"]
        for e in events or []
        if e["start"] - 1e-6 <= t <= e["end"] + 1e-6
    ]


def keyframe_trace(events, timestamps, detail: str = "color") -> str:
    """The objects visible in the keyframes, in order of first appearance."""
    seen = []
    for t in timestamps or []:
        seen += [name for name in _visible(events, t, detail) if name not in seen]
    return ", then ".join(seen) if seen else "nothing"


def frame_trace(events, timestamps, detail: str = "color") -> str:
    """What each keyframe shows, numbered from 1: ``1 none, 2 red, 3 red, 4 blue``."""
    items = []
    for i, t in enumerate(timestamps or []):
        names = _visible(events, t, detail)
        items.append(f"{i + 1} {names[0] if names else 'none'}")
    return ", ".join(items)


def tally_trace(events, timestamps, detail: str = "color", problem: str = "", options=None) -> str:
    """Per keyframe, what it shows and how many objects have appeared so far: `` none 0, red 1, red 1, blue 2,``.

    One step per frame, each the same number of tokens with the tiny tokenizer (colours are single tokens), so step i
    lies at a fixed distance from frame i when the question precedes the frames (``question_position: before``). The
    running count makes counting one local step per frame: it grows when a frame shows an object the previous frame
    did not (ChronoSynth objects never return). A question about the ``first`` / ``last`` object ends with that object
    and one check per option: its letter, the colour it names, the object sought, yes or no
    (`` first red, so A blue red no, B red red yes, ...``). A check is as long as an option line (5 tokens), so it
    too copies its option from a fixed distance and compares two adjacent tokens; the answer copies the letter marked
    ``yes``. (Looking a colour up among the options in one step, the tiny model stayed at chance.)
    """
    steps, count, previous, seen = [], 0, None, []
    for t in timestamps or []:
        names = _visible(events, t, detail)
        shown = names[0] if names else None
        if shown is not None and shown != previous:
            count += 1
            seen.append(shown)
        previous = shown
        steps.append(f" {shown or 'none'} {count},")
    trace = "".join(steps)
    words = set(re.findall(r"[a-z]+", (problem or "").lower()))
    for which, index in (("first", 0), ("last", -1)):
        if which in words:
            target = seen[index] if seen else "none"
            checks = []
            for option in options or []:
                letter, _, text = str(option).partition(". ")
                named = text if detail == "name" else text.split(" ")[0]
                checks.append(f" {letter} {named} {target} {'yes' if named == target else 'no'}")
            trace += f" {which} {target}, so" + ",".join(checks)
            break
    return trace


def sft_completion(row: dict, args: SFTScriptArguments) -> list[dict]:
    if args.sft_target == "reasoning" and row.get("events") is not None:
        if args.trace_format == "tally":
            think = tally_trace(
                row["events"], row.get("timestamps"), args.trace_detail, row.get("problem", ""), row.get("options")
            )
        else:
            trace = frame_trace if args.trace_format == "frames" else keyframe_trace
            think = trace(row["events"], row.get("timestamps"), args.trace_detail) + "."
    else:
        think = "."
    return [{"role": "assistant", "content": f"<think>{think}</think><answer>{row['solution']}</answer>"}]


def make_parser() -> TrlParser:
    return TrlParser((SFTScriptArguments, SFTConfig, KFModelConfig))


def main(script_args: SFTScriptArguments, training_args: SFTConfig, model_args: KFModelConfig):
    if script_args.dry_run:
        print(
            json.dumps(
                dict(
                    script=dataclasses.asdict(script_args),
                    model=dataclasses.asdict(model_args),
                    training=json.loads(training_args.to_json_string()),
                ),
                indent=2,
                default=str,
            )
        )
        return None
    from transformers.trainer_utils import get_last_checkpoint
    from trl import get_peft_config

    training_args.model_init_kwargs = {
        **(training_args.model_init_kwargs or {}),
        "dtype": model_args.dtype,
        "revision": model_args.model_revision,
    }
    data = load_keyframe_dataset(script_args)
    cols = [c for c in ("solution", "events", "timestamps", "problem", "options") if c in data.column_names]
    data = to_grpo_dataset(data, script_args)
    data = data.map(
        lambda *v: {"completion": sft_completion(dict(zip(cols, v)), script_args)}, input_columns=cols, desc="targets"
    )
    data = data.remove_columns([c for c in data.column_names if c not in ("prompt", "completion", "images")])
    trainer = SFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=data,
        peft_config=get_peft_config(model_args),
    )
    if model_args.freeze_vision_modules:
        freeze_vision_modules(trainer.model)
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and os.path.isdir(training_args.output_dir):
        checkpoint = get_last_checkpoint(training_args.output_dir)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.log_metrics("train", result.metrics)
    trainer.save_state()
    trainer.save_model(training_args.output_dir)
    return trainer


def cli(argv: list[str] | None = None):
    script_args, training_args, model_args = make_parser().parse_args_and_config(args=argv)
    return main(script_args, training_args, model_args)
