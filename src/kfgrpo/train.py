"""``kfgrpo train --config RECIPE.yaml [--key value ...]``: the training entry point (TrlParser, open-r1 style)."""

from __future__ import annotations

import logging
import os
import socket
import sys

from trl import TrlParser, get_peft_config

from .config import KFGRPOConfig
from .data_utils import KFScriptArguments, load_keyframe_dataset, to_grpo_dataset
from .model_utils import (
    KFModelConfig,
    check_model_family,
    freeze_vision_modules,
    last_checkpoint,
    model_init_kwargs,
    parse_recipe,
    print_resolved,
)
from .rewards import get_reward_funcs

logger = logging.getLogger(__name__)


def make_parser() -> TrlParser:
    from .errors import make_parser as trl_parser

    return trl_parser((KFScriptArguments, KFGRPOConfig, KFModelConfig), "kfgrpo train")


def main(script_args: KFScriptArguments, training_args: KFGRPOConfig, model_args: KFModelConfig):
    if script_args.dry_run:
        print_resolved(script_args, training_args, model_args)
        return None
    from .trainer import KFGRPOTrainer

    check_model_family(model_args.model_name_or_path, training_args, model_args.model_revision)
    if training_args.visual_input == "video":
        from .visual_input import check_video_recipe

        check_video_recipe(model_args.model_name_or_path, script_args.frame_template, model_args.model_revision)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if training_args.push_to_hub:  # before the first step, not after hours of training
        from .hub import check_push_access

        check_push_access(hub_repo_id(training_args), private=training_args.hub_private_repo)
    training_args.model_init_kwargs = {**(training_args.model_init_kwargs or {}), **model_init_kwargs(model_args)}
    train = to_grpo_dataset(load_keyframe_dataset(script_args), script_args)
    trainer = KFGRPOTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=get_reward_funcs(script_args.reward_funcs, training_args),
        args=training_args,
        train_dataset=train,
        peft_config=get_peft_config(model_args),
    )
    acc = trainer.accelerator
    node = os.environ.get("GROUP_RANK", os.environ.get("SLURM_NODEID", "0"))  # torchrun's node rank, else SLURM's
    nodes = os.environ.get("SLURM_JOB_NUM_NODES", os.environ.get("SLURM_NNODES", "1"))
    host = os.environ.get("SLURMD_NODENAME", socket.gethostname())
    logger.info(
        "process %d of %d: node rank %s of %s on %s; distributed: %s, %d processes",
        acc.process_index, acc.num_processes, node, nodes, host, acc.distributed_type.value, acc.num_processes,
    )  # fmt: skip
    if model_args.freeze_vision_modules:
        logger.info("Froze %d vision parameters", freeze_vision_modules(trainer.model))
    checkpoint = last_checkpoint(training_args)
    if checkpoint:
        logger.info("Resuming from %s", checkpoint)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()  # trainer_state.json next to the final model
    trainer.save_model(training_args.output_dir)
    trainer.create_model_card(dataset_name=script_args.dataset_name)  # kfgrpo tags, preset, TAD config, metrics
    if trainer.is_world_process_zero() and any("reward" in h for h in trainer.state.log_history):
        from .learning_curve import plot_learning_curve

        title = f"{training_args.kf_preset}: {os.path.basename(os.path.normpath(training_args.output_dir))}"
        plot_learning_curve(
            trainer.state.log_history, os.path.join(training_args.output_dir, "learning_curve.png"), title
        )
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
    return trainer


def hub_repo_id(training_args) -> str:
    """The repo ``push_to_hub`` writes: ``hub_model_id``, else the output folder's name (transformers' rule)."""
    return training_args.hub_model_id or os.path.basename(os.path.normpath(training_args.output_dir))


def cli(argv: list[str] | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, training_args, model_args = parse_recipe(make_parser(), argv)
    return main(script_args, training_args, model_args)
