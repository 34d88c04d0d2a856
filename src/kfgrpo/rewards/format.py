"""Format reward: 1.0 when the completion is exactly ``<think>…</think><answer>…</answer>`` (Video-R1's rule)."""

from __future__ import annotations

import re

from .utils import completion_text

FORMAT_PATTERN = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", re.DOTALL)


def format_reward(completions, **kwargs) -> list[float]:
    """1.0 if the whole completion matches ``<think>…</think>\\s*<answer>…</answer>``, else 0.0. Range [0, 1]."""
    return [1.0 if FORMAT_PATTERN.fullmatch(completion_text(c)) else 0.0 for c in completions]
