"""Reward functions in TRL's calling convention: ``f(prompts, completions, **row_columns) -> list[float | None]``.

They never raise on any completion string and stay in their documented ranges: ``accuracy`` in [0, 1], ``format``
in {0, 1}, ``length`` in {0, bonus}, ``kf_contrastive`` in [0, Σα·(1 + β_s)]. ``get_reward_funcs`` maps the names
used in recipes (``reward_funcs: [accuracy, format]``) to callables.
"""

from .accuracy import accuracy_reward, extract_answer
from .format import format_reward
from .keyframe import keyframe_bonus, kf_contrastive_reward
from .length import LengthReward

REWARD_NAMES = ("accuracy", "format", "length")


def get_reward_funcs(names: list[str], config=None):
    """Callables for recipe names; ``length`` takes its constants (and G) from a ``KFGRPOConfig``."""
    unknown = [n for n in names if n not in REWARD_NAMES]
    if unknown:
        raise ValueError(f"unknown reward functions {unknown}; available: {list(REWARD_NAMES)}")
    funcs = []
    for name in names:
        if name == "accuracy":
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
    "keyframe_bonus",
    "kf_contrastive_reward",
]
