"""Reward functions in TRL's calling convention: ``f(prompts, completions, **row_columns) -> list[float | None]``.

They never raise on any completion string and stay in their documented ranges. ``REWARD_FUNCS`` maps the names used
in recipes (``reward_funcs: [accuracy, format]``) to the callables.
"""

from .accuracy import accuracy_reward, extract_answer
from .format import format_reward

REWARD_FUNCS = {
    "accuracy": accuracy_reward,
    "format": format_reward,
}


def get_reward_funcs(names: list[str]):
    unknown = [n for n in names if n not in REWARD_FUNCS]
    if unknown:
        raise ValueError(f"unknown reward functions {unknown}; available: {sorted(REWARD_FUNCS)}")
    return [REWARD_FUNCS[n] for n in names]


__all__ = ["REWARD_FUNCS", "accuracy_reward", "extract_answer", "format_reward", "get_reward_funcs"]
