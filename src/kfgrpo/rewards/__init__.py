"""Reward functions in TRL's calling convention: ``f(prompts, completions, **row_columns) -> list[float | None]``.

They never raise on any completion string and stay in their documented ranges: ``accuracy`` in [0, 1], ``format``
in {0, 1}, ``length`` in {0, bonus}, ``kf_contrastive`` in [0, Σα·(1 + β_s)]. ``get_reward_funcs`` maps the names
used in recipes (``reward_funcs: [accuracy, format]``) to callables; like TRL's GRPO script, it also takes a dotted
import path to a function of your own (``reward_funcs: [accuracy, my_pkg.rewards.brevity]``).
"""

import importlib

from .accuracy import accuracy_reward, extract_answer
from .format import format_reward
from .keyframe import keyframe_bonus, kf_contrastive_reward
from .length import LengthReward

REWARD_NAMES = ("accuracy", "format", "length")


def import_reward(path: str):
    """The callable at ``pkg.module.fn``; ``ValueError`` with the reason when it does not import."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ValueError(f"unknown reward function {path!r}; use one of {list(REWARD_NAMES)} or a dotted path")
    try:
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"reward function {path!r} does not import: {type(exc).__name__}: {exc}") from exc
    if not callable(func):
        raise ValueError(f"reward function {path!r} is a {type(func).__name__}, not a callable")
    return func


def get_reward_funcs(names: list[str], config=None):
    """Callables for recipe names or dotted paths; ``length`` takes its constants (and G) from a ``KFGRPOConfig``.

    With ``config.kf_length_reward`` (the t-grpo preset: the Video-R1 baseline) ``length`` is added when absent, and a
    set ``config.reward_weights`` gets weight 1.0 for it, so the baseline trains with Video-R1's length control."""
    names = list(names)
    if getattr(config, "kf_length_reward", False) and "length" not in names:
        names.append("length")
        if getattr(config, "reward_weights", None) is not None and len(config.reward_weights) == len(names) - 1:
            config.reward_weights = [*config.reward_weights, 1.0]
    funcs = []
    for name in names:
        if name not in REWARD_NAMES:
            funcs.append(import_reward(name))
        elif name == "accuracy":
            funcs.append(accuracy_reward)
        elif name == "format":
            funcs.append(format_reward)
        else:
            if config is None:
                raise ValueError("the length reward needs the training config (num_generations, length_* fields)")
            funcs.append(
                LengthReward(
                    config.num_generations,
                    config.length_min_tokens,
                    config.length_max_tokens,
                    config.length_bonus,
                    config.length_min_correct,
                    config.kf_correct_threshold,
                )
            )
    return funcs


__all__ = [
    "REWARD_NAMES",
    "LengthReward",
    "accuracy_reward",
    "extract_answer",
    "format_reward",
    "get_reward_funcs",
    "import_reward",
    "keyframe_bonus",
    "kf_contrastive_reward",
]
