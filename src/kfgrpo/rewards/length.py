"""Length reward (Video-R1's ``len_control``): +bonus for a correct completion whose length is in
[min_tokens, max_tokens], applied only when at least ``min_correct`` completions of its group are correct."""

from __future__ import annotations

from .accuracy import accuracy_reward


class LengthReward:
    """Callable reward; groups are the consecutive blocks of ``num_generations`` completions TRL passes."""

    def __init__(
        self,
        num_generations: int,
        min_tokens: int = 320,
        max_tokens: int = 512,
        bonus: float = 0.2,
        min_correct: int = 2,
        correct_threshold: float = 0.1,
    ):
        self.num_generations, self.min_tokens, self.max_tokens = num_generations, min_tokens, max_tokens
        self.bonus, self.min_correct, self.correct_threshold = bonus, min_correct, correct_threshold
        self.__name__ = "length_reward"

    def __call__(self, completions, completion_ids=None, **kwargs) -> list[float]:
        acc = [a if a is not None else 0.0 for a in accuracy_reward(completions, **kwargs)]
        lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else [0] * len(completions)
        out = [0.0] * len(completions)
        g = self.num_generations
        for start in range(0, len(completions), g):
            group = range(start, min(start + g, len(completions)))
            if sum(acc[i] > self.correct_threshold for i in group) < self.min_correct:
                continue
            for i in group:
                if acc[i] > self.correct_threshold and self.min_tokens <= lengths[i] <= self.max_tokens:
                    out[i] = self.bonus
        return out
