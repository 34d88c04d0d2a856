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

import sys
from dataclasses import dataclass, field

from trl import SFTConfig, SFTTrainer, TrlParser

from . import model_utils
from .cache import frame_join_of, map_text
from .chronosynth.traces import frame_trace, keyframe_trace, tally_trace
from .data_utils import KFScriptArguments, load_keyframe_dataset, permute_options, to_grpo_dataset
from .model_utils import KFModelConfig


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
            "`Frame {index}:`; `tally`: per keyframe what it shows, whether it is a new object and how many have "
            "appeared so far (` none no 0 red yes 1 red no 1 blue yes 2`), then for `first` / `last` questions the "
            "object meant and one check per option: its colour, the object, whether they match, the answer so far "
            "(` first red, so, blue red no none, red red yes B, white red no B, ...`)."
        },
    )

    option_orders: int = field(
        default=1,
        metadata={
            "help": "Copies of the training rows, each multiple-choice question's options in another order (letters "
            "and answer follow; copy 1 as cached; rows without options copied as they are). With N copies and "
            "num_train_epochs / N the step count is unchanged, but a small model can no longer fit which letter "
            "answers a training video and has to learn to compare the options (docs/cpu_demo.md)."
        },
    )

    open_copies: int | None = field(
        default=None,
        metadata={
            "help": "Copies of the rows without options (`count` questions); None: as many as `option_orders`. "
            "Fewer copies put more multiple-choice rows in each step at the same step count."
        },
    )

    visual_input: str = field(
        default="images",
        metadata={
            "help": "How the keyframes reach the model: `images` or `video` (one video with their times; Qwen-VL "
            "models): as `kfgrpo train --visual_input`, so a warm start sees the input RL will (docs/visual_input.md)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        from .visual_input import VISUAL_INPUTS

        if self.visual_input not in VISUAL_INPUTS:
            raise ValueError(f"visual_input must be one of {VISUAL_INPUTS}, got {self.visual_input!r}")
        if self.open_copies is not None and self.open_copies < 1:
            raise ValueError("open_copies must be at least 1")
        if self.option_orders < 1:
            raise ValueError("option_orders must be at least 1")
        if self.sft_target not in ("reasoning", "answer"):
            raise ValueError("sft_target must be `reasoning` or `answer`")
        if self.trace_detail not in ("color", "name"):
            raise ValueError("trace_detail must be `color` or `name`")
        if self.trace_format not in ("objects", "frames", "tally"):
            raise ValueError("trace_format must be `objects`, `frames` or `tally`")


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
    from .errors import make_parser as trl_parser

    return trl_parser((SFTScriptArguments, SFTConfig, KFModelConfig), "kfgrpo sft")


def main(script_args: SFTScriptArguments, training_args: SFTConfig, model_args: KFModelConfig):
    if script_args.dry_run:
        model_utils.print_resolved(script_args, training_args, model_args)
        return None
    from trl import get_peft_config

    video = script_args.visual_input == "video"
    if video:
        from .visual_input import check_video_recipe

        check_video_recipe(model_args.model_name_or_path, script_args.frame_template, model_args.model_revision)
    if training_args.push_to_hub:  # before the first step
        from .hub import check_push_access
        from .train import hub_repo_id

        check_push_access(hub_repo_id(training_args), private=training_args.hub_private_repo)
    training_args.model_init_kwargs = {
        **(training_args.model_init_kwargs or {}),
        **model_utils.model_init_kwargs(model_args),
    }
    data = load_keyframe_dataset(script_args, detail=script_args.trace_detail)
    data = permute_options(data, script_args.option_orders, training_args.seed, script_args.open_copies)
    cols = [c for c in ("solution", "events", "timestamps", "problem", "options") if c in data.column_names]
    data = to_grpo_dataset(data, script_args)
    data = map_text(
        data,
        lambda *v: {"completion": sft_completion(dict(zip(cols, v)), script_args)},
        input_columns=cols,
        desc="targets",
    )
    keep = ("prompt", "completion", "images", "frames_key")  # frames_key: the join to the per-video frame table
    keep += ("timestamps",) if video else ()  # the video's times
    data = data.remove_columns([c for c in data.column_names if c not in keep])
    if frame_join_of(data) is not None or video:
        training_args.remove_unused_columns = False  # columns are pruned above; the join still needs frames_key
    extra = {}
    if video:  # TRL's SFT collator wires images only
        from .visual_input import VideoCompletionCollator

        processor = model_utils.load_processor(model_args)
        extra = dict(
            processing_class=processor, data_collator=VideoCompletionCollator(processor, training_args.max_length)
        )
    trainer = KFSFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=data,
        peft_config=get_peft_config(model_args),
        **extra,
    )
    trainer.model.config.kfgrpo_visual_input = script_args.visual_input  # read by `kfgrpo eval --visual_input auto`
    if model_args.freeze_vision_modules:
        model_utils.freeze_vision_modules(trainer.model)
    result = trainer.train(resume_from_checkpoint=model_utils.last_checkpoint(training_args))
    trainer.log_metrics("train", result.metrics)
    trainer.save_state()
    trainer.save_model(training_args.output_dir)
    trainer.create_model_card(dataset_name=script_args.dataset_name)
    return trainer


class KFSFTTrainer(model_utils.ResumeWeightsMixin, SFTTrainer):
    """TRL's ``SFTTrainer`` that resumes with the checkpoint's weights (``model_utils.ResumeWeightsMixin``) and writes
    kfgrpo's model card (the method, the real base model; ``kfgrpo.hub.write_model_card``)."""

    def create_model_card(self, model_name=None, dataset_name=None, tags=None):
        if self.is_world_process_zero():
            from .hub import write_model_card

            write_model_card(self, "SFT", dataset_name, [*([tags] if isinstance(tags, str) else tags or []), "sft"],
                             model_name)  # fmt: skip


def cli(argv: list[str] | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, training_args, model_args = model_utils.parse_recipe(make_parser(), argv)
    return main(script_args, training_args, model_args)
